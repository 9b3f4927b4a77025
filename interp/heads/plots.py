"""Figures of head scores: heatmaps, the side-by-side overlap figure, circuitsvis attention views.

Pure: data in, figure (or HTML string) out; callers write the files.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from jaxtyping import Float
from plotly.subplots import make_subplots
from torch import Tensor

from interp.heads.overlap import Overlap
from interp.heads.scores import Head, HeadScores


def _heatmap_trace(s: HeadScores, colorbar_x: float | None = None) -> go.Heatmap:
    z = s.scores.numpy()
    bound = float(abs(z).max()) or 1.0
    diverging = s.method != "probe"
    return go.Heatmap(
        z=z, x=list(range(s.n_heads)), y=list(range(s.n_layers)),
        colorscale="RdBu" if diverging else "Viridis", reversescale=diverging,
        zmid=0.0 if diverging else None, zmin=-bound if diverging else None,
        zmax=bound if diverging else None,
        colorbar={"title": s.metric, **({"x": colorbar_x} if colorbar_x is not None else {})},
        hovertemplate="layer %{y}, head %{x}: %{z:.4g}<extra></extra>",
    )


def head_heatmap(scores: HeadScores, title: str | None = None) -> go.Figure:
    """Layer x head heatmap (layer 0 at the bottom)."""
    fig = go.Figure(_heatmap_trace(scores))
    fig.update_layout(title=title or f"{scores.metric} ({scores.method})", xaxis_title="head",
                      yaxis_title="layer", width=520, height=640)
    return fig


def _marks(heads: Sequence[Head], name: str, symbol: str, color: str, show: bool) -> go.Scatter:
    return go.Scatter(x=[h for _, h in heads], y=[la for la, _ in heads], mode="markers", name=name,
                      marker={"symbol": symbol, "size": 11, "color": color,
                              "line": {"width": 2, "color": color}},
                      showlegend=show)


def overlap_figure(a: HeadScores, b: HeadScores, ov: Overlap, k: int, title: str | None = None) -> go.Figure:
    """Both heatmaps side by side; each map's top-k heads outlined, shared heads starred on both."""
    if k not in ov.shared:
        raise ValueError(f"k={k} was not computed in the overlap (have {sorted(ov.shared)})")
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"{ov.a} ({a.method})", f"{ov.b} ({b.method})"),
                        horizontal_spacing=0.14)
    fig.add_trace(_heatmap_trace(a, colorbar_x=0.43), 1, 1)
    fig.add_trace(_heatmap_trace(b, colorbar_x=1.0), 1, 2)
    shared = ov.shared[k]
    for col, s in ((1, a), (2, b)):
        fig.add_trace(_marks(s.top_k(k, by=ov.rank_by), f"top-{k}", "square-open",
                             "black", col == 1), 1, col)
        fig.add_trace(_marks(shared, f"shared top-{k}", "star", "gold", col == 1), 1, col)
    for col in (1, 2):
        fig.update_xaxes(title_text="head", row=1, col=col)
        fig.update_yaxes(title_text="layer", row=1, col=col)
    null = f", chance {ov.jaccard_null[k]:.2f}" if k in ov.jaccard_null else ""
    sub = (f"{ov.rank_by} ranking: Jaccard@{k} = {ov.jaccard[k]:.2f} (p = {ov.jaccard_p[k]:.3g}{null}), "
           f"Spearman = {ov.spearman:.2f} (p = {ov.spearman_p:.3g})")
    fig.update_layout(title=(title or f"{ov.a} vs {ov.b} heads") + f"<br><sup>{sub}</sup>",
                      width=1100, height=660, legend={"orientation": "h", "y": -0.12})
    return fig


def attention_view(
    tokens: list[str], patterns: Float[Tensor, "head query key"], heads: Sequence[Head]
) -> str:
    """Self-contained circuitsvis HTML of the heads' attention patterns on one prompt (works offline)."""
    import circuitsvis.attention as cva

    if patterns.shape[0] != len(heads):
        raise ValueError(f"{patterns.shape[0]} patterns for {len(heads)} heads")
    view = cva.attention_heads(attention=patterns, tokens=tokens,
                               attention_head_names=[f"L{la}H{h}" for la, h in heads])
    return view.local_src


def html_page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A minimal HTML page with titled sections (e.g. one attention view per prompt)."""
    import html

    body = "\n".join(f"<h3>{html.escape(t)}</h3>\n{content}" for t, content in sections)
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>" \
           f"<body><h2>{html.escape(title)}</h2>\n{body}</body></html>\n"
