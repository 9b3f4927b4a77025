"""Per-step overhead of each refusal-preserving constraint over the fine-tune it constrains.

Every variant of :mod:`interp.train.preserving` runs ``train_sft`` on the same examples and schedule
(a fresh copy of the model each); seconds per step come from a callback stamping every step. The
first step is reported apart (it holds the null-space basis computation) and left out of the
steady-state mean. Full fine-tune constraints (residual, anchor) are compared with ``unconstrained``,
LoRA ones (null-space) with ``lora``; Safe-LoRA is a one-off projection after training (its seconds
are reported as such). Goal: steady-state overhead <= 15% of an unconstrained step.

    PYTHONPATH=. python benchmarks/bench_constraints.py                # embedded model, 6 steps each
    PYTHONPATH=. python benchmarks/bench_constraints.py --model tiny   # quick run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from interp.data.builtin import builtin_prompts
from interp.models import load_model
from interp.train import LoRAConfig, SFTConfig, train_sft
from interp.train.anchor import AnchorConfig
from interp.train.examples import SFTExample
from interp.train.preserving import PreservingConfig, plan_variant
from interp.train.residual_subspaces import ResidualSubspaceConfig, residual_refusal_subspaces
from interp.train.safe_lora import alignment_matrices, safe_lora_project, target_names

BASELINE = {"residual": "unconstrained", "anchor": "unconstrained", "null-space": "lora"}


def stamps_of(model, name, exs, sft, pcfg, residual, harmful) -> tuple[list[float], object]:
    plan = plan_variant(name, model, sft, pcfg, residual, harmful)
    stamps: list[float] = []

    def stamp(_model, _step):
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        train_sft(model, exs, plan.sft, tmp, callbacks=[stamp], constraint=plan.constraint)
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)], plan


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--device", default=None)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--n-protected", type=int, default=16, help="harmful prompts protected (null-space, anchor)")
    p.add_argument("--anchor-batch", type=int, default=4, help="anchor prompts per step")
    p.add_argument("--anchor-every", type=int, default=1, help="anchor term every N steps (weight x N)")
    a = p.parse_args(argv)
    factual = builtin_prompts("factual").sample(a.steps * a.batch_size, seed=0)
    exs = [SFTExample(q.text, q.correct[0] if q.correct else "Sure.", "factual") for q in factual]
    harmful = builtin_prompts("harmful").sample(a.n_protected, seed=0).texts
    harmless = builtin_prompts("harmless").sample(a.n_protected, seed=0).texts
    sft = SFTConfig(batch_size=a.batch_size, callback_every=1, checkpoint_every=10_000, warmup_steps=0)
    pcfg = PreservingConfig(lora=LoRAConfig(), anchor=AnchorConfig(batch_size=a.anchor_batch, every=a.anchor_every))
    ref = load_model(a.model, device=a.device)
    residual = residual_refusal_subspaces(ref, harmful, harmless, ResidualSubspaceConfig())
    results = {}
    for name in ("unconstrained", "residual", "anchor", "lora", "null-space"):
        steps, _ = stamps_of(load_model(a.model, device=a.device), name, exs, sft, pcfg, residual, harmful)
        results[name] = (steps[0], statistics.mean(steps[1:]) if len(steps) > 1 else steps[0])
    print(f"model={a.model} device={ref.device} steps={a.steps} batch={a.batch_size} "
          f"protected prompts={a.n_protected} threads={torch.get_num_threads()}")
    for name, (first, steady) in results.items():
        base = BASELINE.get(name)
        over = f"  overhead vs {base}: {100 * (steady / results[base][1] - 1):+.1f}%" if base else ""
        print(f"  {name:14s} first step {first:.3f} s   steady {steady:.3f} s/step{over}")
    model = load_model(a.model, device=a.device)
    names = target_names(ref, pcfg.lora.targets)
    with torch.no_grad():
        for n in names:  # a stand-in fine-tune: the timing does not depend on the update's values
            model.named_parameters()[n].add_(1e-3 * torch.randn_like(model.named_parameters()[n]))
    pre = load_model(a.model, device=a.device)
    with torch.no_grad():
        for n in names:
            pre.named_parameters()[n].add_(1e-3 * torch.randn_like(pre.named_parameters()[n]))
    t0 = time.perf_counter()
    alignment = alignment_matrices(ref, pre, pcfg.lora.targets)
    res = safe_lora_project(model, {n: ref.named_parameters()[n].detach() for n in names}, alignment)
    print(f"  safe-lora      one-off projection of {len(res.records)} weights: {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
