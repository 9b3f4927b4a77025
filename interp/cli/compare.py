"""``interp compare A.json B.json``: two evaluations on the same prompts, as paired differences."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="paired differences (B - A) between two `interp eval` JSONs, with CIs and p-values",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Prompts are matched by class, source and text. Rates: Newcombe's paired interval and "
        "the exact McNemar test; first-token refusal log-odds and MC2: paired t (and Wilcoxon).")
    p.add_argument("a", help="evaluation JSON of the reference model (A)")
    p.add_argument("b", help="evaluation JSON of the model compared with it (B)")
    p.add_argument("--out", default=None, help="write all comparisons as JSON here")
    p.add_argument("--all-rows", action="store_true", help="print per-source rows too")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from interp.evaluate.compare import compare
    from interp.io import write_json

    rows = compare(args.a, args.b)
    table = Table(title=f"B - A   (A = {args.a}, B = {args.b})")
    for col in ("metric", "A", "B", "B - A", "95% CI", "p", "n"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for c in rows:
        if "[" in c.metric and not args.all_rows:
            continue
        table.add_row(c.metric, f"{c.mean_a:.3f}", f"{c.mean_b:.3f}", f"{c.diff:+.3f}",
                      f"[{c.low:+.3f}, {c.high:+.3f}]", f"{c.p_value:.2g}", str(c.n))
    Console().print(table)
    if args.out:
        write_json(args.out, {"a": args.a, "b": args.b, "comparisons": [c.to_dict() for c in rows]})
        print(f"wrote {args.out}")
    return 0
