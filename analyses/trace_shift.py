"""TRACE policy shift: triage counts, impact weights per category, agreement before/after, capability retention.

config -> compute -> plot -> write. Reads one or more ``interp realign`` runs (OUT/triage.json,
OUT/impact.json, OUT/model) of the same policy shift, evaluates the starting model and each re-aligned
model with the one harness (:func:`interp.evaluate.harness.evaluate`) on the held-out halves of the
prompt sets the pairs were built from, and writes to --out:

* agreement with the new policy on changed and unchanged categories, per model, paired against the
  starting model on the same prompts (exact McNemar p, Newcombe interval), and per category;
* capability retention: first-token KL to the starting model on the held-out harmless prompts,
  reference-text loss, MC1 on held-out TruthfulQA, AdvBench refusal on held-out AdvBench (paired);
* a figure (triage per category, impact weight per category, agreement before/after per run).

Evaluations (every reply, harmful ones included) are cached per model in --cache (default
runs/trace_shift/POLICY/NAME-KEY.json, keyed by model files and settings), never under the figures, so a
rerun only evaluates new runs.

    .venv/bin/python analyses/trace_shift.py --policy analyses/policies/loosen_educational.toml \
        --run trace=runs/realign/loosen/trace --run naive_dpo=runs/realign/loosen/naive_dpo \
        --prompts builtin:seemingly_harmful --prompts builtin:harmless --prompts xstest \
        --labels seemingly_harmful,harmless --data-dir ../shared/data --out figures/realign/loosen
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path


def parse(argv=None) -> argparse.Namespace:
    from interp.cli.common import add_device_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, metavar="NAME=DIR",
                   help="a run of `interp realign` to evaluate, repeatable (first one: triage/impact figure)")
    p.add_argument("--base", default="runs/align/stl/model", help="the starting model")
    p.add_argument("--policy", required=True, help="the new policy (TOML)")
    p.add_argument("--old-policy", default="analyses/policies/stl_old.toml")
    p.add_argument("--prompts", action="append", default=None, metavar="SPEC",
                   help="prompt sets the pairs came from (their held-out halves are evaluated); default: built-in")
    p.add_argument("--labels", default="seemingly_harmful,harmless", help="prompt classes evaluated")
    p.add_argument("--data-dir", default=None, help="benchmark data folder (bare names in --prompts, AdvBench, MC)")
    p.add_argument("--per-class", type=int, default=None, help="held-out prompts per class (default: all)")
    p.add_argument("--advbench", type=int, default=60, help="held-out AdvBench prompts (0: none; needs --data-dir)")
    p.add_argument("--mc", type=int, default=100, help="held-out TruthfulQA MC questions (0: none; --data-dir)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out subsamples and bootstrap")
    p.add_argument("--no-eval", action="store_true", help="only the triage and impact figures")
    p.add_argument("--out", default=None, help="default: figures/realign/POLICY_NAME")
    p.add_argument("--cache", default=None, help="evaluation cache, holding every reply (default: "
                                                  "runs/trace_shift/POLICY_NAME; never under figures/)")
    add_device_args(p)
    return p.parse_args(argv)


def runs_of(args) -> dict[str, Path]:
    out = {}
    for item in args.run:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--run expects NAME=DIR, got {item!r}")
        out[name] = Path(path)
    return out


def eval_sets(args):
    """(agreement set: held-out halves + AdvBench sample, MC set or None)."""
    from interp.data.prompts import concat
    from interp.data.registry import load_prompts

    labels = [s for s in args.labels.split(",") if s]
    specs = args.prompts or [f"builtin:{lab}" for lab in labels]
    held = concat("heldout", [load_prompts(s, args.data_dir).split().test for s in specs])
    held = held.filter(lambda p: p.label in labels)
    held = concat(held.name, [held.by_label(lab).sample(args.per_class, args.seed) for lab in sorted(held.counts())])
    sets = [held]
    if args.advbench and args.data_dir:
        sets.append(load_prompts("advbench", args.data_dir).split().test.sample(args.advbench, args.seed))
    mc = None
    if args.mc and args.data_dir:
        mc = load_prompts("truthfulqa-mc", args.data_dir).split().test.sample(args.mc, args.seed)
    return concat("heldout+advbench", sets), mc, specs


def _model_key(path: Path, settings: dict) -> str:
    h = hashlib.sha1(json.dumps(settings, sort_keys=True).encode())
    for f in sorted(Path(path).glob("*.safetensors")) + sorted(Path(path).glob("interp.json")):
        st = f.stat()
        h.update(f"{f.name}\x00{st.st_size}\x00{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def evaluate_model(name: str, path: Path, base, prompts, mc, reference, args, cache: Path) -> dict:
    """Harness results (agreement set and MC set) of one model, cached on disk; ``reference()`` gives the
    starting model's first-token statistics (computed only when some model is not cached)."""
    from interp.evaluate.harness import GENERATION_LABELS, EvalConfig, evaluate
    from interp.io import write_json
    from interp.models import load_model

    settings = {"prompts": prompts.texts, "mc": mc.texts if mc is not None else None,
                "max_new_tokens": args.max_new_tokens, "seed": args.seed, "dtype": args.dtype}
    file = cache / f"{name}-{_model_key(path, settings)}.json"
    if file.exists():
        return json.loads(file.read_text())
    model = base if name == "before" else load_model(str(path), device=args.device, dtype=args.dtype)
    labels = tuple(sorted(set(GENERATION_LABELS) | {p.label for p in prompts}))
    config = EvalConfig(max_new_tokens=args.max_new_tokens, seed=args.seed, generate_labels=labels)
    main = evaluate(model, prompts, config, reference=reference(), judge_model=base).to_dict()
    mc_result = evaluate(model, mc, EvalConfig(seed=args.seed)).to_dict() if mc is not None else None
    record = {"name": name, "model": str(path), "main": main, "mc": mc_result}
    write_json(file, record)
    return record


def compute(args, runs: dict[str, Path]) -> dict:
    from interp.evaluate.capability import reference_stats
    from interp.evaluate.compare import compare
    from interp.models import load_model
    from interp.realign.agreement import agreement_from_records, paired_agreement
    from interp.realign.policy import load_policy

    new, old = load_policy(args.policy), load_policy(args.old_policy)
    prompts, mc, specs = eval_sets(args)
    base = load_model(args.base, device=args.device, dtype=args.dtype)
    harmless = prompts.filter(lambda p: p.label == "harmless")
    from functools import cache as once

    reference = once(lambda: reference_stats(base, harmless.texts if len(harmless) else prompts.texts[:32]))
    cache = Path(args.cache or f"runs/trace_shift/{new.name}")
    evals = {"before": evaluate_model("before", Path(args.base), base, prompts, mc, reference, args, cache)}
    for name, run in runs.items():
        evals[name] = evaluate_model(name, run / "model", base, prompts, mc, reference, args, cache)
    agreement = {n: agreement_from_records(e["main"]["records"], new, old) for n, e in evals.items()}
    out = {"prompts": specs, "n_eval": prompts.counts(), "n_mc": len(mc) if mc is not None else 0,
           "policy": new.to_dict(), "old_policy": old.to_dict(), "base": args.base,
           "agreement": {n: {k: v for k, v in a.to_dict().items() if k != "records"} for n, a in agreement.items()},
           "paired": {}, "capability": {}}
    for name in runs:
        out["paired"][name] = paired_agreement(agreement["before"], agreement[name])
        cmp = compare(evals["before"]["main"], evals[name]["main"])
        if evals[name]["mc"] is not None:
            cmp += compare(evals["before"]["mc"], evals[name]["mc"])
        keep = ("harmful/refusal_rate[source=advbench]", "harmful/refusal_rate", "factual/mc1",
                "harmless/compliance_rate", "seemingly_harmful/compliance_rate", "harmless/degenerate_rate",
                "seemingly_harmful/degenerate_rate")
        metrics = evals[name]["main"]["metrics"]
        out["capability"][name] = {
            "first_token_kl": metrics.get("capability/first_token_kl"),
            "reference_ce": metrics.get("capability/reference_ce"),
            "reference_ce_before": metrics.get("capability/reference_ce_ref"),
            "paired": {c.metric: c.to_dict() for c in cmp if c.metric in keep},
        }
    return out


def plot(triage: dict, impact: dict | None, result: dict | None):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("triage per category", "impact weight per category",
                                                         "agreement with the new policy (95% CI)"))
    cats = sorted(triage["by_category"])
    for action in ("invert", "punish", "retain"):
        fig.add_trace(go.Bar(name=action, x=cats, y=[triage["by_category"][c][action] for c in cats]), 1, 1)
    if impact:
        for cat in sorted({str(it["category"]) for it in impact["items"]}):
            fig.add_trace(go.Box(name=cat, y=[it["weight"] for it in impact["items"] if str(it["category"]) == cat],
                                 boxpoints="all", showlegend=False), 1, 2)
    if result:
        groups = ("changed", "unchanged")
        for name, agr in result["agreement"].items():
            rates = [agr[g]["rate"] for g in groups]
            lo = [r - agr[g]["ci"][0] for r, g in zip(rates, groups, strict=True)]
            hi = [agr[g]["ci"][1] - r for r, g in zip(rates, groups, strict=True)]
            fig.add_trace(go.Bar(name=name, x=[f"{g} (n={agr[g]['n']})" for g in groups], y=rates,
                                 error_y={"type": "data", "array": hi, "arrayminus": lo}), 1, 3)
    fig.update_layout(barmode="group", height=440, width=1400)
    return fig


def table(result: dict) -> str:
    """Markdown: per run, paired agreement change (changed / unchanged) and capability retention."""
    lines = ["| model | changed agreement | Δ changed [95% CI], p | unchanged agreement | Δ unchanged [95% CI], p "
             "| first-token KL (nats) | AdvBench refusal Δ | MC1 Δ |", "|---|---|---|---|---|---|---|---|"]

    def rate(g: dict) -> str:
        return f"{g['rate']:.2f} (n={g['n']}, {g['degenerate']} degenerate)"

    def delta(c: dict | None) -> str:
        return "–" if c is None else f"{c['diff']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}], p={c['p_value']:.2g}"

    before = result["agreement"]["before"]
    lines.append(f"| before | {rate(before['changed'])} | | {rate(before['unchanged'])} | | | | |")
    for name, paired in result["paired"].items():
        agr, cap = result["agreement"][name], result["capability"][name]
        kl = cap["first_token_kl"]
        kl_s = "–" if kl is None else f"{kl['mean']:.3f} [{kl['low']:.3f}, {kl['high']:.3f}]"
        adv = cap["paired"].get("harmful/refusal_rate[source=advbench]")
        mc1 = cap["paired"].get("factual/mc1")
        lines.append(f"| {name} | {rate(agr['changed'])} | {delta(paired['changed'])} | {rate(agr['unchanged'])} "
                     f"| {delta(paired['unchanged'])} | {kl_s} | {delta(adv)} | {delta(mc1)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from interp.figures import save_figure
    from interp.io import write_json
    from interp.realign.policy import load_policy

    args = parse(argv)
    runs = runs_of(args)
    first = next(iter(runs.values()))
    triage = json.loads((first / "triage.json").read_text())
    impact_path = first / "impact.json"
    impact = json.loads(impact_path.read_text()) if impact_path.exists() else None
    args.out = args.out or f"figures/realign/{load_policy(args.policy).name}"
    out = Path(args.out)
    result = None if args.no_eval else compute(args, runs)
    trainings = {}
    for name, run in runs.items():
        summary = run / "realign.json"
        if summary.exists():
            s = json.loads(summary.read_text())
            trainings[name] = {k: s.get(k) for k in ("config", "triage", "impact", "train", "n_pairs", "prompts",
                                                       "dropped_refusal_answers")}
    import sys

    cli = argv if argv is not None else sys.argv[1:]
    record = {"command": "analyses/trace_shift.py " + " ".join(cli),
              "runs": {n: str(p) for n, p in runs.items()}, "training": trainings,
              "triage": {k: triage[k] for k in ("counts", "by_category", "n_gold")},
              "impact": None if impact is None else {k: impact.get(k) for k in ("n_scored", "seconds_per_pair",
                                                                                 "gold_loss", "items")},
              "result": result}
    write_json(out / "summary.json", record)
    if result is not None:
        (out / "table.md").write_text(table(result))
    save_figure(plot(triage, impact, result), out / "trace_shift", data=record)
    print(f"wrote {out}")
    if result is not None:
        print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
