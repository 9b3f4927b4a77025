"""Gradient-kernel class similarity over training, from runs trained with ``interp align --track kernel``.

    interp align --recipe stl --track kernel --kernel-per-class 4 --out runs/align/stl-kernel ...
    interp align --recipe dcr --track kernel --kernel-per-class 4 --out runs/align/dcr-kernel ...
    python analyses/kernel_over_training.py runs/align/stl-kernel runs/align/dcr-kernel

Reads each run's ``train.json`` (DCR's contrastive stage sits at negative steps, 0 is the start of STL),
draws ``ntk_similarity`` for the class pairs with harmful prompts on the right, and writes the figure with
its numbers (the histories and where they came from) into --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PAIRS = ("seemingly_harmful x harmful", "harmless x harmful", "harmful x harmful")


def main(argv=None) -> int:
    from interp.figures import save_figure
    from interp.train.plots import training_curves

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories holding train.json")
    p.add_argument("--out", default="figures/align")
    p.add_argument("--pairs", nargs="+", default=list(PAIRS))
    args = p.parse_args(argv)
    histories = {}
    for run in map(Path, args.runs):
        saved = json.loads((run / "train.json").read_text())
        records = [r for r in saved.get("history", []) if r["metric"] == "ntk_similarity"
                   and r["label"] in args.pairs]
        if not records:
            raise SystemExit(f"{run}/train.json has no ntk_similarity records: train with --track kernel")
        histories[run.name] = {"history": records, "recipe": saved.get("recipe"),
                               "align_config": saved.get("align_config"), "source": str(run / "train.json")}
    fig = training_curves(histories)["ntk_similarity"]
    fig.update_layout(title="gradient-kernel similarity ||K(x',x)||/||K(x',x')|| during alignment<br>"
                            "<sup>negative steps: DCR's contrastive stage; 0: start of STL</sup>")
    save_figure(fig, Path(args.out) / "training_ntk_similarity", histories)
    for name, h in histories.items():
        for pair in args.pairs:
            pts = sorted((r["step"], r["value"]) for r in h["history"] if r["label"] == pair)
            print(f"{name:24s} {pair:30s} " + "  ".join(f"{s}:{v:.3f}" for s, v in pts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
