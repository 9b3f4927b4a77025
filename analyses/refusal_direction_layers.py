"""Refusal-direction sanity checks at chosen layers (directional ablation everywhere; activation addition).

    python analyses/refusal_direction_layers.py --model runs/align/stl/model --layers 10 13 --data-dir DATA

Complements heads_tradeoff.py, whose KL-constrained layer selection can pick a layer whose direction
does not carry refusal. Directions from training-half prompts; checks on held-out prompts (the one split).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def data_selection(data_dir, n: int, seed: int = 0):
    """``n`` training-half prompts per class for the directions, ``n`` held-out ones for the checks."""
    from interp.data.registry import load_prompt_sets
    from interp.data.selection import DataSelection

    specs = ["builtin:harmful", "builtin:harmless"] + (["advbench"] if data_dir else [])
    ps = load_prompt_sets(specs, data_dir=data_dir)
    train, test = {}, {}
    for label in ("harmful", "harmless"):
        sp = ps.by_label(label).dedupe().split()
        train[label], test[label] = sp.train.sample(n, seed), sp.test.sample(n, seed)
    return DataSelection("refusal_direction_layers", train, test)


def parse(argv=None) -> argparse.Namespace:
    from interp.cli.common import add_device_args

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/align/stl/model")
    ap.add_argument("--layers", type=int, nargs="+", default=[10, 13])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--per-class", type=int, default=32, help="prompts per class")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (the held-out split never changes)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiple of the direction added to harmless prompts")
    ap.add_argument("--out", default="figures/heads/refusal_direction_layers.json")
    add_device_args(ap)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    from interp.directions import refusal_directions
    from interp.evaluate import generate, is_refusal
    from interp.interventions import ablate_direction, add_direction
    from interp.io import write_json
    from interp.models import load_model

    a = parse(argv)
    sel = data_selection(a.data_dir, a.per_class, a.seed)
    train = {k: v.texts for k, v in sel.train.items()}
    test = {k: v.texts for k, v in sel.evaluation.items()}
    model = load_model(a.model, device=a.device, dtype=a.dtype)
    cands = refusal_directions(model, train["harmful"], train["harmless"])

    def refusal_rate(texts):
        return sum(is_refusal(r) for r in generate(model, texts, 24, 8, progress=False)) / len(texts)

    rows = [{"layer": None, "asr_harmful": 1 - refusal_rate(test["harmful"]),
             "refusal_harmless": refusal_rate(test["harmless"])}]
    for layer in a.layers:
        d = cands.at(layer)
        with ablate_direction(model, d):
            asr = 1 - refusal_rate(test["harmful"])
        with add_direction(model, d, a.scale):
            ref = refusal_rate(test["harmless"])
        rows.append({"layer": layer, "asr_harmful_ablated": asr, "refusal_harmless_added": ref})
        print(rows[0], rows[-1], flush=True)
    write_json(Path(a.out), {"rows": rows, "model": a.model, "n": a.n, "scale": a.scale,
                             "dtype": a.dtype, "device": str(model.device)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
