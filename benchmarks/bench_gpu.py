"""Throughput and peak memory of the workbench against plain transformers on the same device.

Six measurements, each run by interp (the hooked TransformerBridge) and by the same checkpoint loaded
with ``AutoModelForCausalLM`` (no bridge), on the same token batches:

=================  ==========================================  ===========================================
measurement        interp                                      plain transformers
=================  ==========================================  ===========================================
forward            ``Model.logits``                            ``model(input_ids, attention_mask, ...)``
hooked forward     ``collect_z``: every layer's ``hook_z``     forward pre-hooks on every ``o_proj``
generation         ``generate_token_ids`` (greedy, KV cache)   ``model.generate`` (same batches, greedy)
SFT step           ``train_sft`` (AdamW, per-step seconds)     forward(labels) + backward + AdamW step
attribution        ``attribution_patching`` (all heads)        forward + grad of the metric to o_proj inputs
kernel matrix      ``kernel_frobenius`` (sketch, m probes)     forward + m backward passes to all params
=================  ==========================================  ===========================================

Tokens/s counts the batch's real (unpadded) tokens, generated tokens for generation; the median over
``--repeats`` timed runs after one warm-up. Peak memory (``memmeter.py``): CUDA ``max_memory_allocated``
or, on the CPU, sampled RSS, above the level before the run; weights are not included.

    python benchmarks/bench_gpu.py --device cuda --dtype bfloat16                  # on a GPU machine
    python benchmarks/bench_gpu.py --device cuda --model Qwen/Qwen2.5-7B-Instruct  # a hub model
    python benchmarks/bench_gpu.py                                                 # CPU: --small sizes

Writes ``bench_gpu_<device>.json`` and ``.md`` to ``--out-dir`` (default ``figures/benchmarks``). A
measurement that fails is recorded with its error and the others still run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from memmeter import peak_memory, reexec_with_malloc_env  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    n_prompts: int
    """Prompts in the forward / hooked / attribution batch (and generation prompts)."""
    new_tokens: int
    """Greedy tokens generated per prompt."""
    sft_steps: int
    """Optimizer steps timed (after one warm-up step)."""
    sft_batch: int
    """Examples per SFT step."""
    ntk_prompts: int
    """Prompts of the kernel matrix."""
    ntk_probes: int
    """Output probes m of the sketch (and backward passes per prompt of the plain baseline)."""
    repeats: int
    """Timed repeats (median reported)."""


SMALL = Sizes(n_prompts=4, new_tokens=8, sft_steps=2, sft_batch=4, ntk_prompts=2, ntk_probes=2, repeats=2)
FULL = Sizes(n_prompts=32, new_tokens=64, sft_steps=6, sft_batch=8, ntk_prompts=8, ntk_probes=12, repeats=3)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn, device: torch.device, repeats: int) -> dict:
    """Warm-up, then ``repeats`` timed runs; the peak memory of the first timed run."""
    fn()
    times, peak = [], None
    for i in range(repeats):
        sync(device)
        with peak_memory(device) as p:
            t0 = time.perf_counter()
            n_tokens = fn()
            sync(device)
            times.append(time.perf_counter() - t0)
        if i == 0:
            peak = p.bytes
    sec = statistics.median(times)
    return {"seconds": sec, "tokens": n_tokens, "tokens_per_s": n_tokens / sec, "peak_bytes": peak}


def plain_checkpoint(name: str, model, tmp: Path) -> str:
    """A folder or hub name ``AutoModelForCausalLM`` loads the same weights from."""
    from interp.models import embedded_checkpoint
    from interp.models.embedded import EMBEDDED_NAME

    if name == EMBEDDED_NAME:
        return str(embedded_checkpoint())
    if Path(name).is_dir() or "/" in name and not Path(name).exists():
        return name
    return str(model.save(tmp / "plain"))  # e.g. the tiny test model: saved in the plain HF layout


def attn_out_projections(hf) -> list[torch.nn.Module]:
    """Each layer's attention output projection (its input is the concatenated z of the heads)."""
    mods = [m for n, m in hf.named_modules() if n.endswith(("self_attn.o_proj", "attn.c_proj"))]
    if not mods:
        raise RuntimeError(f"no attention output projection found in {type(hf).__name__}")
    return mods


def suite(model, plain, tok, sizes: Sizes, device: torch.device) -> dict[str, dict]:
    from bench_foundation import plain_generate
    from bench_sft import examples, workbench_loop

    from interp.data.builtin import builtin_prompts
    from interp.evaluate.generate import generate_token_ids
    from interp.heads import attribution_patching, collect_z, refusal_metric, suffix_positions
    from interp.ntk import NTKConfig
    from interp.ntk.similarity import kernel_frobenius
    from interp.train import SFTConfig
    from interp.train.examples import collate

    prompts = builtin_prompts("harmful").sample(sizes.n_prompts, seed=0).texts
    harmless = builtin_prompts("harmless").sample(sizes.n_prompts, seed=0).texts
    enc = model.encode_chat(prompts)
    n_tok = int(enc.attention_mask.sum())
    positions = suffix_positions(model)
    metric = refusal_metric(model.tokenizer)
    base = collect_z(model, harmless, positions, batch_size=sizes.n_prompts).mean(0, keepdim=True)
    projs = attn_out_projections(plain)

    def plain_forward():
        return plain(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                     position_ids=enc.position_ids, use_cache=False).logits

    @torch.no_grad()
    def ours_fwd():
        model.logits(enc)
        return n_tok

    @torch.no_grad()
    def plain_fwd():
        plain_forward()
        return n_tok

    def ours_hooked():
        collect_z(model, prompts, positions, batch_size=sizes.n_prompts)
        return n_tok

    @torch.no_grad()
    def plain_hooked():
        store = []
        handles = [m.register_forward_pre_hook(lambda m, a: store.append(a[0][:, -positions:].float()))
                   for m in projs]
        try:
            plain_forward()
        finally:
            for h in handles:
                h.remove()
        return n_tok

    def ours_gen():
        return sum(map(len, generate_token_ids(model, prompts, sizes.new_tokens, sizes.n_prompts,
                                               progress=False)))

    def plain_gen():
        return sum(map(len, plain_generate(plain, tok, model, prompts, sizes.new_tokens, sizes.n_prompts)))

    def ours_attr():
        attribution_patching(model, prompts, metric, base, batch_size=sizes.n_prompts)
        return n_tok

    def plain_attr():
        zs = []

        def keep(m, a):
            z = a[0].detach().requires_grad_(True)
            zs.append(z)
            return (z,)

        handles = [m.register_forward_pre_hook(keep) for m in projs]
        try:
            with torch.enable_grad():
                logits = plain(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                               position_ids=enc.position_ids, use_cache=False, logits_to_keep=1).logits
                torch.autograd.grad(metric(logits[:, -1], list(range(len(prompts)))).sum(), zs)
        finally:
            for h in handles:
                h.remove()
        return n_tok

    ntk_texts = prompts[: sizes.ntk_prompts]
    ntk_tok = sum(int(model.encode_chat([t]).attention_mask.sum()) for t in ntk_texts)
    cfg = NTKConfig(n_probes=sizes.ntk_probes)

    def ours_ntk():
        kernel_frobenius(model, ntk_texts, cfg, progress=False)
        return ntk_tok

    def plain_ntk():
        params = [p for p in plain.parameters()]
        gen = torch.Generator().manual_seed(0)
        for t in ntk_texts:
            e = model.encode_chat([t])
            with torch.enable_grad():
                z = plain(input_ids=e.input_ids, attention_mask=e.attention_mask, use_cache=False,
                          logits_to_keep=1).logits[0, -1]
                for i in range(sizes.ntk_probes):
                    r = (torch.randint(0, 2, z.shape, generator=gen) * 2 - 1).to(z.device, z.dtype)
                    torch.autograd.grad(z, params, grad_outputs=r, retain_graph=i < sizes.ntk_probes - 1)
        return ntk_tok

    sft_cfg = SFTConfig(batch_size=sizes.sft_batch, callback_every=1, checkpoint_every=10**6)
    exs = examples((sizes.sft_steps + 1) * sizes.sft_batch)
    sft_tok = sum(int(collate(model, [e], sft_cfg.max_length).attention_mask.sum()) for e in exs)
    per_step_tok = sft_tok / (sizes.sft_steps + 1)

    def ours_sft():
        # Training changes the weights: run on a copy so later measurements see the loaded model.
        state = {k: v.detach().clone() for k, v in model.hf.state_dict().items()}
        try:
            secs = workbench_loop(model, exs, sft_cfg)
        finally:
            model.hf.load_state_dict(state)
        return per_step_tok * len(secs), sum(secs)

    def plain_sft():
        state = {k: v.detach().clone() for k, v in plain.state_dict().items()}
        opt = torch.optim.AdamW(plain.parameters(), lr=sft_cfg.lr, weight_decay=sft_cfg.weight_decay)
        plain.train()
        secs = []
        try:
            for s in range(sizes.sft_steps + 1):
                t0 = time.perf_counter()
                b = collate(model, exs[s * sizes.sft_batch:(s + 1) * sizes.sft_batch],
                            sft_cfg.max_length).to(device)
                loss = plain(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=b.labels).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(plain.parameters(), sft_cfg.max_grad_norm)
                opt.step()
                opt.zero_grad(set_to_none=True)
                loss.item()
                sync(device)
                secs.append(time.perf_counter() - t0)
        finally:
            plain.eval()
            plain.load_state_dict(state)
        return per_step_tok * (len(secs) - 1), sum(secs[1:])

    out: dict[str, dict] = {}
    pairs = {"forward": (ours_fwd, plain_fwd), "hooked forward": (ours_hooked, plain_hooked),
             "generation": (ours_gen, plain_gen), "attribution": (ours_attr, plain_attr),
             "kernel matrix": (ours_ntk, plain_ntk)}
    for name, (ours, theirs) in pairs.items():
        out[name] = {side: _safe(lambda f=f: measure(f, device, sizes.repeats))
                     for side, f in (("interp", ours), ("plain", theirs))}
    out["SFT step"] = {side: _safe(lambda f=f: _measure_sft(f, device))
                       for side, f in (("interp", ours_sft), ("plain", plain_sft))}
    return out


def _measure_sft(fn, device) -> dict:
    with peak_memory(device) as p:
        tokens, secs = fn()  # per-step timings exclude each run's first (warm-up) step
    return {"seconds": secs, "tokens": tokens, "tokens_per_s": tokens / secs, "peak_bytes": p.bytes}


def _safe(fn) -> dict:
    try:
        return fn()
    except Exception as e:  # one broken measurement must not cost the rest of a GPU session
        return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=3)}


def markdown(res: dict, meta: dict) -> str:
    lines = [f"bench_gpu on {meta['device_name']} ({meta['device']}), {meta['model']} in {meta['dtype']}, "
             f"sizes {meta['sizes']}; torch {meta['torch']}, transformers {meta['transformers']}.", "",
             "| measurement | interp tok/s | plain tok/s | ratio | interp peak (MiB) | plain peak (MiB) |",
             "|---|---|---|---|---|---|"]
    for name, sides in res.items():
        o, p = sides["interp"], sides["plain"]
        if "error" in o or "error" in p:
            err = o.get("error") or p.get("error")
            lines.append(f"| {name} | | | | | error: {err[:120]} |")
            continue
        lines.append(f"| {name} | {o['tokens_per_s']:.1f} | {p['tokens_per_s']:.1f} | "
                     f"{o['tokens_per_s'] / p['tokens_per_s']:.2f} | {o['peak_bytes'] / 2**20:.0f} | "
                     f"{p['peak_bytes'] / 2**20:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--dtype", default="float32", choices=list(DTYPES))
    ap.add_argument("--small", dest="small", action="store_true", default=None,
                    help="small sizes (the default on CPU)")
    ap.add_argument("--full", dest="small", action="store_false", help="full sizes (the default on GPU)")
    ap.add_argument("--out-dir", default="figures/benchmarks")
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        reexec_with_malloc_env()
    small = device.type == "cpu" if args.small is None else args.small
    sizes = SMALL if small else FULL

    import transformers
    from transformers import AutoModelForCausalLM

    from interp.io import write_json
    from interp.models import load_model

    dtype = DTYPES[args.dtype]
    model = load_model(args.model, device=str(device), dtype=dtype)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = plain_checkpoint(args.model, model, Path(tmp))
        plain = AutoModelForCausalLM.from_pretrained(ckpt, dtype=dtype).to(device).eval()
        res = suite(model, plain, model.tokenizer, sizes, device)
    meta = {"model": model.name, "device": str(device), "dtype": args.dtype, "sizes": sizes.__dict__,
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench_gpu_{device.type}{'_small' if small else ''}"
    write_json(out / f"{stem}.json", {"meta": meta, "results": res})
    md = markdown(res, meta)
    (out / f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
