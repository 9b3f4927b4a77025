"""Head overlap on several models side by side: both rankings, both scorings, and the maps in one figure.

config -> compute -> plot -> write. Reads the head studies that ``analyses/heads_tradeoff.py`` (or
``interp heads --candidates K``) wrote for each model (``refusal_heads.json``, ``truth_heads.json``,
``candidate_patching.json``) and recomputes, from the saved scores, the refusal x truthfulness overlap
under both rankings (magnitude of the effect, and signed score) for the attribution maps over all heads
and for exact activation patching over the candidate heads: Jaccard@k with its permutation p-value and
chance level, Spearman; and whether the magnitudes agree within layers (not only because both effects
grow with depth). Also how much each map moves between models (refusal heads of model A vs of
model B). No model is loaded. ::

    python analyses/heads_overlap_models.py --study instruct=figures/heads/instruct --study stl=figures/heads/stl \
        --out figures/heads
"""

from __future__ import annotations

import argparse
from pathlib import Path

from plotly.subplots import make_subplots

from interp.heads import HeadScores, candidate_overlap, overlap
from interp.heads.overlap import jaccard_cell
from interp.heads.plots import head_heatmap

RANKINGS = ("magnitude", "signed")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", action="append", required=True, metavar="NAME=DIR",
                   help="a model's head-study folder (repeatable, in display order)")
    p.add_argument("--out", default="figures/heads")
    p.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20, 30])
    p.add_argument("--permutations", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load_study(folder: Path) -> dict:
    """The saved maps of one head study: attribution over all heads, exact patching over its candidates."""
    import json

    need = ("refusal_heads.json", "truth_heads.json", "candidate_patching.json")
    missing = [n for n in need if not (folder / n).exists()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a head study with candidate patching: missing {missing}")
    cand = json.loads((folder / "candidate_patching.json").read_text())
    return {"refusal": HeadScores.from_json(folder / "refusal_heads.json"),
            "truth": HeadScores.from_json(folder / "truth_heads.json"),
            "patched_refusal": HeadScores.from_dict(cand["a"]), "patched_truth": HeadScores.from_dict(cand["b"]),
            "candidates": [tuple(h) for h in cand["candidates"]], "candidate_k": cand["k"]}


def overlaps(study: dict, ks, n_permutations: int, seed: int) -> dict[str, dict]:
    """Refusal x truthfulness overlap, per scoring and ranking (``Overlap.to_dict``s)."""
    out = {}
    for by in RANKINGS:
        out[f"attribution/{by}"] = overlap(study["refusal"], study["truth"], ks, n_permutations, seed,
                                           names=("refusal", "truth"), by=by).to_dict()
        out[f"patching/{by}"] = candidate_overlap(study["patched_refusal"], study["patched_truth"],
                                                  study["candidates"], ks, n_permutations, seed, by=by,
                                                  names=("refusal", "truth")).to_dict()
    out["attribution/within-layer"] = within_layer(study["refusal"], study["truth"], n_permutations, seed)
    return out


def within_layer(a: HeadScores, b: HeadScores, n_permutations: int, seed: int) -> dict:
    """Spearman of the two maps' magnitudes within each layer, averaged over layers, with a permutation
    p-value (heads shuffled within their layer): is the magnitude agreement more than both effects growing
    with depth?"""
    import numpy as np
    from scipy.stats import spearmanr

    x, y = a.scores.abs().numpy(), b.scores.abs().numpy()

    def stat(yy) -> float:
        return float(np.mean([spearmanr(x[la], yy[la])[0] for la in range(x.shape[0])]))

    rng = np.random.default_rng(seed)
    obs = stat(y)
    hits = sum(stat(np.stack([rng.permutation(r) for r in y])) >= obs - 1e-12 for _ in range(n_permutations))
    depth = float(spearmanr(x.mean(1), y.mean(1))[0])
    return {"mean_within_layer_spearman": obs, "p": (1 + hits) / (1 + n_permutations),
            "n_permutations": n_permutations, "layer_mean_spearman": depth}


def drift(a: dict, b: dict, ks, n_permutations: int, seed: int) -> dict[str, dict]:
    """How far each attribution map moved between two models (same metric, magnitude ranking)."""
    return {m: overlap(a[m], b[m], ks, n_permutations, seed, names=(f"{m} A", f"{m} B"), by="magnitude").to_dict()
            for m in ("refusal", "truth")}


def markdown(results: dict, drifts: dict, ks) -> str:
    head = "| model | scoring | ranking | heads | " + " | ".join(f"J@{k} (p; chance)" for k in ks) + " | Spearman (p) |"
    lines = ["## Refusal x truthfulness head overlap", "", head, "|" + " --- |" * (len(ks) + 5)]
    for model, ovs in results.items():
        for key, ov in ovs.items():
            scoring, by = key.split("/")
            if by == "within-layer":
                continue
            cells = " | ".join(jaccard_cell(ov, k) for k in ks)
            lines.append(f"| {model} | {scoring} | {by} | {ov['settings']['n_heads']} | {cells}"
                         + f" | {ov['spearman']:.2f} ({ov['spearman_p']:.3g}) |")
    lines += ["", "attribution: attribution patching over all heads; patching: exact activation patching of the "
              "union of both attribution maps' top-k heads by magnitude, null over those heads only. p: one-sided "
              "permutation test (at least this overlap); chance: mean Jaccard@k under the permutations.", ""]
    lines += ["Magnitude agreement within layers (attribution; Spearman of |score| per layer, mean over layers; "
              "p: heads permuted within their layer) and of the layer means:", ""]
    for model, ovs in results.items():
        w = ovs["attribution/within-layer"]
        lines.append(f"- {model}: within-layer {w['mean_within_layer_spearman']:.2f} (p={w['p']:.3g}, "
                     f"{w['n_permutations']} permutations); layer means {w['layer_mean_spearman']:.2f}")
    lines.append("")
    if drifts:
        lines += ["## The same map on two models (attribution, magnitude)", "",
                  "| models | map | " + " | ".join(f"J@{k} (p; chance)" for k in ks) + " | Spearman (p) |",
                  "|" + " --- |" * (len(ks) + 3)]
        for pair, d in drifts.items():
            for m, ov in d.items():
                lines.append(f"| {pair} | {m} | " + " | ".join(jaccard_cell(ov, k) for k in ks)
                             + f" | {ov['spearman']:.2f} ({ov['spearman_p']:.3g}) |")
        lines.append("")
    return "\n".join(lines)


def maps_figure(studies: dict[str, dict]):
    """Rows: models; columns: refusal and truthfulness attribution maps (layer x head)."""
    names = list(studies)
    titles = [f"{n}: {m}" for n in names for m in ("refusal heads", "truthfulness heads")]
    fig = make_subplots(rows=len(names), cols=2, subplot_titles=titles, horizontal_spacing=0.16,
                        vertical_spacing=0.08)
    for r, name in enumerate(names, start=1):
        for c, m in enumerate(("refusal", "truth"), start=1):
            trace = head_heatmap(studies[name][m]).data[0]
            trace.update(colorbar={"len": 0.9 / len(names), "x": 0.43 if c == 1 else 1.0,
                                   "y": 1 - (r - 0.5) / len(names)})
            fig.add_trace(trace, r, c)
            fig.update_xaxes(title_text="head", row=r, col=c)
            fig.update_yaxes(title_text="layer", row=r, col=c)
    fig.update_layout(title="Head attribution maps per model (signed; layer 0 at the bottom)", width=900,
                      height=600 * len(names))
    return fig


def main(argv=None) -> int:
    from interp.figures import save_figure
    from interp.io import write_json, write_text

    args = parse(argv)
    specs = {}
    for spec in args.study:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise SystemExit(f"--study wants NAME=DIR, got {spec!r}")
        specs[name] = Path(folder)
    studies = {name: load_study(folder) for name, folder in specs.items()}
    results = {name: overlaps(s, args.ks, args.permutations, args.seed) for name, s in studies.items()}
    names = list(studies)
    drifts = {f"{a} vs {b}": drift(studies[a], studies[b], args.ks, args.permutations, args.seed)
              for i, a in enumerate(names) for b in names[i + 1:]}
    out = Path(args.out)
    write_json(out / "overlap_models.json", {"overlap": results, "drift": drifts,
                                            "studies": {n: str(f) for n, f in specs.items()}, "config": vars(args)})
    write_text(out / "overlap_models.md", markdown(results, drifts, args.ks))
    save_figure(maps_figure(studies), out / "head_maps_models")
    for name, ovs in results.items():
        for key, ov in ovs.items():
            if "jaccard" not in ov:
                print(name, key, ov)
                continue
            print(name, key, {k: round(v, 2) for k, v in ov["jaccard"].items()},
                  {k: round(v, 3) for k, v in ov["jaccard_p"].items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
