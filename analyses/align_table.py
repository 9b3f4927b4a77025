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
from pathlib import Path

RECIPES = ("stl", "stl-aug", "dcr", "dcr-strong")
VARIANTS = {"dcr-strong": ("dcr", {"lr": 2e-5})}
"""Named runs that are a recipe with other contrastive-stage settings: name -> (recipe, overrides)."""


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base", default="smollm2-135m-instruct")
    p.add_argument("--runs", default="runs/align", help="where RECIPE/model checkpoints live")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="figures/align")
    p.add_argument("--per-source", type=int, default=25, help="held-out prompts per source")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--no-train", action="store_true", help="skip recipes without a checkpoint")
    p.add_argument("--only", nargs="+", default=None, help="evaluate only these models (base or recipe names)")
    p.add_argument("--reuse", action="store_true", help="reuse OUT/eval_NAME.json where it exists")
    p.add_argument("--kernel-only", action="store_true", help="with --only: measure kernels, skip evaluation")
    p.add_argument("--kernel-per-class", type=int, default=4,
                   help="held-out prompts per class for the gradient-kernel similarity at each checkpoint (0: skip)")
    return p.parse_args(argv)


def eval_prompts(data_dir, per_source: int):
    from interp.data.prompts import concat
    from interp.data.suites import load_suite

    sets = []
    for label in ("harmful", "seemingly_harmful", "harmless", "factual"):
        sets += list(load_suite(label, data_dir).test(per_source).values())
    return concat("heldout", sets)


def data_selection(data_dir, per_source: int | None = None, seed: int = 0):
    """The recipes' training pools and this table's held-out evaluation prompts."""
    from interp.data.selection import DataSelection
    from interp.train.align import align_data_selection

    recipes = align_data_selection(data_dir, seed)
    return DataSelection("align_table", recipes.train,
                         recipes.evaluation | {"table": eval_prompts(data_dir, per_source)})


def checkpoint(recipe: str, runs: Path, data_dir, train: bool) -> Path | None:
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
    model = load_model()
    align(model, suite_align_data(data_dir), config, runs / recipe,
          callbacks=tracking_callbacks(model, data_dir, kernel=False))  # kernels: per checkpoint, below
    return path


def kernel_at_checkpoints(models: dict[str, str], runs: Path, data_dir, per_class: int, out: Path,
                          only=None) -> dict:
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
        if cached.exists():
            result[name] = json.loads(cached.read_text())["class_means"]
            continue
        if only is not None and name not in only:
            continue
        km = kernel_similarity(load_model(ref), probes, NTKConfig())
        result[name] = {f"{a} x {b}": v for (a, b), v in km.class_means().items()}
        write_json(cached, {"class_means": result[name], "model": ref, "n_per_class": per_class,
                            "config": NTKConfig().to_dict()})
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


def table_rows(results: dict) -> list[dict]:
    rows = []
    for name, metrics in results.items():
        row = {"model": name}
        for key, est in metrics.items():
            if key.startswith(("harmful/refusal_rate", "seemingly_harmful/compliance_rate",
                               "harmless/compliance_rate", "factual/mc1")) and "style=" not in key:
                row[key] = round(est.mean, 4)
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    from interp.io import atomic_path

    cols = sorted({k for r in rows for k in r} - {"model"})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, ["model", *cols])
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> int:
    from interp.evaluate import Estimate, EvalConfig, evaluate
    from interp.evaluate.plots import headline_bars
    from interp.figures import save_figure
    from interp.io import write_json
    from interp.models import load_model
    from interp.train.plots import training_curves

    args = parse(argv)
    out, runs = Path(args.out), Path(args.runs)
    prompts = eval_prompts(args.data_dir, args.per_source)
    config = EvalConfig(max_new_tokens=args.max_new_tokens)
    models = {"base": args.base}
    for recipe in args.recipes:
        wanted = not args.only or recipe in args.only
        path = checkpoint(recipe, runs, args.data_dir, train=wanted and not args.no_train)
        if path is not None:
            models[recipe] = str(path)
        elif args.reuse and (out / f"eval_{recipe}.json").exists():
            models[recipe] = str(runs / recipe / "model")  # evaluated earlier; the checkpoint may be gone
    results, provenance = {}, {}
    for name, ref in models.items():
        cached = out / f"eval_{name}.json"
        if args.reuse and cached.exists():
            saved = json.loads(cached.read_text())
            results[name] = {k: Estimate(**v) for k, v in saved["metrics"].items()}
            provenance[name] = saved["provenance"]
            continue
        if args.only and name not in args.only:
            continue
        if args.kernel_only:
            continue
        result = evaluate(load_model(ref), prompts, config)
        result.to_json(cached)
        results[name] = result.metrics
        provenance[name] = result.provenance
    if args.only:
        if args.kernel_per_class:
            kernel_at_checkpoints(models, runs, args.data_dir, args.kernel_per_class, out, args.only)
        return 0  # partial run: per-model results are cached; assemble with --reuse
    rows = table_rows(results)
    write_csv(out / "table.csv", rows)
    write_json(out / "table.json", {"rows": rows, "models": models, "prompts": prompts.counts("source"),
                                    "config": {"per_source": args.per_source,
                                               "max_new_tokens": args.max_new_tokens},
                                    "provenance": provenance})
    save_figure(headline_bars(results, "safety alignment on held-out prompts (95% bootstrap CI)"),
                out / "headline", {k: {m: e.to_dict() for m, e in v.items()} for k, v in results.items()})
    histories = training_histories(args.recipes, runs, out)
    for metric, fig in training_curves(histories).items():
        save_figure(fig, out / f"training_{metric}", {r: h.get("history", []) for r, h in histories.items()})
    if args.kernel_per_class:
        # with --reuse only cached kernels are drawn; measure missing ones with --only NAME --kernel-only
        kernels = kernel_at_checkpoints(models, runs, args.data_dir, args.kernel_per_class, out,
                                        only=() if args.reuse else None)
        save_figure(kernel_figure(kernels), out / "kernel_similarity", kernels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
