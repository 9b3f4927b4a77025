"""SAE features: the attribution scatter (a click opens ``/feature/N``) and the feature pages: class,
attribution, ablation check, activation histogram, top examples with per-token highlighting, logit effects."""

from __future__ import annotations

from dash import Input, Output, dcc, html, no_update
from dash.development.base_component import Component

from interp.errors import InterpError
from interp.explore.components import error, highlighted_tokens, note, table
from interp.explore.figures import feature_scatter, histogram_figure
from interp.explore.results import FeatureResults, Results

FEATURE_PATH = "/feature/"


def clicked_feature(click: dict | None) -> int | None:
    """Feature index of a scatter click (its ``customdata``), or ``None``."""
    if not click or not click.get("points"):
        return None
    data = click["points"][0].get("customdata")
    return int(data[0] if isinstance(data, list) else data) if data is not None else None


def feature_from_path(path: str | None) -> int | None:
    """The feature index of a ``/feature/N`` path."""
    if not path or not path.startswith(FEATURE_PATH):
        return None
    try:
        return int(path[len(FEATURE_PATH):].strip("/"))
    except ValueError as exc:
        raise InterpError(f"bad feature path {path!r}: expected {FEATURE_PATH}<index>") from exc


def ablation_rows(feats: FeatureResults, feature: int) -> list[tuple]:
    """The saved ablation checks in which this feature was among the ablated top features."""
    rows = []
    for metric, c in feats.summary.get("ablation_checks", {}).items():
        if feature in c.get("top_features", []):
            rand = c.get("random_deltas") or [0.0]
            rows.append((metric, c["top_features"], c["top_delta"], sum(abs(d) for d in rand) / len(rand),
                         c["predicted_delta"], c["passed"]))
    return rows


def example_window(ex: dict, before: int = 32, after: int = 16) -> tuple[list[str], list[float], int | None]:
    """The tokens around an example's strongest token (SAE-Vis shows a window too), and its index there."""
    at = ex["positions"].index(ex["position"]) if ex["position"] in ex["positions"] else None
    if at is None:
        return ex["tokens"], ex["token_activations"], None
    lo, hi = max(0, at - before), at + after + 1
    return ex["tokens"][lo:hi], ex["token_activations"][lo:hi], at - lo


def examples_view(feats: FeatureResults, feature: int) -> Component:
    """Top examples: per-token highlighting from ``feature_pages.json``, else the older text-only list."""
    page = feats.pages.get(str(feature))
    if page and page.get("examples"):
        vmax = max(ex["activation"] for ex in page["examples"])
        items = []
        for ex in page["examples"]:
            if ex.get("tokens") is None:
                items.append(html.Li([html.B(f"{ex['activation']:.3g} "), html.Span(
                    f"[{ex.get('label') or ''}] text redacted ({ex.get('text_id')}), strongest at position "
                    f"{ex['position']}")], className="example"))
                continue
            tokens, acts, mark = example_window(ex)
            items.append(html.Li([html.B(f"{ex['activation']:.3g} "), html.Span(f"[{ex.get('label') or ''}] "),
                                  highlighted_tokens(tokens, acts, vmax, mark)], className="example"))
        return html.Ol(items, id="feature-examples")
    old = feats.top_prompts.get(str(feature))
    if old:
        return html.Div([note("per-token activations were not saved for this run (re-run `interp sae attribute`)"),
                         html.Ol([html.Li(f"{ex['activation']:.3g} [{ex.get('label') or ''}] token {ex['token_id']} "
                                          f"at {ex['position']}") for ex in old], id="feature-examples")])
    return html.Div(note("no top examples saved for this feature"), id="feature-examples")


def logit_view(page: dict | None) -> Component:
    effects = (page or {}).get("logit_effects")
    if not effects:
        return note("no logit effects saved (written when `interp sae attribute` has the model)")
    rows = [(p[0], p[1], n[0], n[1]) for p, n in zip(effects["positive"], effects["negative"], strict=True)]
    return table(["promoted", "logit", "suppressed", "logit"], [(repr(a), b, repr(c), d) for a, b, c, d in rows],
                 id="feature-logits")


def feature_page(feats: FeatureResults | None, feature: int | None) -> Component:
    """Plain callback: the page of one feature."""
    if feats is None:
        return error("no SAE feature attribution in this figures folder")
    try:
        if feature is None:
            raise InterpError("no feature given")
        rec = feats.record(feature)
    except InterpError as exc:
        return error(str(exc))
    page = feats.pages.get(str(feature))
    parts = [dcc.Link("\u2190 all features", href="/features"),
             html.H2(f"Feature {feature}", id="feature-title"),
             table(["class", "refusal attribution", "truthfulness attribution", "refusal (norm.)",
                    "truthfulness (norm.)"], [(rec["class"], rec["refusal"], rec["truthfulness"],
                                               rec["refusal_norm"], rec["truthfulness_norm"])], id="feature-attr")]
    abl = ablation_rows(feats, feature)
    parts += [html.H3("Ablation effect (saved check)"),
              table(["metric", "ablated with", "metric change", "mean |random change|", "predicted", "passed"], abl)
              if abl else note("this feature was not among the ablated top features")]
    if page and page.get("histogram", {}).get("counts"):
        parts.append(dcc.Graph(id="feature-hist", figure=histogram_figure(page["histogram"], feature)))
    parts += [html.H3("Top examples"), examples_view(feats, feature), html.H3("Logit effects"), logit_view(page)]
    return html.Div(parts)


def feature_links(feats: FeatureResults) -> Component:
    top = feats.summary.get("top", {})
    rows = [html.Div([html.B(f"{cls}: ")] + [dcc.Link(str(f), href=f"{FEATURE_PATH}{f}", style={"margin": "0 4px"})
                                             for f in fs]) for cls, fs in top.items()]
    return html.Div(rows, id="feature-links")


def layout(results: Results) -> Component:
    feats = results.features
    if feats is None:
        return html.Div([html.H2("SAE features"), note("no feature_attribution.json in this figures folder")])
    return html.Div([html.H2("SAE features"), note("click a point to open its feature page"),
                     dcc.Graph(id="feat-scatter", figure=feature_scatter(feats.records, feats.summary.get(
                         "thresholds"))), html.H3("Top features per class"), feature_links(feats)])


def register(app, results: Results) -> None:
    if results.features is None:
        return

    @app.callback(Output("url", "pathname", allow_duplicate=True), Input("feat-scatter", "clickData"),
                  prevent_initial_call=True)
    def _open(click):
        f = clicked_feature(click)
        return no_update if f is None else f"{FEATURE_PATH}{f}"
