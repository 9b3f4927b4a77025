"""TRACE costs: seconds per impact-scored pair, per gold pair, and per training step.

Builds pairs from the built-in seemingly harmful prompts that ship a reference answer (no generation),
yesterday refusing them all, and a policy that makes half their categories answerable; times the gold
gradient, the per-pair scores and a few hybrid-objective steps. Writes ``trace.json`` to --out-dir.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_trace.py --model runs/align/stl/model
    PYTHONPATH=. python benchmarks/bench_trace.py --model tiny --max-length 512   # a check that it runs
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="runs/align/stl/model")
    p.add_argument("--device", default=None)
    p.add_argument("--pairs", type=int, default=24, help="pairs built (gold + scored + retained)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--out-dir", default="figures/benchmarks")
    args = p.parse_args(argv)

    from interp.data.builtin import builtin_prompts
    from interp.data.preferences import refusal_pairs
    from interp.io import write_json
    from interp.models import load_model
    from interp.realign import RealignConfig, policy_from_dict, prepare, train_realign

    model = load_model(args.model, device=args.device)
    prompts = builtin_prompts("seemingly_harmful").split().train.filter(lambda q: q.response is not None)
    pairs = refusal_pairs(prompts.sample(args.pairs, 0), refuse=lambda q: True)
    cats = sorted({q.prompt.category for q in pairs})
    policy = policy_from_dict({"name": "bench", "default": "refuse",
                               "rule": [{"category": cats[::2], "require": "comply"}]})
    cfg = RealignConfig(batch_size=args.batch_size, max_length=args.max_length, max_steps=args.steps,
                        gold_fraction=0.25, gold_scope="conflicts")
    t0 = time.perf_counter()
    plan = prepare(model, pairs, policy, cfg)
    t_prepare = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        result = train_realign(model, plan.items, cfg, Path(tmp) / "run")
    imp = plan.impact
    record = {
        "model": args.model, "device": str(model.device), "n_params_scored": imp.n_params,
        "n_gold": imp.n_gold, "n_scored": len(imp.raw), "n_retain": len(plan.retain),
        "seconds_gold_total": imp.seconds_gold, "seconds_per_gold_pair": imp.seconds_gold / max(1, imp.n_gold),
        "seconds_per_scored_pair": imp.seconds_items / max(1, len(imp.raw)), "seconds_prepare": t_prepare,
        "steps": result.steps, "batch_size": args.batch_size, "seconds_per_step": result.seconds_per_step,
    }
    out = write_json(Path(args.out_dir) / "trace.json", record)
    print("\n".join(f"{k}: {v}" for k, v in record.items()) + f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
