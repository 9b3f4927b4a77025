"""Figures of training dynamics (pure: histories in, figures out)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import plotly.graph_objects as go


def training_curves(histories: Mapping[str, dict]) -> dict[str, go.Figure]:
    """One figure per recorded metric: a line per (recipe, class or class pair) over training steps.

    Colour encodes the class, dash the recipe. Records at negative steps come from an earlier stage
    (DCR's contrastive one); 0 is the start of supervised training.

    ``histories`` maps a recipe to its ``train.json``; records are ``{step, metric, label, value}``.
    """
    series: dict[str, dict[tuple[str, str], list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for recipe, hist in histories.items():
        for rec in hist.get("history", []):
            series[rec["metric"]][(recipe, str(rec["label"]))].append((rec["step"], rec["value"]))
    figs = {}
    dashes = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
    palette = ["crimson", "darkorange", "royalblue", "seagreen", "purple", "gray", "goldenrod", "teal"]
    for metric, lines in series.items():
        fig = go.Figure()
        recipes = list(dict.fromkeys(r for r, _ in lines))  # in the caller's order
        labels = sorted({lab for _, lab in lines})
        for (recipe, label), pts in sorted(lines.items(), key=lambda kv: (recipes.index(kv[0][0]), kv[0][1])):
            pts.sort()
            fig.add_scatter(x=[s for s, _ in pts], y=[v for _, v in pts], mode="lines+markers",
                            name=f"{recipe}: {label}", legendgroup=recipe,
                            line=dict(dash=dashes[recipes.index(recipe) % len(dashes)],
                                      color=palette[labels.index(label) % len(palette)]))
        fig.update_layout(title=f"{metric} during alignment", xaxis_title="optimizer step",
                          yaxis_title=metric, template="plotly_white")
        figs[metric] = fig
    return figs
