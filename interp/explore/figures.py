"""Plotly figures of the explorer (pure: data in, figure out), built on the package's own figures."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import torch

from interp.heads.plots import head_heatmap
from interp.heads.scores import Head, HeadScores
from interp.sae.attribution import ClassifyConfig, FeatureAttribution
from interp.sae.plots import attribution_scatter


def _marks(heads: Sequence[Head], name: str, symbol: str, color: str, size: int) -> go.Scatter:
    return go.Scatter(x=[h for _, h in heads], y=[la for la, _ in heads], mode="markers", name=name,
                      marker={"symbol": symbol, "size": size, "color": color, "line": {"width": 2, "color": color}},
                      hovertemplate="layer %{y}, head %{x}<extra>" + name + "</extra>")


def head_map_figure(scores: HeadScores, name: str, top: Sequence[Head], shared: Sequence[Head], k: int,
                    selected: Head | None = None) -> go.Figure:
    """Layer x head heatmap with this map's top-k outlined, the shared top-k starred and the selection ringed.

    Clicking a cell (or a mark) reports ``x`` = head and ``y`` = layer.
    """
    fig = head_heatmap(scores, f"{name}: {scores.metric} ({scores.method})")
    fig.add_trace(_marks(top, f"top-{k}", "square-open", "black", 14))
    fig.add_trace(_marks(shared, f"shared top-{k}", "star", "gold", 12))
    if selected is not None:
        fig.add_trace(_marks([selected], "selected", "circle-open", "lime", 20))
    height = max(360, 28 * scores.n_layers + 160)
    fig.update_layout(width=None, height=height, legend={"orientation": "h", "y": -0.15},
                      margin={"l": 50, "r": 20, "t": 50, "b": 40}, clickmode="event")
    return fig


def feature_scatter(records: list[dict], thresholds: dict | None = None) -> go.Figure:
    """The attribution scatter of :func:`interp.sae.plots.attribution_scatter`; each point carries its
    feature index as ``customdata`` so a click can open the feature's page."""
    attr = FeatureAttribution(torch.tensor([r["refusal"] for r in records]),
                              torch.tensor([r["truthfulness"] for r in records]),
                              [r["class"] for r in records], ClassifyConfig(**(thresholds or {})))
    fig = attribution_scatter(attr)
    for trace in fig.data:
        trace.customdata = [r["feature"] for r in records if r["class"] == trace.name]
    fig.update_layout(height=520, clickmode="event")
    return fig


def histogram_figure(hist: dict, feature: int) -> go.Figure:
    """Bar chart of a feature's non-zero activations (from ``feature_pages.json``)."""
    edges, counts = hist.get("edges", []), hist.get("counts", [])
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    fig = go.Figure(go.Bar(x=centers, y=counts, marker_color="#d62728"))
    fig.update_layout(title=f"feature {feature}: activations > 0 (density {hist.get('density', 0):.3g} of "
                            f"{hist.get('n_rows', 0)} tokens)", xaxis_title="activation", yaxis_title="tokens",
                      height=300, template="plotly_white", margin={"t": 50, "b": 40})
    return fig


def tradeoff_figure(rows: list[dict]) -> go.Figure:
    """Each steering method's metrics against its strength (``tradeoff.json`` rows)."""
    fig = go.Figure()
    metrics = [m for m in ("mc1_accuracy", "asr_harmful", "coherent_asr_harmful") if rows and m in rows[0]]
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = [r for r in rows if r["method"] == method]
        for m in metrics:
            fig.add_trace(go.Scatter(x=[r["strength"] for r in pts], y=[r[m] for r in pts],
                                     mode="lines+markers", name=f"{method}: {m}"))
    fig.update_layout(title="steering trade-off", xaxis_title="strength", yaxis_title="rate",
                      template="plotly_white", height=420)
    return fig
