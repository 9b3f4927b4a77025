"""The DCR paper's main table on the embedded model: base vs STL vs STL-aug vs DCR.

config -> compute -> plot -> write. For every recipe, reuses ``runs/align/RECIPE/model`` (training it
with ``interp.train.align`` when missing) and evaluates on the held-out halves only: compliance on
seemingly harmful prompts per source (XSTest safe, OKTest, CoCoNot contrast, JBB benign, built-in),
refusal rate on harmful prompts per source (AdvBench, HarmBench, CatQA, JBB, built-in), compliance on
harmless prompts, factual MC1. Also draws refusal probability and gradient-kernel similarity over
training from each run's ``train.json``. Writes table.csv/json and figures into --out.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import asdict
from pathlib import Path

RECIPES = ("stl", "stl-aug", "dcr", "dcr-strong")
VARIANTS = {"dcr-strong": ("dcr", {"lr": 2e-5})}
"""Named runs that are a recipe with other contrastive-stage settings: name -> (recipe, overrides)."""


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
    p.add_argument("--kernel-only", action="store_true", help="with --only: measure kernels, skip evaluation")
    p.add_argument("--kernel-per-class", type=int, default=4,
                   help="held-out prompts per class for the gradient-kernel similarity at each checkpoint (0: skip)")
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


def load_cached_eval(path: Path, config: dict, prompts, dtype: str = "float32") -> dict:
    """A cached evaluation, only if it used these settings, this dtype and exactly these prompts (else a
    clear error). Evaluations cached before the dtype was recorded were float32."""
    saved = json.loads(path.read_text())
    if saved["provenance"].get("dtype", "float32") != dtype:
        raise ValueError(f"{path} was evaluated in {saved['provenance'].get('dtype', 'float32')}, not {dtype}; "
                         f"delete it or run without --reuse")
    if saved["provenance"].get("config") != config:
        old = saved["provenance"].get("config", {})
        differ = sorted(k for k in config.keys() | old.keys() if old.get(k) != config.get(k))
        raise ValueError(f"{path} was evaluated with other settings (differing: {', '.join(differ)}); "
                         f"delete it or run without --reuse")
    want = sorted((p.label, p.source, p.text) for p in prompts)
    got = sorted((r["label"], r["source"], r["prompt"]) for r in saved["records"])
    if want != got:
        raise ValueError(f"{path} scored other prompts ({len(got)} cached vs {len(want)} now); "
                         f"delete it or run without --reuse")
    return saved


def data_selection(data_dir, per_source: int | None = None, seed: int = 0):
    """The recipes' training pools and this table's held-out evaluation prompts."""
    from interp.data.selection import DataSelection
    from interp.train.align import align_data_selection

    recipes = align_data_selection(data_dir, seed)
    return DataSelection("align_table", recipes.train,
                         recipes.evaluation | {"table": eval_prompts(data_dir, per_source, None)})


def checkpoint(recipe: str, runs: Path, data_dir, train: bool, device=None, dtype: str = "float32") -> Path | None:
    path = runs / recipe / "model"
    if (path / "config.json").exists():
        return path
    if not train:
        return None
    from dataclasses import replace

    from interp.models import load_model
    from interp.train import AlignConfig, ContrastiveConfig, align
    from interp.train.align import suite_align_data
    from interp.train.tracking import tracking_callbacks

    base, overrides = VARIANTS.get(recipe, (recipe, {}))
    config = AlignConfig(recipe=base, contrastive=replace(ContrastiveConfig(), **overrides))
    model = load_model(device=device, dtype=dtype)
    align(model, suite_align_data(data_dir), config, runs / recipe,
          callbacks=tracking_callbacks(model, data_dir, kernel=False))  # kernels: per checkpoint, below
    return path


def kernel_at_checkpoints(models: dict[str, str], runs: Path, data_dir, per_class: int, out: Path,
                          only=None, reuse: bool = False, device=None, dtype: str = "float32") -> dict:
    """Sketched NTK class similarities of every checkpoint (DCR also after its contrastive stage).

    Each checkpoint's result is cached as OUT/kernel_NAME.json, so checkpoints can be measured apart.
    """
    from interp.io import write_json
    from interp.models import load_model
    from interp.ntk.config import NTKConfig
    from interp.ntk.similarity import kernel_similarity
    from interp.train.tracking import probe_prompts

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
            if (saved.get("n_per_class") != per_class or saved.get("config") != NTKConfig().to_dict()
                    or saved.get("dtype", "float32") != dtype):
                raise ValueError(f"{cached} was measured with other settings; delete it or run without --reuse")
            result[name] = saved["class_means"]
            continue
        if only is not None and name not in only:
            continue
        km = kernel_similarity(load_model(ref, device=device, dtype=dtype), probes, NTKConfig())
        result[name] = {f"{a} x {b}": v for (a, b), v in km.class_means().items()}
        write_json(cached, {"class_means": result[name], "model": ref, "n_per_class": per_class,
                            "config": NTKConfig().to_dict(), "dtype": dtype})
    return result


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
    from interp.evaluate import Estimate, EvalConfig, evaluate
    from interp.evaluate.compare import compare
    from interp.evaluate.plots import headline_bars
    from interp.evaluate.redact import redact
    from interp.figures import save_figure
    from interp.io import write_json, write_text
    from interp.models import load_model
    from interp.train.plots import training_curves

    args = parse(argv)
    out, runs = Path(args.out), Path(args.runs)
    prompts = eval_prompts(args.data_dir, args.per_source, args.harmless_per_source)
    config = EvalConfig(max_new_tokens=args.max_new_tokens)
    config_dict = json.loads(json.dumps(asdict(config)))  # as it reads back from a cached JSON
    judge = None  # one coherence judge, the unmodified base model, for every checkpoint (loaded when needed)
    models = {"base": args.base}
    for recipe in args.recipes:
        wanted = not args.only or recipe in args.only
        path = checkpoint(recipe, runs, args.data_dir, train=wanted and not args.no_train,
                          device=args.device, dtype=args.dtype)
        if path is not None:
            models[recipe] = str(path)
        elif args.reuse and (runs / "eval" / f"eval_{recipe}.json").exists():
            models[recipe] = str(runs / recipe / "model")  # evaluated earlier; the checkpoint may be gone
    results, provenance, saved_all = {}, {}, {}
    for name, ref in models.items():
        # the full evaluation (harmful prompts and replies) stays under runs/; figures get a redacted copy
        cached = runs / "eval" / f"eval_{name}.json"
        if args.reuse and cached.exists():
            saved = load_cached_eval(cached, config_dict, prompts, args.dtype)
        elif (args.only and name not in args.only) or args.kernel_only:
            continue
        else:
            if judge is None:
                judge = load_model(args.base, device=args.device, dtype=args.dtype)
            model = load_model(ref, device=args.device, dtype=args.dtype)
            saved = evaluate(model, prompts, config, judge_model=judge).to_dict()
            saved["provenance"] |= {"dtype": args.dtype, "device": str(model.device)}
            del model
            write_json(cached, saved)
        write_json(out / f"eval_{name}.json", redact(saved))
        results[name] = {k: Estimate(**v) for k, v in saved["metrics"].items()}
        provenance[name] = saved["provenance"]
        saved_all[name] = saved
    if args.only:
        if args.kernel_per_class:
            kernel_at_checkpoints(models, runs, args.data_dir, args.kernel_per_class, out, args.only,
                                  reuse=args.reuse, device=args.device, dtype=args.dtype)
        return 0  # partial run: per-model results are cached; assemble with --reuse
    ref_name = args.compare_to
    comparisons = {name: compare(saved_all[ref_name], saved_all[name]) for name in saved_all
                   if name != ref_name and ref_name in saved_all}
    write_json(out / "comparisons.json", {"reference": ref_name, "comparisons": {
        name: [c.to_dict() for c in cs] for name, cs in comparisons.items()}})
    rows = table_rows(results, comparisons)
    write_csv(out / "table.csv", rows)
    write_text(out / "table.md", markdown(rows) + "\n" + markdown_by_metric(results, comparisons, ref_name))
    write_json(out / "table.json", {"rows": rows, "models": models, "prompts": prompts.counts("source"),
                                    "config": {"per_source": args.per_source,
                                               "harmless_per_source": args.harmless_per_source,
                                               "max_new_tokens": args.max_new_tokens, "compare_to": ref_name,
                                               "dtype": args.dtype, "device": args.device},
                                    "provenance": provenance})
    save_figure(headline_bars(results, "safety alignment on held-out prompts (95% bootstrap CI)"),
                out / "headline", {k: {m: e.to_dict() for m, e in v.items()} for k, v in results.items()})
    histories = training_histories(args.recipes, runs, out)
    for metric, fig in training_curves(histories).items():
        save_figure(fig, out / f"training_{metric}", {r: h.get("history", []) for r, h in histories.items()})
    if args.kernel_per_class:
        # with --reuse only cached kernels are drawn; measure missing ones with --only NAME --kernel-only
        kernels = kernel_at_checkpoints(models, runs, args.data_dir, args.kernel_per_class, out,
                                        only=() if args.reuse else None, reuse=args.reuse,
                                        device=args.device, dtype=args.dtype)
        save_figure(kernel_figure(kernels), out / "kernel_similarity", kernels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
