"""Heads: layer x head heatmaps with the shared top-k marked; a click opens the head's panel (scores and
ranks in every map, exact patching effect, live attention pattern and ablation on a chosen prompt)."""

from __future__ import annotations

from dash import Input, Output, State, dcc, html
from dash.development.base_component import Component

from interp.errors import InterpError
from interp.explore.components import error, note, table
from interp.explore.figures import head_map_figure
from interp.explore.live import Intervention, attention_html, compare
from interp.explore.pages.interventions import DEFAULT_PROMPT, comparison_view
from interp.explore.results import HeadResults, Results
from interp.explore.runner import LiveRunner
from interp.heads.scores import Head


def heatmap_figure(heads: HeadResults, name: str, k: int, selected: Head | None = None):
    """Plain callback: the chosen map with its top-k and the shared top-k marked."""
    if name not in heads.maps:
        raise InterpError(f"no head map {name!r}; have {sorted(heads.maps)}")
    scores = heads.maps[name]
    by = heads.rank_by if name != "probes" else "signed"
    return head_map_figure(scores, name, scores.top_k(k, by=by), heads.shared(k), k, selected)


def clicked_head(click: dict | None) -> Head | None:
    """(layer, head) of a heatmap click (x = head, y = layer), or ``None``."""
    if not click or not click.get("points"):
        return None
    pt = click["points"][0]
    return int(pt["y"]), int(pt["x"])


def head_rows(heads: HeadResults, head: Head) -> list[tuple]:
    """Per map: score, rank (1 = top) under the study's ranking, and the number of heads."""
    rows = []
    for name, s in heads.maps.items():
        by = heads.rank_by if name != "probes" else "signed"
        rank = int(s.ranks(by=by)[head[0], head[1]]) + 1
        rows.append((name, s.metric, s[head], rank, s.n_layers * s.n_heads))
    return rows


def head_panel(heads: HeadResults, head: Head | None) -> Component:
    """Plain callback: the selected head's scores, ranks and saved ablation effect."""
    if head is None:
        return html.Div(note("click a cell of the heatmap to open that head"))
    layer, h = head
    any_map = next(iter(heads.maps.values()))
    if not (0 <= layer < any_map.n_layers and 0 <= h < any_map.n_heads):
        return error(f"head L{layer}H{h} is outside the {any_map.n_layers} x {any_map.n_heads} map")
    parts = [html.H3(f"Head L{layer}H{h}", id="head-title"),
             table(["map", "metric", "score", "rank", "of"], head_rows(heads, head), id="head-scores")]
    c = heads.candidates
    if c and [layer, h] in c["candidates"]:
        parts += [html.H4("exact patching (saved): metric drop when this head is patched"),
                  table(["metric", "effect"], [(c["a"]["metric"], c["a"]["scores"][layer][h]),
                                               (c["b"]["metric"], c["b"]["scores"][layer][h])], id="head-exact")]
    shared = [k for k in heads.ks if head in heads.shared(k)]
    parts.append(note(f"in the shared top-k for k = {shared}" if shared else "not in any shared top-k"))
    return html.Div(parts)


def attention_panel(runner: LiveRunner, prompt: str, head: Head | None) -> Component:
    """Plain callback: circuitsvis attention of the head on the prompt (live, local JavaScript)."""
    if head is None:
        return error("select a head first")
    try:
        page = runner.run(lambda m: attention_html(m, prompt, [head]))
    except (InterpError, ValueError) as exc:
        return error(f"attention failed: {exc}")
    return html.Iframe(srcDoc=page, id="head-attn-frame", style={"width": "100%", "height": "520px",
                                                                 "border": "1px solid #ddd"})


def ablation_panel(runner: LiveRunner, prompt: str, head: Head | None) -> Component:
    """Plain callback: zero-ablate the head on the prompt and show before / after."""
    if head is None:
        return error("select a head first")
    try:
        return comparison_view(runner.run(lambda m: compare(m, prompt, Intervention("head", "ablate", head=head))),
                               "head-ablate")
    except (InterpError, ValueError) as exc:
        return error(f"ablation failed: {exc}")


def layout(results: Results) -> Component:
    heads = results.heads
    if heads is None or not heads.maps:
        return html.Div([html.H2("Heads"), note("no head scores (refusal_heads.json ...) in this figures folder")])
    k = heads.ks[-1]
    controls = html.Div([
        dcc.Dropdown(id="heads-map", options=list(heads.maps), value=next(iter(heads.maps)), clearable=False,
                     style={"width": "220px", "display": "inline-block"}),
        dcc.Dropdown(id="heads-k", options=[{"label": f"top-{x}", "value": x} for x in heads.ks], value=k,
                     clearable=False, style={"width": "140px", "display": "inline-block"}),
    ])
    live = html.Div([
        html.H4("On a prompt (live)"),
        dcc.Textarea(id="head-prompt", value=DEFAULT_PROMPT, style={"width": "100%", "height": "50px"}),
        html.Button("Attention pattern", id="head-attn-btn", n_clicks=0),
        html.Button("Ablate this head", id="head-ablate-btn", n_clicks=0),
        dcc.Loading(html.Div(id="head-ablate-out"), type="circle"),
        dcc.Loading(html.Div(id="head-attn-out"), type="circle"),
    ])
    return html.Div([
        html.H2("Heads"), controls, dcc.Store(id="head-selected"),
        html.Div([html.Div(dcc.Graph(id="heads-heatmap", figure=heatmap_figure(heads, next(iter(heads.maps)), k)),
                           style={"flex": "1 1 480px"}),
                  html.Div([html.Div(head_panel(heads, None), id="head-panel"), live],
                           style={"flex": "1 1 480px"})],
                 style={"display": "flex", "flexWrap": "wrap", "gap": "16px"}),
    ])


def register(app, results: Results, runner: LiveRunner) -> None:
    heads = results.heads
    if heads is None or not heads.maps:
        return

    @app.callback(Output("head-selected", "data"), Input("heads-heatmap", "clickData"), prevent_initial_call=True)
    def _select(click):
        head = clicked_head(click)
        return list(head) if head else None

    @app.callback(Output("heads-heatmap", "figure"), Input("heads-map", "value"), Input("heads-k", "value"),
                  Input("head-selected", "data"))
    def _figure(name, k, selected):
        return heatmap_figure(heads, name, int(k), tuple(selected) if selected else None)

    @app.callback(Output("head-panel", "children"), Input("head-selected", "data"))
    def _panel(selected):
        return head_panel(heads, tuple(selected) if selected else None)

    @app.callback(Output("head-attn-out", "children"), Input("head-attn-btn", "n_clicks"),
                  State("head-prompt", "value"), State("head-selected", "data"), prevent_initial_call=True)
    def _attn(n, prompt, selected):
        return attention_panel(runner, prompt or "", tuple(selected) if selected else None)

    @app.callback(Output("head-ablate-out", "children"), Input("head-ablate-btn", "n_clicks"),
                  State("head-prompt", "value"), State("head-selected", "data"), prevent_initial_call=True)
    def _ablate(n, prompt, selected):
        return ablation_panel(runner, prompt or "", tuple(selected) if selected else None)
