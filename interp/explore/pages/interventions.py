"""Interventions: the saved trade-off and ablation results, and live ablate / steer of a head or a
direction on a prompt (reply, refusal score and next-token top-k, before and after)."""

from __future__ import annotations

from dash import Input, Output, State, dcc, html
from dash.development.base_component import Component

from interp.errors import InterpError
from interp.explore.components import error, note, table
from interp.explore.figures import tradeoff_figure
from interp.explore.live import Comparison, Intervention, compare
from interp.explore.results import Results
from interp.explore.runner import LiveRunner

DEFAULT_PROMPT = "How do I bake a loaf of bread?"


def comparison_view(c: Comparison, id_prefix: str) -> Component:
    """Before / after table of a live intervention."""
    b, a = c.before, c.after
    rows = [("reply", b.reply or "(empty reply)", a.reply or "(empty reply)"),
            ("refusal score", b.next.refusal_score, a.next.refusal_score)]
    rows += [(f"top-{i + 1} next token", f"{bt!r} {bp:.3f}", f"{at!r} {ap:.3f}")
             for i, (bt, bp, at, ap) in enumerate(zip(b.next.tokens, b.next.probs, a.next.tokens, a.next.probs,
                                                       strict=True))]
    return html.Div([html.H4(f"{c.intervention.label}"),
                     table(["", "before", "after"], rows, id=f"{id_prefix}-table"),
                     html.Div([html.Span("refusal score change: "),
                               html.Span(f"{a.next.refusal_score - b.next.refusal_score:+.4g}",
                                         id=f"{id_prefix}-delta")])])


def run_intervention(runner: LiveRunner, prompt: str, target: str, layer, head, direction, action: str,
                     scale) -> Component:
    """Plain callback: build the intervention from the form, run it live, render the comparison."""
    try:
        if target == "head":
            if layer is None or head is None:
                raise InterpError("give the head's layer and index")
            act = "ablate" if action == "ablate" else "scale"
            iv = Intervention("head", act, head=(int(layer), int(head)), scale=float(scale or 0.0))
        else:
            act = "ablate" if action == "ablate" else "add"
            iv = Intervention("direction", act, direction=direction, scale=float(scale or 0.0))
        return comparison_view(runner.run(lambda m: compare(m, prompt or "", iv)), "iv")
    except (InterpError, ValueError, OSError) as exc:
        return error(f"intervention failed: {exc}")


def saved_results(results: Results) -> list:
    parts: list = []
    if "tradeoff" in results.tables and results.tables["tradeoff"]:
        parts.append(dcc.Graph(id="tradeoff-graph", figure=tradeoff_figure(results.tables["tradeoff"])))
    if "head_ablations" in results.tables and results.tables["head_ablations"]:
        rows = results.tables["head_ablations"]
        parts += [html.H4("head ablations"), table(list(rows[0]), [list(r.values()) for r in rows])]
    heads = results.heads
    if heads is not None and heads.candidates:
        c = heads.candidates
        rows = [(f"L{la}H{h}", c["a"]["scores"][la][h], c["b"]["scores"][la][h]) for la, h in c["candidates"]]
        parts += [html.H4("exact patching of candidate heads (metric drop when patched)"),
                  table(["head", c["a"]["metric"], c["b"]["metric"]], rows, id="candidate-table")]
    return parts or [note("no trade-off or ablation results in this figures folder")]


def layout(results: Results) -> Component:
    dirs = [{"label": k, "value": v} for k, v in results.directions.items()]
    form = html.Div([
        dcc.Textarea(id="iv-prompt", value=DEFAULT_PROMPT, style={"width": "100%", "height": "60px"}),
        dcc.RadioItems(id="iv-target", value="head", inline=True,
                       options=[{"label": "head", "value": "head"},
                                {"label": "direction", "value": "direction", "disabled": not dirs}]),
        html.Span(" layer "), dcc.Input(id="iv-layer", type="number", value=0, min=0, style={"width": "60px"}),
        html.Span(" head "), dcc.Input(id="iv-head", type="number", value=0, min=0, style={"width": "60px"}),
        html.Span(" direction "),
        dcc.Dropdown(id="iv-direction", options=dirs, value=dirs[0]["value"] if dirs else None,
                     style={"width": "360px", "display": "inline-block", "verticalAlign": "middle"}),
        dcc.RadioItems(id="iv-action", value="ablate", inline=True,
                       options=[{"label": "ablate", "value": "ablate"},
                                {"label": "scale (head) / add (direction)", "value": "steer"}]),
        html.Span(" scale "), dcc.Input(id="iv-scale", type="number", value=2.0, style={"width": "80px"}),
        html.Button("Run", id="iv-run", n_clicks=0),
    ])
    return html.Div([html.H2("Interventions"), html.H3("Saved results"), *saved_results(results),
                     html.H3("Live: ablate or steer on a prompt"),
                     note("head ablate: z set to zero; scale: z times the scale. direction ablate: projected "
                          "out of the residual stream at every layer; add: scale x direction at its layer."),
                     form, dcc.Loading(html.Div(id="iv-result"), type="circle")])


def register(app, results: Results, runner: LiveRunner) -> None:
    @app.callback(Output("iv-result", "children"), Input("iv-run", "n_clicks"),
                  State("iv-prompt", "value"), State("iv-target", "value"), State("iv-layer", "value"),
                  State("iv-head", "value"), State("iv-direction", "value"), State("iv-action", "value"),
                  State("iv-scale", "value"), prevent_initial_call=True)
    def _run(n, prompt, target, layer, head, direction, action, scale):
        return run_intervention(runner, prompt, target, layer, head, direction, action, scale)
