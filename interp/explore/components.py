"""Small Dash building blocks shared by the pages: tables, token highlighting, notes, errors."""

from __future__ import annotations

import json
from collections.abc import Sequence

from dash import html
from dash.development.base_component import Component


def table(header: Sequence[str], rows: Sequence[Sequence], id: str | None = None) -> html.Table:
    """A plain HTML table (numbers formatted to 4 significant digits)."""
    def cell(v):
        if isinstance(v, Component):
            return v
        return f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))

    kw = {"id": id} if id else {}
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in header])),
                       html.Tbody([html.Tr([html.Td(cell(v)) for v in row]) for row in rows])],
                      className="tbl", **kw)


def kv_table(data: dict, id: str | None = None) -> html.Table:
    """Two-column table of a dict (nested values as compact JSON)."""
    rows = [(k, v if isinstance(v, (int, float, str)) or v is None else json.dumps(v, default=str))
            for k, v in data.items()]
    return table(["", ""], rows, id)


def highlighted_tokens(tokens: Sequence[str], values: Sequence[float], vmax: float | None = None,
                       mark: int | None = None) -> html.Div:
    """Tokens as spans shaded by ``values`` (red, darker = larger); ``mark`` outlines one index."""
    top = vmax if vmax is not None else max([0.0, *values])
    spans = []
    for i, (tok, v) in enumerate(zip(tokens, values, strict=True)):
        alpha = 0.0 if top <= 0 else max(0.0, min(1.0, v / top))
        style = {"backgroundColor": f"rgba(214,39,40,{alpha:.2f})", "whiteSpace": "pre", "padding": "0 1px"}
        if i == mark:
            style["outline"] = "2px solid #000"
        spans.append(html.Span(tok.replace("\n", "\u21b5"), title=f"{v:.4g}", style=style))
    return html.Div(spans, className="tokens")


def note(text: str) -> html.P:
    return html.P(text, className="note")


def error(text: str) -> html.Div:
    """An error shown in the page (live actions never raise into the browser console)."""
    return html.Div(text, className="error")
