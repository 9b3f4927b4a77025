"""Benchmark of SafeMoE generation cost: the routed model against the plain base model, KV cache on.

Both generate greedy replies to the same prompts with ``interp.evaluate.generate.generate_token_ids``
(batched, left padded, KV cache). The routed model carries ``--experts`` LoRA adapters (rank
``--rank`` on q/v; random values, cost does not depend on them) and a router that reads block
``--layer`` once per prompt (one partial forward at prefill); the base model is a fresh copy without
adapters. Reported: seconds per generated token (median of ``--repeats`` runs, the first run is a
discarded warm-up; process CPU time on a CPU, wall clock on an accelerator) and their ratio. Both
routing implementations are timed (``fused``: two stacked matmuls per LoRA layer; ``loop``: peft's
per-adapter loop). Goal: routed / base <= 1.3 per token.

    PYTHONPATH=. python benchmarks/bench_safemoe.py --model tiny
    PYTHONPATH=. python benchmarks/bench_safemoe.py                 # embedded SmolLM2-135M
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from interp.data.builtin import builtin_prompts
from interp.evaluate.generate import generate_token_ids
from interp.models import load_model


def timed(model, prompts, new_tokens: int, batch_size: int, repeats: int) -> dict:
    """Median seconds per generated token: wall clock and this process's CPU time.

    On a shared CPU machine the wall clock measures the neighbours too; CPU time does not (the
    primary number there, ``s_per_token``). On an accelerator the wall clock is primary.
    """
    wall, cpu = [], []
    for i in range(repeats + 1):
        w0, c0 = time.perf_counter(), time.process_time()
        ids = generate_token_ids(model, prompts, new_tokens, batch_size, progress=False, verify="off")
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        if i:  # the first run warms caches and kernels
            n = max(1, sum(len(r) for r in ids))
            wall.append(w / n)
            cpu.append(c / n)
    primary = wall if model.device.type != "cpu" else cpu
    return {"s_per_token": statistics.median(primary), "clock": "wall" if primary is wall else "process cpu",
            "wall_s_per_token": wall, "cpu_s_per_token": cpu, "tokens": sum(len(r) for r in ids)}


def routed_model(name: str, device, experts: int, rank: int, layer: int, seed: int = 0):
    from interp.safemoe.experts import _add_adapter
    from interp.safemoe.router import Router, RouterConfig
    from interp.train.lora import LoRAConfig

    model = load_model(name, device=device)
    cfg = LoRAConfig(rank=rank, alpha=2.0 * rank)
    names = [f"e{i}" for i in range(experts)]
    tuner = None
    for i, n in enumerate(names):
        tuner = _add_adapter(model, tuner, n, cfg, seed=seed + i)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.hf.named_parameters():
            if "lora_B" in pname:
                p.copy_((torch.randn(p.shape, generator=g) * 1e-3).to(p.device, p.dtype))
    torch.manual_seed(seed)
    router = Router(model.spec.d_model, experts, RouterConfig(layer=layer)).to(model.device).eval()
    return model, names, router


def main(argv=None) -> None:
    from interp.safemoe.router import residual_features
    from interp.safemoe.routing import routed

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--device", default=None)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--layer", type=int, default=None, help="router layer (default: a fifth of the depth)")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--impl", nargs="+", default=["fused", "loop"], choices=["fused", "loop"],
                   help="routing implementations to time (interp.safemoe.routing.Impl)")
    p.add_argument("--out", default=None, help="write the result as JSON here")
    args = p.parse_args(argv)

    prompts = builtin_prompts("harmless").sample(args.prompts, seed=0).texts
    base = load_model(args.model, device=args.device)
    layer = args.layer if args.layer is not None else max(0, base.spec.n_layers // 5)
    base_t = timed(base, prompts, args.new_tokens, args.batch_size, args.repeats)
    del base
    model, names, router = routed_model(args.model, args.device, args.experts, args.rank, layer)
    result = {"model": args.model, "device": str(model.device), "experts": args.experts, "rank": args.rank,
              "router_layer": layer, "prompts": args.prompts, "new_tokens": args.new_tokens,
              "batch_size": args.batch_size, "threads": torch.get_num_threads(), "base": base_t, "goal": "<= 1.3"}
    print(f"base          {base_t['s_per_token'] * 1e3:8.3f} ms/token ({base_t['tokens']} tokens)")
    for impl in args.impl:
        with routed(model, names, router, lambda ids, mask: residual_features(model, layer, ids, mask), impl=impl):
            t = timed(model, prompts, args.new_tokens, args.batch_size, args.repeats)
        ratio = t["s_per_token"] / base_t["s_per_token"]
        result[f"routed_{impl}"] = t | {"ratio_per_token": ratio, "meets_goal": ratio <= 1.3}
        print(f"routed {impl:<6s} {t['s_per_token'] * 1e3:8.3f} ms/token ({t['tokens']} tokens, {args.experts} "
              f"experts rank {args.rank}, router at layer {layer}): ratio {ratio:.3f} (goal <= 1.3)")
    if args.out:
        from interp.io import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
