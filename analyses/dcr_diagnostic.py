"""DCR's contrastive stage alone, diagnosed along the stage on held-out prompts, over a (layer, lr) sweep.

config -> compute -> plot -> write. For every (layer, lr) the base model runs the contrastive stage on the
training halves (seemingly harmful vs the contrastive share of the harmful prompts, as
``interp.train.align.suite_align_data`` splits them) with a ``SeparationCallback`` on held-out prompts
(within/cross-class cosine, linear-probe AUC, first-token refusal probability per class, language-model
loss on the built-in reference text) and, with ``--kernel-per-class``, the gradient kernel (by default the
paper code's variant: each prompt's top-10 logits over the last layers) with symmetric-normalised CIs.

    python analyses/dcr_diagnostic.py --data-dir ../shared/data --layers 6 12 18 24 --lrs 5e-6 2e-5 1e-4

Each configuration is cached as RUNS/NAME/diagnostic.json and skipped when present with the same
settings, so a sweep resumes where it stopped. Writes one figure per metric (a line per configuration)
and summary.{json,md} (start vs end of the stage, and whether the probe AUC and cosine gap rose while
the language-model loss stayed within --max-lm-increase nats/token) into --out. The model is not saved.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path


def parse(argv=None) -> argparse.Namespace:
    from interp.cli.common import add_device_args
    from interp.train.contrastive import POOLINGS, ContrastiveConfig

    con = ContrastiveConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct", help="base model (a name load_model knows)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--layers", type=int, nargs="+", default=[con.layer])
    p.add_argument("--lrs", type=float, nargs="+", default=[con.lr])
    p.add_argument("--steps", type=int, default=con.steps)
    p.add_argument("--batch-per-class", type=int, default=con.per_class, help="prompts per class in a batch")
    p.add_argument("--margin", type=float, default=con.margin)
    p.add_argument("--gamma", type=float, default=con.gamma)
    p.add_argument("--pooling", choices=POOLINGS, default=con.pooling)
    p.add_argument("--every", type=int, default=con.callback_every, help="steps between diagnostics")
    p.add_argument("--per-class", type=int, default=64, help="held-out prompts per class of the diagnostic")
    p.add_argument("--kernel-per-class", type=int, default=0,
                   help="held-out prompts per class of the gradient kernel at every diagnostic (0: none; paper: 25)")
    p.add_argument("--kernel-top-k", type=int, default=10, help="kernel on each prompt's top-k logits (0: full)")
    p.add_argument("--kernel-last-layers", type=int, default=2, help="kernel over the last L blocks (0: all)")
    p.add_argument("--max-lm-increase", type=float, default=0.1, help="nats/token the LM loss may rise")
    p.add_argument("--min-auc-rise", type=float, default=0.05,
                   help="probe-AUC rise that counts as clear (or half the remaining error 1 - AUC where smaller)")
    p.add_argument("--min-gap-rise", type=float, default=0.01, help="cosine-gap rise that counts as clear")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default="runs/dcr_diagnostic")
    p.add_argument("--out", default="figures/dcr_diagnostic")
    add_device_args(p)
    return p.parse_args(argv)


def configs(args) -> dict[str, object]:
    """Name -> ContrastiveConfig of every (layer, lr) of the sweep."""
    from interp.train.contrastive import ContrastiveConfig

    base = ContrastiveConfig(steps=args.steps, per_class=args.batch_per_class, margin=args.margin, gamma=args.gamma,
                             pooling=args.pooling, seed=args.seed, callback_every=args.every)
    return {f"l{layer}-lr{lr:g}-{args.pooling}": replace(base, layer=layer, lr=lr)
            for layer in args.layers for lr in args.lrs}


def kernel_config(args):
    from interp.ntk.config import NTKConfig

    return NTKConfig(estimator="sketch", top_k=args.kernel_top_k or None, last_layers=args.kernel_last_layers or None,
                     seed=args.seed)


def settings(args, config) -> dict:
    """Everything a cached configuration must share with this run to be reused."""
    return {"model": args.model, "data_dir": str(args.data_dir), "per_class": args.per_class, "seed": args.seed,
            "contrastive": asdict(config), "dtype": args.dtype,
            "kernel": {"per_class": args.kernel_per_class, **kernel_config(args).to_dict()}
            if args.kernel_per_class else None}


def run_one(args, name: str, config, train, heldout, kernel_probes) -> dict:
    """The contrastive stage of one configuration with its diagnostics (cached in RUNS/NAME)."""
    from interp.evaluate.reference_text import REFERENCE_PARAGRAPHS
    from interp.io import write_json
    from interp.models import load_model
    from interp.train.contrastive import contrastive_refine
    from interp.train.contrastive_diagnostic import SeparationCallback

    run_dir = Path(args.runs) / name
    cached, want = run_dir / "diagnostic.json", settings(args, config)
    if cached.exists():
        saved = json.loads(cached.read_text())
        if saved.get("settings") == json.loads(json.dumps(want)):
            return saved
    model = load_model(args.model, device=args.device, dtype=args.dtype)
    callbacks = [SeparationCallback(heldout[0], heldout[1], REFERENCE_PARAGRAPHS, config.layer, config.pooling)]
    if kernel_probes is not None:
        from interp.ntk.callback import KernelCallback

        callbacks.append(KernelCallback(kernel_probes, kernel_config(args), symmetric=True))
    result = contrastive_refine(model, train[0], train[1], config, out_dir=run_dir, callbacks=callbacks)
    record = {"settings": want, "history": result.history, "losses": result.losses,
              "n_train": [len(train[0]), len(train[1])], "heldout": [heldout[0].name, heldout[1].name]}
    write_json(cached, record)
    return record


def auc_rise_needed(auc_start: float, min_auc_rise: float) -> float:
    """The probe-AUC rise that counts as clear: ``min_auc_rise``, or half the probe's remaining error
    ``(1 - auc_start) / 2`` where that is smaller (a base model already at AUC 0.98 cannot rise by 0.05)."""
    return min(min_auc_rise, (1.0 - auc_start) / 2)


def summary_rows(records: dict[str, dict], max_lm_increase: float, min_auc_rise: float,
                 min_gap_rise: float = 0.01) -> list[dict]:
    """Per configuration: each diagnostic at the start and end of the stage, and whether it separates
    (probe AUC up by :func:`auc_rise_needed`, cosine gap by >= min_gap_rise) while the LM loss rises
    <= max_lm_increase."""
    rows = []
    for name, rec in records.items():
        by = {}
        for r in rec["history"]:
            if r["metric"].startswith("dcr/"):
                by.setdefault(r["metric"][4:], []).append((r["step"], r["value"]))
        row = {"config": name}
        for metric, pts in sorted(by.items()):
            pts.sort()
            row[f"{metric}_start"], row[f"{metric}_end"] = pts[0][1], pts[-1][1]
        row["lm_increase"] = row["lm_loss_end"] - row["lm_loss_start"]
        row["auc_rise"] = row["probe_auc_end"] - row["probe_auc_start"]
        row["gap_rise"] = row["cos_gap_end"] - row["cos_gap_start"]
        row["auc_rise_needed"] = auc_rise_needed(row["probe_auc_start"], min_auc_rise)
        row["separates"] = bool(row["auc_rise"] >= row["auc_rise_needed"] and row["gap_rise"] >= min_gap_rise
                                and row["lm_increase"] <= max_lm_increase)
        row["final_circle_loss"] = rec["losses"][-1] if rec["losses"] else None
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    cols = ("probe_auc", "cos_gap", "cross_cos", "refusal_prob_a", "refusal_prob_b", "lm_loss")
    head = ("| config | " + " | ".join(f"{c} start -> end" for c in cols) + " | separates |\n|---|"
            + "---|" * (len(cols) + 1) + "\n")
    body = "".join(f"| {r['config']} | " + " | ".join(f"{r[c + '_start']:.3f} -> {r[c + '_end']:.3f}" for c in cols)
                   + f" | {'yes' if r['separates'] else 'no'} |\n" for r in rows)
    return head + body


def main(argv=None) -> int:
    from interp.figures import save_figure
    from interp.io import write_json, write_text
    from interp.train.align import suite_align_data
    from interp.train.contrastive_diagnostic import heldout_classes
    from interp.train.plots import training_curves

    args = parse(argv)
    data = suite_align_data(args.data_dir, seed=args.seed)
    train = (data.seemingly.dedupe(), data.contrast_harmful.dedupe())
    heldout = heldout_classes(args.data_dir, args.per_class, seed=args.seed)
    kernel_probes = None
    if args.kernel_per_class:
        from interp.train.tracking import probe_prompts

        kernel_probes = probe_prompts(args.data_dir, args.kernel_per_class, seed=1)
    records = {name: run_one(args, name, cfg, train, heldout, kernel_probes) for name, cfg in configs(args).items()}
    out = Path(args.out)
    for metric, fig in training_curves(records).items():
        fig.update_layout(title=f"{metric} along the contrastive stage (held-out prompts)",
                          xaxis_title="contrastive step")
        save_figure(fig, out / metric.replace("/", "_"),
                    {n: [r for r in rec["history"] if r["metric"] == metric] for n, rec in records.items()})
    rows = summary_rows(records, args.max_lm_increase, args.min_auc_rise, args.min_gap_rise)
    write_json(out / "summary.json", {"rows": rows, "settings": {n: r["settings"] for n, r in records.items()},
                                      "heldout_sizes": [len(heldout[0]), len(heldout[1])]})
    write_text(out / "summary.md", markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
