"""``interp safemoe``: per-domain LoRA experts of unsafe knowledge combined by a learned safety router."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from interp.cli.common import add_model_args, load_model_from


def add_parser(sub) -> None:
    from interp.safemoe.config import EVAL_HARMFUL, HARM_SOURCES
    from interp.safemoe.domains import DOMAINS
    from interp.safemoe.stages import STAGES

    p = sub.add_parser("safemoe", help="SafeMoE: LoRA experts per harm domain + a safety router (issue 13)",
                       description="Resumable stages corpora -> experts -> router -> losses -> eval, writing "
                                   "JSON and adapters under --out (keep it under runs/: corpora and replies "
                                   "are harmful text).")
    add_model_args(p)
    p.add_argument("--stage", choices=(*STAGES, "all"), default="all", help="stage to run (default: all)")
    p.add_argument("--out", type=Path, default=Path("runs/safemoe"), help="output folder (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="benchmark data folder (catqa/, harmfulqa/, jbb_artifacts/, ...)")
    p.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=DOMAINS, help="harm domains (experts)")
    p.add_argument("--harm-sources", nargs="+", default=list(HARM_SOURCES), choices=HARM_SOURCES)
    p.add_argument("--eval-harmful", nargs="+", default=list(EVAL_HARMFUL))
    p.add_argument("--train-per-domain", type=int, default=64)
    p.add_argument("--heldout-per-domain", type=int, default=16)
    p.add_argument("--harmless-train", type=int, default=80)
    p.add_argument("--eval-per-source", type=int, default=40)
    p.add_argument("--corpus-tokens", type=int, default=96)
    p.add_argument("--eval-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16, help="generation batch size")
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--expert-epochs", type=int, default=2)
    p.add_argument("--expert-lr", type=float, default=2e-4)
    p.add_argument("--expert-max-length", type=int, default=256)
    p.add_argument("--router-layer", type=int, default=6)
    p.add_argument("--router-hidden", type=int, default=64)
    p.add_argument("--router-mode", choices=("null", "signed"), default="null")
    p.add_argument("--router-steps", type=int, default=150)
    p.add_argument("--router-lr", type=float, default=3e-3)
    p.add_argument("--zero-shot-holdout", nargs="+", default=["privacy", "sexual", "misinformation"])
    p.add_argument("--variants", nargs="+", default=None, help="eval: only these variants (default: all)")
    p.add_argument("--stl-model", default=None, help="eval: also score this model (e.g. an STL checkpoint) as 'stl'")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def config_from(args):
    from interp.safemoe.config import SafeMoEConfig, _expert_sft
    from interp.safemoe.router import RouterConfig
    from interp.train.lora import LoRAConfig

    sft = _expert_sft()
    sft = replace(sft, epochs=args.expert_epochs, lr=args.expert_lr, max_length=args.expert_max_length,
                  lora=LoRAConfig(rank=args.lora_rank, alpha=2.0 * args.lora_rank))
    router = RouterConfig(layer=args.router_layer, hidden=args.router_hidden, mode=args.router_mode,
                          steps=args.router_steps, lr=args.router_lr, seed=args.seed)
    zero = tuple(d for d in args.zero_shot_holdout if d in args.domains)
    return SafeMoEConfig(domains=tuple(args.domains), harm_sources=tuple(args.harm_sources),
                         train_per_domain=args.train_per_domain, heldout_per_domain=args.heldout_per_domain,
                         corpus_tokens=args.corpus_tokens, harmless_train=args.harmless_train, expert_sft=sft,
                         router=router, zero_shot_holdout=zero, eval_harmful=tuple(args.eval_harmful),
                         eval_per_source=args.eval_per_source, eval_tokens=args.eval_tokens,
                         batch_size=args.batch_size, seed=args.seed)


def _check_config(out: Path, cfg, model_name: str) -> None:
    """A run folder belongs to one configuration: resuming with other settings would mix results."""
    from interp.errors import InterpError
    from interp.io import write_json

    record = json.loads(json.dumps({"model": model_name, "config": cfg.to_dict()}, default=list))
    path = out / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != record:
            diff = sorted(k for k in set(old["config"]) | set(record["config"])
                          if old["config"].get(k) != record["config"].get(k))
            if old.get("model") != record["model"]:
                diff.insert(0, "model")
            raise InterpError(f"{out} was started with other settings ({', '.join(diff)}); use another --out")
        return
    write_json(path, record)


def run(args: argparse.Namespace) -> int:
    from interp.safemoe import stages

    cfg = config_from(args)
    out: Path = args.out
    _check_config(out, cfg, args.model)
    todo = stages.STAGES if args.stage == "all" else (args.stage,)
    for stage in todo:
        if stage == "corpora":
            res = stages.stage_corpora(load_model_from(args), cfg, out, args.data_dir)
            print("corpora:", res["counts"])
        elif stage == "experts":
            res = stages.stage_experts(lambda: load_model_from(args), cfg, out)
            print("experts:", {k: (v["first_loss"], v["last_loss"]) for k, v in res.items()})
        elif stage == "router":
            res = stages.stage_router(load_model_from(args), cfg, out)
            print("routers:", {k: (round(v["first_loss"], 3), round(v["last_loss"], 3)) for k, v in res.items()})
        elif stage == "losses":
            res = stages.stage_losses(load_model_from(args), cfg, out)
            print("expert diagonal is row minimum:", res["diagonal_is_row_min"])
        elif stage == "eval":
            extra = {"stl": lambda: load_model_from(args, args.stl_model)} if args.stl_model else None
            res = stages.stage_eval(load_model_from(args), cfg, out, args.data_dir, args.variants, extra)
            print(f"eval: {len(res)} variants scored")
    print(f"wrote {out}")
    return 0
