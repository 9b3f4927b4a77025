"""``interp realign``: re-align a model to a changed policy with TRACE (triage, impact scores, hybrid loss)."""

from __future__ import annotations

import argparse

from interp.cli.common import add_model_args


def add_parser(sub) -> None:
    from interp.realign.config import VARIANTS, RealignConfig

    cfg = RealignConfig()
    p = sub.add_parser(
        "realign", help="TRACE: triage preference pairs against a new policy, score them, re-train",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Build preference pairs on the training half of the built-in prompts (a built-in refusal "
        "against a helpful answer, preferred as --old-policy says), triage them against --policy, score the "
        "conflicts by alignment impact and re-train. Stages run up to --stage; each writes JSON under OUT "
        "(triage.json, impact.json, train.json + model/). Resumes from OUT/checkpoint.")
    add_model_args(p)
    p.add_argument("--policy", required=True, help="new policy (TOML; see analyses/policies/)")
    p.add_argument("--old-policy", default="analyses/policies/stl_old.toml",
                   help="policy the pairs were labelled under (which reply was preferred)")
    p.add_argument("--prompts", action="append", default=None, metavar="SPEC",
                   help="prompt sets to pair, repeatable (registry specs with optional ?field=v1,v2 filters, e.g. "
                        "builtin:harmless, xstest, 'truthfulqa?category=Health'); default: the built-in --labels")
    p.add_argument("--data-dir", default=None, help="benchmark data folder for bare benchmark names in --prompts")
    p.add_argument("--labels", default="seemingly_harmful,harmless", help="prompt classes to pair")
    p.add_argument("--per-class", type=int, default=None, help="at most this many training prompts per class (seeded)")
    p.add_argument("--answer-model", default=None,
                   help="model whose greedy replies are the helpful answers (default: --model); use the model "
                        "before refusal training when --model refuses the prompts")
    p.add_argument("--answer-tokens", type=int, default=64, help="new tokens of self-distilled answers")
    p.add_argument("--stage", choices=("triage", "score", "train"), default="train", help="last stage to run")
    p.add_argument("--variant", choices=VARIANTS, default=cfg.variant)
    p.add_argument("--loss", choices=("dpo", "ipo"), default=cfg.loss)
    p.add_argument("--beta", type=float, default=cfg.beta)
    p.add_argument("--alpha", type=float, default=cfg.alpha)
    p.add_argument("--lr", type=float, default=cfg.lr)
    p.add_argument("--epochs", type=int, default=cfg.epochs)
    p.add_argument("--steps", type=int, default=None, help="stop after this many optimizer steps")
    p.add_argument("--batch-size", type=int, default=cfg.batch_size)
    p.add_argument("--max-length", type=int, default=cfg.max_length)
    p.add_argument("--gold-fraction", type=float, default=cfg.gold_fraction)
    p.add_argument("--gold-scope", choices=("all", "conflicts"), default=cfg.gold_scope,
                   help="gold pairs from all set-aside prompts, or only those the new policy flips")
    p.add_argument("--max-retain", type=int, default=cfg.max_retain, help="at most this many RETAIN pairs for KL")
    p.add_argument("--params", default=",".join(cfg.params), help="comma-separated parameter name patterns")
    p.add_argument("--checkpoint-every", type=int, default=cfg.checkpoint_every)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output directory (default: runs/realign/POLICY/VARIANT)")
    p.set_defaults(func=run)


def config_from(args):
    from interp.realign.config import RealignConfig

    return RealignConfig(variant=args.variant, loss=args.loss, beta=args.beta, alpha=args.alpha, lr=args.lr,
                         epochs=args.epochs, max_steps=args.steps, batch_size=args.batch_size,
                         max_length=args.max_length, gold_fraction=args.gold_fraction, gold_scope=args.gold_scope,
                         max_retain=args.max_retain,
                         params=tuple(s for s in args.params.split(",") if s), seed=args.seed,
                         checkpoint_every=args.checkpoint_every)


def run(args) -> int:
    from pathlib import Path

    from interp.cli.common import load_model_from
    from interp.realign.data import dropped_refusals, policy_pairs, training_prompts
    from interp.realign.policy import load_policy
    from interp.realign.stages import run_stages

    new, old = load_policy(args.policy), load_policy(args.old_policy)
    config = config_from(args)
    out = Path(args.out or f"runs/realign/{new.name}/{config.variant}")
    model = load_model_from(args)
    labels = [s for s in args.labels.split(",") if s]
    specs = args.prompts or [f"builtin:{lab}" for lab in labels]
    prompts = training_prompts(specs, labels, args.per_class, args.seed, args.data_dir)
    answerer = model if args.answer_model is None else load_model_from(args, args.answer_model)
    pairs = policy_pairs(answerer, prompts, old, args.answer_tokens, cache_dir=out.parent / "answers")
    del answerer
    summary = run_stages(model, pairs, new, config, out, args.stage,
                         provenance={"model": args.model, "old_policy": old.to_dict(), "labels": labels,
                                     "prompts": specs, "prompt_counts": prompts.counts(),
                                     "answer_model": args.answer_model or args.model,
                                     "dropped_refusal_answers": dropped_refusals(prompts, pairs)})
    counts = summary["triage"]["counts"]
    line = f"triage {counts}"
    if "impact" in summary:
        line += f"; scored {summary['impact']['n_scored']} pairs ({summary['impact']['seconds_per_pair']:.3g} s each)"
    if "train" in summary:
        line += f"; trained {summary['train']['steps']} steps -> {summary['train']['model_dir']}"
    print(f"{line}\nresults in {out}")
    return 0
