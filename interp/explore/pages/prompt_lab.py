"""Prompt lab: type a prompt; see its tokens, the top-k next tokens and refusal score, every head's
attention in a chosen layer, and the prompt's top SAE features (all live)."""

from __future__ import annotations

from dash import Input, Output, State, dcc, html
from dash.development.base_component import Component

from interp.errors import InterpError
from interp.explore.components import error, table
from interp.explore.live import attention_html, chat_tokens, next_tokens, prompt_features
from interp.explore.pages.interventions import DEFAULT_PROMPT
from interp.explore.results import Results
from interp.explore.runner import LiveRunner


def analyse(runner: LiveRunner, prompt: str, layer: int, k: int = 10) -> Component:
    """Plain callback: tokens, next tokens, attention of every head of ``layer``, top features."""
    if not (prompt or "").strip():
        return error("type a prompt first")

    def work(model):
        heads = [(int(layer), h) for h in range(model.spec.n_heads)]
        return chat_tokens(model, prompt), next_tokens(model, prompt, k), attention_html(model, prompt, heads)

    try:
        tokens, nxt, attn = runner.run(work)
    except (InterpError, ValueError) as exc:
        return error(f"prompt lab failed: {exc}")
    parts = [html.H3(f"{len(tokens)} tokens"),
             html.Div([html.Span(t.replace("\n", "\u21b5"), className="tok") for t in tokens], id="lab-tokens"),
             html.H3(f"Next token (refusal score {nxt.refusal_score:.3f})"),
             table(["token", "p"], [(repr(t), p) for t, p in zip(nxt.tokens, nxt.probs, strict=True)], id="lab-next"),
             html.H3(f"Attention, layer {layer}"),
             html.Iframe(srcDoc=attn, id="lab-attn", style={"width": "100%", "height": "520px", "border": "0"})]
    if runner.sae_path:
        try:
            feats = runner.run_with_sae(lambda m, t: prompt_features(m, t.sae, t.site, prompt, k))
            parts += [html.H3("Top SAE features"),
                      table(["feature", "max activation", "token", "position"],
                            [(html.A(str(f.feature), href=f"/feature/{f.feature}"), f.activation, repr(f.token),
                              f.position) for f in feats], id="lab-features")]
        except (InterpError, ValueError, OSError) as exc:
            parts.append(error(f"top features unavailable: {exc}"))
    return html.Div(parts)


def layout(results: Results) -> Component:
    maps = list(results.heads.maps.values()) if results.heads else []
    last = maps[0].n_layers - 1 if maps else 0
    return html.Div([
        html.H2("Prompt lab"),
        dcc.Textarea(id="lab-prompt", value=DEFAULT_PROMPT, style={"width": "100%", "height": "60px"}),
        html.Span("layer "), dcc.Input(id="lab-layer", type="number", value=last, min=0, style={"width": "60px"}),
        html.Button("Analyse", id="lab-run", n_clicks=0),
        dcc.Loading(html.Div(id="lab-out"), type="circle"),
    ])


def register(app, results: Results, runner: LiveRunner) -> None:
    @app.callback(Output("lab-out", "children"), Input("lab-run", "n_clicks"), State("lab-prompt", "value"),
                  State("lab-layer", "value"), prevent_initial_call=True)
    def _run(n, prompt, layer):
        return analyse(runner, prompt, int(layer or 0))
