"""Peak memory of each analysis on the embedded model, and its extrapolation to 7B-class models.

Each analysis runs once on the same batch of chat-formatted prompts (``--batch`` prompts, the built-in
harmful set) and its peak memory above the level before it is measured (see ``memmeter.py``: CUDA's
``max_memory_allocated``, or on the CPU the process RSS sampled every millisecond). The model's own
weights are resident before every analysis and are not part of any peak (listed on their own row).

Scaling model for the extrapolation (same batch, same sequence lengths, same dtype as measured): a peak is
split into three parts, each scaled by its own ratio between the target and the measured model,

* **params** (gradients, optimizer states, per-probe gradients of the NTK sketch): ``k_p x 4 bytes x P``,
  scaled by ``P_target / P``;
* **vocab** (logits and what is computed from them): ``k_v x 4 bytes x rows x V``, scaled by ``V_target / V``
  (``rows``: the batch's positions that are unembedded);
* **embedding** (the NTK sketch's largest single gradient): ``k_e x 4 bytes x V x d_model``, scaled by
  ``(V x d_model)_target / (V x d_model)`` (shown with the vocab part in the table);
* **activations**: the rest of the measured peak (never negative), scaled by
  ``(d_model x n_layers)_target / (d_model x n_layers)`` (hidden states, attention, KV cache, hooks).

``k_p`` and ``k_v`` are fixed per analysis from what it allocates (given in the table); the split of
the *measured* number is therefore part model, part measurement. Writes ``memory.json`` and
``memory.md`` to ``--out-dir`` (default ``figures/benchmarks``).

    PYTHONPATH=. python benchmarks/bench_memory.py               # embedded model, ~2-4 minutes on 2 cores
    PYTHONPATH=. python benchmarks/bench_memory.py --model tiny  # seconds (a check that it runs)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from memmeter import peak_memory, reexec_with_malloc_env  # noqa: E402

TARGETS = {
    # From the models' config.json (hidden_size, num_hidden_layers, vocab_size) and parameter counts.
    "Qwen2.5-7B": {"params": 7.62e9, "d_model": 3584, "n_layers": 28, "vocab": 152064},
    "Llama-3-8B": {"params": 8.03e9, "d_model": 4096, "n_layers": 32, "vocab": 128256},
}
GiB = 2**30
_STORES = itertools.count()  # a fresh store folder per run (a finished store would just be reopened)


@dataclass
class Analysis:
    """One measured analysis."""

    name: str
    """Row label."""
    run: Callable[[], object]
    """The analysis (everything it returns is dropped before the next one runs)."""
    k_params: float
    """Parameter-sized float32 tensors it holds at its peak (gradients, optimizer moments, ...)."""
    k_vocab: float
    """Vocabulary-wide float32 rows it holds per unembedded position."""
    vocab_rows: int
    """Positions that are unembedded at once."""
    note: str
    """What it does, in words."""
    k_embed: float = 0.0
    """Embedding-matrix-sized float32 tensors (V x d_model) outside the params part (a single gradient)."""


def build(model, batch: int, n_new: int, tmp: Path) -> tuple[list[Analysis], int]:
    from interp.data.builtin import builtin_prompts
    from interp.evaluate.generate import generate_token_ids
    from interp.heads import attribution_patching, collect_z, patch_heads, refusal_metric, suffix_positions
    from interp.hooks import Site
    from interp.ntk import NTKConfig
    from interp.ntk.similarity import kernel_frobenius
    from interp.sae.site import ActSite
    from interp.sae.store import CollectConfig, collect_activations

    prompts = builtin_prompts("harmful").sample(batch, seed=0).texts
    other = builtin_prompts("harmless").sample(batch, seed=0).texts
    enc = model.encode_chat(prompts)
    n, seq = enc.input_ids.shape
    metric = refusal_metric(model.tokenizer)
    positions = suffix_positions(model)
    base = collect_z(model, other, positions, batch_size=batch).mean(0, keepdim=True)
    heads = [(la, h) for la in range(model.spec.n_layers) for h in range(model.spec.n_heads)][:8]
    mid = model.spec.n_layers // 2

    def sft_step(lora: bool = False):
        from interp.train.examples import SFTExample, collate

        if lora:  # last row: the adapters go into the model in place (the full-model rows ran before)
            from interp.train.lora import LoRAConfig, apply_lora

            apply_lora(model, LoRAConfig(rank=16), seed=0)
        else:
            for p in model.hf.parameters():
                p.requires_grad_(True)
        exs = [SFTExample(p, "I can't help with that.", "refusal") for p in prompts]
        b = collate(model, exs, 256).to(model.device)
        params = [p for p in model.hf.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-12)  # lr ~ 0: later rows see the same weights
        model.hf.train()
        loss = model.hf(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=b.labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        model.hf.eval()
        return float(loss.detach())

    def ntk():
        cfg = NTKConfig(n_probes=4, sketch_dim=2**15, max_tokens=seq)
        return kernel_frobenius(model, prompts[:2], cfg, progress=False)

    nograd = torch.no_grad
    return [
        Analysis("(meter floor: an empty block)", lambda: None, 0, 0, 0,
                 "what the measurement itself adds; subtracted from nothing"),
        Analysis("forward (full logits)", lambda: nograd()(model.logits)(enc), 0, 1, n * seq,
                 "one no-grad forward returning [batch, seq, vocab] logits"),
        Analysis("next-token logits", lambda: nograd()(model.next_token_logits)(enc), 0, 1, n,
                 "logits_to_keep=1: only the last position is unembedded"),
        Analysis("activation collection (z, all layers)", lambda: collect_z(model, prompts, positions, batch),
                 0, 0, 0, "hook_z of every layer at the final positions; no unembedding"),
        Analysis("head attribution", lambda: attribution_patching(model, prompts, metric, base, batch), 0, 3, n,
                 "one forward + backward to every hook_z (attribution patching)"),
        Analysis(f"head patching ({len(heads)} heads, 4 per forward)",
                 lambda: patch_heads(model, prompts, metric, base, heads, batch, heads_per_forward=4), 0, 1,
                 4 * n, "exact patching, 4 heads per forward (batch repeated 4x)"),
        Analysis("SAE activation store (resid_post, 1 layer)",
                 lambda: collect_activations(model, [model.chat(p) for p in prompts],
                                             [ActSite(Site("resid_post", mid))], tmp / f"store{next(_STORES)}",
                                             CollectConfig(batch_size=batch)), 0, 0, 0,
                 "all positions of one residual site, stop early, written to disk"),
        Analysis("NTK sketch (2 prompts, 4 probes)", ntk, 0, 0, 0,
                 "each parameter's gradient CountSketched as backward produces it, then freed; the "
                 "largest single gradient is the (tied) embedding's, V x d_model", k_embed=1),
        Analysis(f"generation ({n_new} new tokens)",
                 lambda: generate_token_ids(model, prompts, n_new, batch, progress=False), 0, 1,
                 n * (seq + n_new),
                 "greedy, KV cache; first batch checked against an uncached forward"),
        Analysis("SFT step (AdamW, full model)", sft_step, 3, 2, n * seq,
                 "forward + backward + AdamW step; HF loss over full logits"),
        Analysis("SFT step (LoRA r=16 on q/v, peft)", lambda: sft_step(lora=True), 0, 2, n * seq,
                 "adapters only in the optimizer; frozen base weights (adapter state is ~0.1% of params)"),
    ], seq


def extrapolate(peak: int, a: dict, spec: dict, n_params: int, target: dict) -> tuple[float, dict]:
    """Estimated peak on ``target`` and the measured peak's split (see the module docstring)."""
    p_part = a["k_params"] * 4 * n_params
    v_part = a["k_vocab"] * 4 * a["vocab_rows"] * spec["d_vocab"]
    e_part = a["k_embed"] * 4 * spec["d_vocab"] * spec["d_model"]
    act = max(peak - p_part - v_part - e_part, 0.0)
    parts = {"params": p_part, "vocab": v_part + e_part, "activations": act}
    ratio_act = (target["d_model"] * target["n_layers"]) / (spec["d_model"] * spec["n_layers"])
    ratio_embed = (target["d_model"] * target["vocab"]) / (spec["d_model"] * spec["d_vocab"])
    est = (p_part * target["params"] / n_params + v_part * target["vocab"] / spec["d_vocab"]
           + e_part * ratio_embed + act * ratio_act)
    return est, parts


def markdown(rows: list[dict], meta: dict) -> str:
    tnames = list(TARGETS)
    head = ["analysis", "peak (MiB)", "k_p", "k_v", "params / vocab / act (MiB)", *[f"{t} (GiB)" for t in tnames]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        parts = " / ".join(f"{r['parts'][k] / 2**20:.0f}" for k in ("params", "vocab", "activations"))
        cells = [r["name"], f"{r['peak_bytes'] / 2**20:.0f}", f"{r['k_params']:g}", f"{r['k_vocab']:g}", parts,
                 *[f"{r['extrapolated_bytes'][t] / GiB:.1f}" for t in tnames]]
        lines.append("| " + " | ".join(cells) + " |")
    w = meta["weights_bytes"]
    lines.append("| weights (resident, not in the peaks) | " + f"{w / 2**20:.0f} | 1 | 0 | | "
                 + " | ".join(f"{4 * TARGETS[t]['params'] / GiB:.1f}" for t in tnames) + " |")
    old = meta["old_ntk_hash_bytes"]
    lines.append("| NTK hash table before this change (int32 per parameter) | " + f"{old / 2**20:.0f} | | | | "
                 + " | ".join(f"{4 * TARGETS[t]['params'] / GiB:.1f}" for t in tnames) + " |")
    return (f"Peak memory per analysis on {meta['model']} ({meta['device']}, float32, batch {meta['batch']}, "
            f"seq {meta['seq']}), measured by {meta['method']}; extrapolated to 7B-class models at the same "
            "batch, lengths and float32 (bf16 halves the weights, activations and logits; AdamW moments "
            "stay float32). `python benchmarks/bench_memory.py`\n\n" + "\n".join(lines) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--out-dir", default="figures/benchmarks")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false",
                    help="skip the one-prompt warm-up pass (peaks then include lazy imports and caches)")
    ap.add_argument("--from-json", default=None,
                    help="re-render a memory.json (edited scaling constants k_*), measuring nothing")
    args = ap.parse_args(argv)
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        write(Path(args.out_dir), data["rows"], data["meta"])
        return
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        reexec_with_malloc_env()

    from interp.models import load_model

    model = load_model(args.model, device=str(device))
    n_params = sum(p.numel() for p in model.hf.parameters())  # before the LoRA row adds adapters
    rows, method = [], ""
    with tempfile.TemporaryDirectory() as tmp:
        if args.warmup:  # every code path once on one prompt: lazy imports and caches are not the peak
            for a in build(model, 1, 2, Path(tmp))[0]:
                if not a.name.startswith("SFT"):  # (the LoRA row would put adapters in for good)
                    a.run()
        analyses, seq = build(model, args.batch, args.new_tokens, Path(tmp))
        for a in analyses:
            with peak_memory(device) as peak:
                result = a.run()
            del result
            method = peak.method
            rows.append({"name": a.name, "peak_bytes": peak.bytes, "seconds": peak.seconds,
                         "k_params": a.k_params, "k_vocab": a.k_vocab, "vocab_rows": a.vocab_rows,
                         "k_embed": a.k_embed, "note": a.note})
            print(f"{a.name:<48} {peak.bytes / 2**20:9.1f} MiB  {peak.seconds:6.1f} s", flush=True)
    meta = {"model": model.name, "device": str(device), "batch": args.batch, "seq": seq, "method": method,
            "n_params": n_params, "weights_bytes": 4 * n_params, "old_ntk_hash_bytes": 4 * n_params,
            "spec": asdict(model.spec), "threads": torch.get_num_threads(),
            "torch": torch.__version__}
    write(Path(args.out_dir), rows, meta)


def write(out: Path, rows: list[dict], meta: dict) -> None:
    """Add the extrapolations to the measured rows; write memory.json and memory.md."""
    from interp.io import write_json

    for r in rows:
        ests = {t: extrapolate(r["peak_bytes"], r, meta["spec"], meta["n_params"], TARGETS[t]) for t in TARGETS}
        r["parts"] = next(iter(ests.values()))[1]
        r["extrapolated_bytes"] = {t: e for t, (e, _) in ests.items()}
    meta = {**meta, "targets": TARGETS}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "memory.json", {"meta": meta, "rows": rows})
    md = markdown(rows, meta)
    (out / "memory.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
