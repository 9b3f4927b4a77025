"""The DCR paper's main table on the embedded model: base vs STL vs STL-aug vs DCR.

config -> compute -> plot -> write. For every recipe, reuses ``runs/align/RECIPE/model`` (training it
with ``interp.train.align`` when missing) and evaluates on the held-out halves only: compliance on
seemingly harmful prompts per source (XSTest safe, OKTest, CoCoNot contrast, JBB benign, built-in),
refusal rate on harmful prompts per source (AdvBench, HarmBench, CatQA, JBB, built-in), compliance on
harmless prompts, factual MC1. Also draws refusal probability and gradient-kernel similarity over
training from each run's ``train.json``. Writes table.csv/json and figures into --out.

The DCR test (paired against STL on the 363 held-out seemingly harmful and 517 harmful prompts, with
the data directory; three seeds; the paper code's kernel at 25 prompts per class):

    python analyses/align_table.py --data-dir ../shared/data --recipes stl dcr dcr-frozen --compare-to stl \
        --seeds 0 1 2 --kernel-per-class 25 --kernel-top-k 10 --kernel-last-layers 2

A model trained with seed s > 0 is named RECIPE-sS (checkpoint RUNS/RECIPE-sS); it is compared with the
reference trained with the same seed where there is one, and seeds.md summarises mean ± sd over seeds.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from pathlib import Path

RECIPES = ("stl", "stl-aug", "dcr", "dcr-frozen", "dcr-strong")
VARIANTS = {"dcr-strong": ("dcr", {"lr": 2e-5}, {}),
            "dcr-frozen": ("dcr", {}, {"protect": "freeze"}),
            "dcr-lowlr": ("dcr", {}, {"protect": "lr"})}
"""Named runs that are a recipe with other settings: name -> (recipe, contrastive-stage overrides,
AlignConfig overrides); ``dcr-frozen`` keeps the layers <= l fixed during STL, ``dcr-lowlr`` slows them."""


def seeded(name: str, seed: int) -> str:
    """The model name of ``name`` trained with ``seed`` (seed 0 keeps the plain name)."""
    return name if seed == 0 else f"{name}-s{seed}"


def unseeded(name: str) -> tuple[str, int]:
    """``dcr-s2`` -> (``dcr``, 2); ``dcr`` -> (``dcr``, 0)."""
    head, _, tail = name.rpartition("-s")
    return (head, int(tail)) if head and tail.isdigit() else (name, 0)


def parse(argv=None) -> argparse.Namespace:
    from interp.cli.common import add_device_args

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base", default="smollm2-135m-instruct")
    p.add_argument("--runs", default="runs/align", help="where RECIPE/model checkpoints live")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="figures/align")
    p.add_argument("--per-source", type=int, default=None,
                   help="held-out prompts per source (default: the whole held-out half)")
    p.add_argument("--harmless-per-source", type=int, default=400,
                   help="cap on harmless held-out prompts per source (Alpaca's half has ~1,900)")
    p.add_argument("--compare-to", default="base", help="reference model of the paired differences")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--no-train", action="store_true", help="skip recipes without a checkpoint")
    p.add_argument("--only", nargs="+", default=None, help="evaluate only these models (base or recipe names)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse RUNS/eval/eval_NAME.json and OUT/kernel_NAME.json where they exist (their settings and "
                        "prompts must match this run's, else it stops)")
    p.add_argument("--no-base", action="store_true",
                   help="leave the untrained base model out of the table (compare recipes with each other only)")
    p.add_argument("--kernel-only", action="store_true", help="with --only: measure kernels, skip evaluation")
    p.add_argument("--kernel-per-class", type=int, default=4,
                   help="held-out prompts per class for the gradient-kernel similarity at each checkpoint (0: skip)")
    p.add_argument("--kernel-top-k", type=int, default=0,
                   help="kernel on each prompt's own top-k first-token logits (the paper's code: 10; 0: all logits)")
    p.add_argument("--kernel-last-layers", type=int, default=0,
                   help="kernel over the last L blocks and the final norm only (0: every parameter)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="overrides",
                   help="AlignConfig setting of every recipe this table trains, repeatable; dotted for the stages "
                        "(n_general=640, contrastive.layer=6, sft.lr=4e-5); values are JSON, else strings")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="train and evaluate every recipe with each seed (seed s > 0: model RECIPE-sS)")
    add_device_args(p)  # every model this table loads (base, checkpoints, judge, recipes it trains)
    return p.parse_args(argv)


def eval_prompts(data_dir, per_source: int | None = None, harmless_per_source: int | None = None):
    """Held-out halves of every suite source (``per_source`` / ``harmless_per_source`` cap them, seeded)."""
    from interp.data.prompts import concat
    from interp.data.suites import load_suite

    sets = []
    for label in ("harmful", "seemingly_harmful", "harmless", "factual"):
        caps = [c for c in (per_source, harmless_per_source if label == "harmless" else None) if c is not None]
        cap = min(caps) if caps else None
        sets += list(load_suite(label, data_dir).test(cap).values())
    return concat("heldout", sets)


def data_selection(data_dir, per_source: int | None = None, seed: int = 0):
    """The recipes' training pools and this table's held-out evaluation prompts."""
    from interp.data.selection import DataSelection
    from interp.train.align import align_data_selection

    recipes = align_data_selection(data_dir, seed)
    return DataSelection("align_table", recipes.train,
                         recipes.evaluation | {"table": eval_prompts(data_dir, per_source, None)})


def align_config(recipe: str, seed: int = 0, overrides: Sequence[str] = ()):
    """The AlignConfig of a recipe or :data:`VARIANTS` name, with ``--set FIELD=VALUE`` overrides applied."""
    from dataclasses import fields, replace

    from interp.train import AlignConfig, ContrastiveConfig, SFTConfig

    base, con_overrides, align_overrides = VARIANTS.get(recipe, (recipe, {}, {}))
    parts: dict[str, dict] = {"": dict(align_overrides), "contrastive": dict(con_overrides), "sft": {}}
    for item in overrides:
        key, sep, raw = item.partition("=")
        stage, _, field = key.rpartition(".")
        if not sep or stage not in parts:
            raise SystemExit(f"--set {item!r}: expected FIELD=VALUE with FIELD, contrastive.FIELD or sft.FIELD")
        known = {f.name for f in fields({"": AlignConfig, "contrastive": ContrastiveConfig, "sft": SFTConfig}[stage])}
        if field not in known:
            raise SystemExit(f"--set {item!r}: unknown field {field!r}; expected one of {sorted(known)}")
        try:
            parts[stage][field] = json.loads(raw)
        except json.JSONDecodeError:
            parts[stage][field] = raw
    con = replace(ContrastiveConfig(), **{"seed": seed, **parts["contrastive"]})
    sft = replace(SFTConfig(), **{"seed": seed, **parts["sft"]})
    return AlignConfig(**{"recipe": base, "seed": seed, **parts[""], "contrastive": con, "sft": sft})


def checkpoint(recipe: str, runs: Path, data_dir, train: bool, device=None, dtype: str = "float32",
               seed: int = 0, base_model: str | None = None, overrides: Sequence[str] = ()) -> Path | None:
    """RUNS/NAME/model of ``recipe`` trained with ``seed`` (NAME: :func:`seeded`) from ``base_model``
    (default: the embedded model), trained when missing."""
    name = seeded(recipe, seed)
    path = runs / name / "model"
    if (path / "config.json").exists():
        return path
    if not train:
        return None
    from interp.models import load_model
    from interp.train import align
    from interp.train.align import suite_align_data
    from interp.train.tracking import tracking_callbacks

    config = align_config(recipe, seed, overrides)
    model = load_model(*([base_model] if base_model else []), device=device, dtype=dtype)
    # one self-distillation cache for every recipe and seed (answers are the base model's, per prompt)
    align(model, suite_align_data(data_dir, seed=seed), config, runs / name,
          callbacks=tracking_callbacks(model, data_dir, kernel=False), cache_dir=runs / "cache")
    # kernels: per checkpoint, below
    return path


def kernel_at_checkpoints(models: dict[str, str], runs: Path, data_dir, per_class: int, out: Path,
                          only=None, reuse: bool = False, device=None, dtype: str = "float32", ntk=None) -> dict:
    """Sketched NTK class similarities of every checkpoint (DCR also after its contrastive stage).

    ``ntk``: the kernel's :class:`~interp.ntk.config.NTKConfig` (default: the full-vocabulary sketch).
    Each checkpoint's result is cached as OUT/kernel_NAME.json, so checkpoints can be measured apart; it
    holds the paper's class means and the symmetric ones with bootstrap CIs over prompts.
    """
    from interp.io import write_json
    from interp.models import load_model
    from interp.ntk.config import NTKConfig
    from interp.ntk.similarity import kernel_similarity
    from interp.train.tracking import probe_prompts

    ntk = ntk or NTKConfig()
    probes = probe_prompts(data_dir, per_class, seed=1)
    stages = {}
    for name, ref in models.items():  # training order: a DCR run's contrastive stage before its end
        contrastive = runs / name / "contrastive_model"
        if (contrastive / "config.json").exists() or (out / f"kernel_{name}-contrastive.json").exists():
            stages[f"{name}-contrastive"] = str(contrastive)
        stages[name] = ref
    result = {}
    for name, ref in stages.items():
        cached = out / f"kernel_{name}.json"
        if reuse and cached.exists():
            saved = json.loads(cached.read_text())
            # from_dict fills fields added since the cache was written with their defaults
            if (saved.get("n_per_class") != per_class or NTKConfig.from_dict(saved.get("config", {})) != ntk
                    or saved.get("dtype", "float32") != dtype):
                raise ValueError(f"{cached} was measured with other settings; delete it or run without --reuse")
            result[name] = saved["class_means"]
            continue
        if only is not None and name not in only:
            continue
        km = kernel_similarity(load_model(ref, device=device, dtype=dtype), probes, ntk)
        result[name] = {f"{a} x {b}": v for (a, b), v in km.class_means().items()}
        sym = km.class_stats("symmetric")
        write_json(cached, {"class_means": result[name], "model": ref, "n_per_class": per_class,
                            "config": ntk.to_dict(), "dtype": dtype,
                            "symmetric": {f"{a} x {b}": {"mean": v.mean, "low": v.low, "high": v.high}
                                          for (a, b), v in sym.pairs.items()},
                            "cross_within_ratio": _ratio(sym, "seemingly_harmful", "harmful")})
    return result


def _ratio(stats, a: str, b: str) -> dict | None:
    from interp.errors import EmptyPromptClassError

    try:
        r = stats.cross_within_ratio(a, b)
    except EmptyPromptClassError:  # a class missing from the probes: no ratio to report
        return None
    return {"pair": [a, b], "mean": r.mean, "low": r.low, "high": r.high}


def training_histories(recipes, runs: Path, out: Path) -> dict[str, dict]:
    """Each recipe's callback history, from ``runs/R/train.json`` (copied to OUT/history_R.json) or that copy.

    The copy beside the figures keeps the curves reproducible after the (large, uncommitted) runs are gone.
    """
    from interp.io import write_json

    histories = {}
    for r in recipes:
        run, cached = runs / r / "train.json", out / f"history_{r}.json"
        if run.exists():
            saved = json.loads(run.read_text())
            histories[r] = {"history": saved.get("history", []), "losses": saved.get("losses", []),
                            "source": str(run)}
            write_json(cached, histories[r])
        elif cached.exists():
            histories[r] = json.loads(cached.read_text())
    return histories


def kernel_figure(kernels: dict):
    import plotly.graph_objects as go

    pairs = [p for p in ("seemingly_harmful x harmful", "harmless x harmful", "harmful x harmful",
                         "seemingly_harmful x seemingly_harmful") if any(p in v for v in kernels.values())]
    fig = go.Figure()
    for pair in pairs:
        fig.add_bar(name=pair, x=list(kernels), y=[kernels[m].get(pair) for m in kernels])
    fig.update_layout(title="normalised gradient-kernel similarity ||K(x',x)||/||K(x',x')|| by checkpoint",
                      barmode="group", template="plotly_white", yaxis_title="mean similarity")
    return fig


def kernel_config(args):
    """The gradient kernel measured at every checkpoint: the full-vocabulary sketch, or with --kernel-top-k
    and --kernel-last-layers the paper code's variant."""
    from interp.ntk.config import NTKConfig

    return NTKConfig(top_k=args.kernel_top_k or None, last_layers=args.kernel_last_layers or None)


def reference_for(name: str, reference: str, evaluated: dict) -> str | None:
    """The model ``name`` is compared with: the reference trained with the same seed when it was evaluated,
    else the plain reference (``base`` has no seeds); None when neither was."""
    _, seed = unseeded(name)
    for cand in (seeded(reference, seed), reference):
        if cand in evaluated:
            return cand
    return None


def seed_summary(results: dict, comparisons: dict) -> dict:
    """Per recipe and pooled key metric: mean and sd over seeds of the value and of the paired difference."""
    import numpy as np

    groups: dict[str, list[str]] = {}
    for name in results:
        groups.setdefault(unseeded(name)[0], []).append(name)
    out = {}
    for recipe, names in groups.items():
        rows = {}
        for key in sorted({k for n in names for k in results[n] if _key(k) and "[" not in k}):
            vals = [results[n][key].mean for n in names if key in results[n]]
            diffs = [c.diff for n in names for c in comparisons.get(n, []) if c.metric == key]
            rows[key] = {"mean": float(np.mean(vals)), "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                         "n_seeds": len(vals), "diff_mean": float(np.mean(diffs)) if diffs else None,
                         "diff_sd": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
                         "diffs": diffs}
        out[recipe] = {"models": names, "metrics": rows}
    return out


def seed_markdown(spread: dict, reference: str) -> str:
    head = (f"| recipe | metric | mean ± sd over seeds | minus {reference} (same seed): mean ± sd | seeds |\n"
            "|---|---|---|---|---|\n")
    body = ""
    for recipe, g in spread.items():
        for key, r in g["metrics"].items():
            diff = "" if r["diff_mean"] is None else f"{r['diff_mean']:+.3f} ± {r['diff_sd'] or 0:.3f}"
            body += f"| {recipe} | {key} | {r['mean']:.3f} ± {r['sd']:.3f} | {diff} | {r['n_seeds']} |\n"
    return head + body


KEY_METRICS = ("harmful/refusal_rate", "harmful/degenerate_rate", "seemingly_harmful/compliance_rate",
               "seemingly_harmful/degenerate_rate", "harmless/compliance_rate", "harmless/degenerate_rate",
               "factual/mc1", "harmful/refusal_score", "seemingly_harmful/refusal_score", "harmless/refusal_score")


def _key(metric: str) -> bool:
    return metric.split("[")[0] in KEY_METRICS and "style=" not in metric


def table_rows(results: dict, comparisons: dict) -> list[dict]:
    """One row per model: each key metric as mean [CI] (n), and its paired difference from the reference."""
    rows = []
    for name, metrics in results.items():
        row = {"model": name}
        for key, est in metrics.items():
            if _key(key):
                row[key] = f"{est.mean:.3f} [{est.low:.3f}, {est.high:.3f}] (n={est.n})"
        for c in comparisons.get(name, []):
            if _key(c.metric):
                row[f"diff {c.metric}"] = f"{c.diff:+.3f} [{c.low:+.3f}, {c.high:+.3f}] p={c.p_value:.2g}"
        rows.append(row)
    return rows


def markdown_by_metric(results: dict, comparisons: dict, reference: str) -> str:
    """One row per key metric (pooled, then per source): every model's mean [CI] and b - reference [CI], p."""
    names = list(results)
    others = [n for n in names if n != reference and n in comparisons]
    head = ("| metric | " + " | ".join(names) + "".join(f" | {o} - {reference} [95% CI], p" for o in others)
            + " |\n|---|" + "---|" * (len(names) + len(others)) + "\n")
    ordered = sorted({k for m in results.values() for k in m if _key(k)},
                     key=lambda k: (KEY_METRICS.index(k.split("[")[0]), "[" in k, k))
    body = ""
    for key in ordered:
        cells = []
        for n in names:
            e = results[n].get(key)
            cells.append(f"{e.mean:.2f} [{e.low:.2f}, {e.high:.2f}] (n={e.n})" if e else "")
        for o in others:
            c = next((c for c in comparisons[o] if c.metric == key), None)
            cells.append(f"{c.diff:+.2f} [{c.low:+.2f}, {c.high:+.2f}], p={c.p_value:.2g}" if c else "")
        body += f"| {key} | " + " | ".join(cells) + " |\n"
    return head + body


def markdown(rows: list[dict], metrics: tuple[str, ...] = KEY_METRICS) -> str:
    """The pooled key metrics as a Markdown table (mean [CI]; difference from the reference, p)."""
    head = "| model | " + " | ".join(metrics) + " |\n|---|" + "---|" * len(metrics) + "\n"
    body = ""
    for r in rows:
        cells = []
        for m in metrics:
            cell = r.get(m, "")
            if f"diff {m}" in r:
                cell += f"; {r[f'diff {m}']}"
            cells.append(cell)
        body += f"| {r['model']} | " + " | ".join(cells) + " |\n"
    return head + body


def write_csv(path: Path, rows: list[dict]) -> None:
    from interp.io import atomic_path

    cols = sorted({k for r in rows for k in r} - {"model"})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, ["model", *cols])
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> int:
    from interp.evaluate import Estimate, EvalConfig
    from interp.evaluate.cache import evaluate_to, load_cached_eval
    from interp.evaluate.compare import compare
    from interp.evaluate.plots import headline_bars
    from interp.evaluate.redact import redact
    from interp.figures import save_figure
    from interp.io import write_json, write_text
    from interp.models import load_model
    from interp.train.plots import training_curves

    args = parse(argv)
    if args.no_base and args.compare_to == "base":
        raise SystemExit("--no-base needs --compare-to RECIPE (the paired reference cannot be the base model)")
    out, runs = Path(args.out), Path(args.runs)
    prompts = eval_prompts(args.data_dir, args.per_source, args.harmless_per_source)
    config = EvalConfig(max_new_tokens=args.max_new_tokens)
    judge = None  # one coherence judge, the unmodified base model, for every checkpoint (loaded when needed)
    models = {} if args.no_base else {"base": args.base}
    for seed in args.seeds:
        for recipe in args.recipes:
            name = seeded(recipe, seed)
            wanted = not args.only or name in args.only
            path = checkpoint(recipe, runs, args.data_dir, train=wanted and not args.no_train,
                              device=args.device, dtype=args.dtype, seed=seed, base_model=args.base,
                              overrides=args.overrides)
            if path is not None:
                models[name] = str(path)
            elif args.reuse and (runs / "eval" / f"eval_{name}.json").exists():
                models[name] = str(runs / name / "model")  # evaluated earlier; the checkpoint may be gone
    results, provenance, saved_all = {}, {}, {}
    for name, ref in models.items():
        # the full evaluation (harmful prompts and replies) stays under runs/; figures get a redacted copy
        cached = runs / "eval" / f"eval_{name}.json"
        if args.reuse and cached.exists():
            saved = load_cached_eval(cached, config, prompts, args.dtype)
        elif (args.only and name not in args.only) or args.kernel_only:
            continue
        else:
            if judge is None:
                judge = load_model(args.base, device=args.device, dtype=args.dtype)
            model = load_model(ref, device=args.device, dtype=args.dtype)
            saved = evaluate_to(cached, model, prompts, config, judge, args.dtype)
            del model
        write_json(out / f"eval_{name}.json", redact(saved))
        results[name] = {k: Estimate(**v) for k, v in saved["metrics"].items()}
        provenance[name] = saved["provenance"]
        saved_all[name] = saved
    ntk = kernel_config(args)
    if args.only:
        if args.kernel_per_class:
            kernel_at_checkpoints(models, runs, args.data_dir, args.kernel_per_class, out, args.only,
                                  reuse=args.reuse, device=args.device, dtype=args.dtype, ntk=ntk)
        return 0  # partial run: per-model results are cached; assemble with --reuse
    ref_name = args.compare_to
    refs = {name: reference_for(name, ref_name, saved_all) for name in saved_all}
    comparisons = {name: compare(saved_all[refs[name]], saved_all[name]) for name in saved_all
                   if refs[name] is not None and name != refs[name] and unseeded(name)[0] != ref_name}
    write_json(out / "comparisons.json", {"reference": ref_name, "references": refs, "comparisons": {
        name: [c.to_dict() for c in cs] for name, cs in comparisons.items()}})
    rows = table_rows(results, comparisons)
    write_csv(out / "table.csv", rows)
    write_text(out / "table.md", markdown(rows) + "\n" + markdown_by_metric(results, comparisons, ref_name))
    write_json(out / "table.json", {"rows": rows, "models": models, "prompts": prompts.counts("source"),
                                    "config": {"per_source": args.per_source,
                                               "harmless_per_source": args.harmless_per_source,
                                               "max_new_tokens": args.max_new_tokens, "compare_to": ref_name,
                                               "dtype": args.dtype, "device": args.device, "seeds": args.seeds,
                                               "overrides": args.overrides, "kernel": ntk.to_dict(),
                                               "kernel_per_class": args.kernel_per_class},
                                    "provenance": provenance})
    if len(args.seeds) > 1:
        spread = seed_summary(results, comparisons)
        write_json(out / "seeds.json", spread)
        write_text(out / "seeds.md", seed_markdown(spread, ref_name))
    save_figure(headline_bars(results, "safety alignment on held-out prompts (95% bootstrap CI)"),
                out / "headline", {k: {m: e.to_dict() for m, e in v.items()} for k, v in results.items()})
    histories = training_histories([n for n in models if n != "base"], runs, out)
    for metric, fig in training_curves(histories).items():
        save_figure(fig, out / f"training_{metric.replace('/', '_')}",
                    {r: h.get("history", []) for r, h in histories.items()})
    if args.kernel_per_class:
        # with --reuse only cached kernels are drawn; measure missing ones with --only NAME --kernel-only
        kernels = kernel_at_checkpoints(models, runs, args.data_dir, args.kernel_per_class, out,
                                        only=() if args.reuse else None, reuse=args.reuse,
                                        device=args.device, dtype=args.dtype, ntk=ntk)
        save_figure(kernel_figure(kernels), out / "kernel_similarity", kernels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
