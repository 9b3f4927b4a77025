"""``interp eval``: behaviour evaluation of one model on prompt sets; prints a table, writes JSON."""

from __future__ import annotations

import argparse

from interp.cli.common import add_data_args, add_model_args, add_sampling_args


def add_parser(sub) -> None:
    from interp.evaluate.harness import EvalConfig

    d = EvalConfig()
    p = sub.add_parser(
        "eval", help="refusal, over-refusal, compliance and truthfulness of a model, with bootstrap CIs",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Greedy generation through the chat template, refusal detection, first-token refusal "
        "scores, multiple-choice truthfulness, optional first-token KL against a reference model.")
    add_model_args(p)
    add_data_args(p)
    p.add_argument("--out", default="runs/eval/eval.json", help="JSON with metrics and per-prompt records")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    add_sampling_args(p, d.max_prompts_per_class, d.seed, "prompts evaluated per class")
    p.add_argument("--split", choices=("test", "all"), default="test",
                   help="'test': the held-out halves (never used in training); 'all': every prompt")
    p.add_argument("--judge", default=None,
                   help="model whose likelihood judges reply coherence (default: the evaluated model)")
    p.add_argument("--reference", default=None,
                   help="reference model for first-token KL and text cross-entropy (e.g. the base model)")
    p.add_argument("--all-rows", action="store_true", help="print per-source and per-style rows too")
    p.set_defaults(func=run)


def print_table(result, all_rows: bool = False, title: str = "evaluation") -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for col in ("metric", "mean", "95% CI", "n"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    for row in result.table():
        if "[" in row["metric"] and not all_rows:
            continue
        table.add_row(escape(row["metric"]), f"{row['mean']:.3f}", f"[{row['low']:.3f}, {row['high']:.3f}]",
                      str(row["n"]))
    Console().print(table)


def run(args) -> int:
    from interp.cli.common import load_data_from, load_model_from
    from interp.evaluate import EvalConfig, evaluate, reference_stats

    prompts = load_data_from(args)
    if args.split == "test":
        prompts = prompts.split().test
    config = EvalConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                        max_prompts_per_class=args.per_class, seed=args.seed)
    reference = None
    if args.reference:
        ref_model = load_model_from(args, args.reference)
        harmless = prompts.by_label("harmless").texts
        reference = reference_stats(ref_model, harmless, batch_size=args.batch_size)
        del ref_model
    model = load_model_from(args)
    judge = load_model_from(args, args.judge) if args.judge else None
    result = evaluate(model, prompts, config, reference, judge_model=judge)
    result.to_json(args.out)
    print_table(result, args.all_rows, title=f"{model.name} on {prompts.name}")
    print(f"wrote {args.out}")
    return 0
