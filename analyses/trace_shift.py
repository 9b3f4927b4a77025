"""TRACE policy shift: triage counts, impact-score distribution per category, before/after agreement.

config -> compute -> plot -> write. Reads a ``interp realign`` run (OUT/triage.json, OUT/impact.json,
OUT/model), measures target-policy agreement of the starting and the re-aligned model on the held-out
half of the built-in prompts (changed vs unchanged categories), and writes figures and numbers to --out.

    .venv/bin/python analyses/trace_shift.py --run runs/realign/loosen-educational/trace \
        --base runs/align/stl/model --policy analyses/policies/loosen_educational.toml
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def parse(argv=None) -> argparse.Namespace:
    from interp.cli.common import add_device_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="output directory of `interp realign`")
    p.add_argument("--base", default="runs/align/stl/model", help="the starting model")
    p.add_argument("--policy", required=True, help="the new policy (TOML)")
    p.add_argument("--old-policy", default="analyses/policies/stl_old.toml")
    p.add_argument("--labels", default="seemingly_harmful,harmless")
    p.add_argument("--per-label", type=int, default=None, help="held-out prompts per class (default: all)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--no-eval", action="store_true", help="only the triage and impact figures")
    p.add_argument("--out", default=None, help="default: figures/realign/RUN_NAME")
    add_device_args(p)
    return p.parse_args(argv)


def compute_agreement(args) -> dict:
    from interp.data.builtin import builtin_prompts
    from interp.data.prompts import concat
    from interp.models import load_model
    from interp.realign.agreement import policy_agreement
    from interp.realign.policy import load_policy

    new, old = load_policy(args.policy), load_policy(args.old_policy)
    prompts = concat("heldout", [builtin_prompts(lab).split().test.sample(args.per_label, 0)
                                 for lab in args.labels.split(",")])
    out = {}
    for name, path in (("before", args.base), ("after", str(Path(args.run) / "model"))):
        model = load_model(path, device=args.device, dtype=args.dtype)
        result = policy_agreement(model, prompts, new, old, args.max_new_tokens)
        out[name] = asdict(result)
    return out


def plot(triage: dict, impact: dict | None, agreement: dict | None):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("triage per category", "impact weight per category",
                                                         "agreement with the new policy"))
    cats = sorted(triage["by_category"])
    for action in ("invert", "punish", "retain"):
        fig.add_trace(go.Bar(name=action, x=cats, y=[triage["by_category"][c][action] for c in cats]), 1, 1)
    if impact:
        for cat in sorted({it["category"] for it in impact["items"]}):
            fig.add_trace(go.Box(name=str(cat), y=[it["weight"] for it in impact["items"] if it["category"] == cat],
                                 boxpoints="all", showlegend=False), 1, 2)
    if agreement:
        for when in ("before", "after"):
            groups = ("changed", "unchanged")
            rates = [agreement[when][g]["rate"] for g in groups]
            lo = [r - agreement[when][g]["ci"][0] for r, g in zip(rates, groups, strict=True)]
            hi = [agreement[when][g]["ci"][1] - r for r, g in zip(rates, groups, strict=True)]
            fig.add_trace(go.Bar(name=when, x=list(groups), y=rates,
                                 error_y={"type": "data", "array": hi, "arrayminus": lo}), 1, 3)
    fig.update_layout(barmode="group", height=420, width=1300)
    return fig


def main(argv=None) -> int:
    from interp.figures import save_figure
    from interp.io import write_json

    args = parse(argv)
    run = Path(args.run)
    triage = json.loads((run / "triage.json").read_text())
    impact_path = run / "impact.json"
    impact = json.loads(impact_path.read_text()) if impact_path.exists() else None
    agreement = None if args.no_eval else compute_agreement(args)
    out = Path(args.out or f"figures/realign/{run.parent.name}_{run.name}")
    summary = {"triage": {k: triage[k] for k in ("counts", "by_category", "n_gold")},
               "impact": None if impact is None else {k: impact[k] for k in ("n_scored", "seconds_per_pair",
                                                                            "gold_loss", "items")},
               "agreement": None if agreement is None else {
                   w: {g: agreement[w][g] for g in ("changed", "unchanged", "by_category")} for w in agreement}}
    write_json(out / "summary.json", summary)
    save_figure(plot(triage, impact, agreement), out / "trace_shift", data=summary)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
