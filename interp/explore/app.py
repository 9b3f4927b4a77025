"""The Dash app: a navigation bar, URL routing to the five pages, and each page's callbacks.

Every asset is served by the app itself (Dash's own bundles, ``serve_locally``); no page loads anything
from outside the host it is served from. circuitsvis views are its local bundle inside ``srcdoc`` frames.
"""

from __future__ import annotations

import dash
from dash import Input, Output, dcc, html
from dash.development.base_component import Component

from interp.explore.components import error
from interp.explore.pages import features, heads, interventions, overview, prompt_lab
from interp.explore.results import Results
from interp.explore.runner import LiveRunner

PAGES = {"/": "Overview", "/heads": "Heads", "/interventions": "Interventions", "/features": "SAE features",
         "/prompt": "Prompt lab"}
"""Path -> title of each page (a feature's page is ``/feature/N``)."""

_CSS = """
body { font-family: system-ui, sans-serif; margin: 0 16px; }
nav a { margin-right: 18px; font-weight: 600; }
.tbl { border-collapse: collapse; margin: 6px 0; font-size: 13px; }
.tbl td, .tbl th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
.note { color: #555; font-size: 13px; }
.error { color: #b00; font-weight: 600; }
.tokens { font-family: monospace; font-size: 13px; line-height: 1.9; }
.tok { font-family: monospace; border: 1px solid #ccc; margin: 1px; padding: 0 2px; white-space: pre; }
button { margin: 6px 6px 6px 0; }
"""


def page_for(results: Results, path: str | None) -> Component:
    """Plain callback: the layout of the page at ``path``."""
    path = path or "/"
    if path.startswith(features.FEATURE_PATH):
        try:
            return features.feature_page(results.features, features.feature_from_path(path))
        except ValueError as exc:
            return error(str(exc))
    builders = {"/": overview.layout, "/heads": heads.layout, "/interventions": interventions.layout,
                "/features": features.layout, "/prompt": prompt_lab.layout}
    if path not in builders:
        return error(f"no page {path!r}; pages: {', '.join(PAGES)}")
    return builders[path](results)


def build_app(results: Results, runner: LiveRunner) -> dash.Dash:
    """The explorer app over ``results``; live actions run through ``runner`` (model loaded lazily)."""
    app = dash.Dash(__name__, title="interp explore", serve_locally=True, suppress_callback_exceptions=True,
                    update_title=None)
    app.index_string = app.index_string.replace("{%css%}", "{%css%}<style>" + _CSS + "</style>")
    nav = html.Nav([dcc.Link(title, href=path, id=f"nav-{path.strip('/') or 'overview'}")
                    for path, title in PAGES.items()], style={"padding": "10px 0", "borderBottom": "1px solid #ddd"})
    app.layout = html.Div([dcc.Location(id="url"), nav, html.Div(id="page")])

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def _route(path):
        return page_for(results, path)

    heads.register(app, results, runner)
    interventions.register(app, results, runner)
    features.register(app, results)
    prompt_lab.register(app, results, runner)
    return app
