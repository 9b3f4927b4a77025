"""One self-contained HTML report of a figure folder: readable offline, nothing fetched from the network.

Every plotly figure is redrawn from its spec by one copy of plotly.js taken from the installed plotly
package (the per-figure HTML files load it from a CDN); tables, JSON results and images are inlined,
each with the command, model, data and settings that produced it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from interp.reporting.collect import ReportItem, collect_items

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em 2em; color: #222; }
h2 { border-bottom: 2px solid #ccc; margin-top: 2em; }
article { border: 1px solid #ddd; border-radius: 6px; margin: 1.2em 0; padding: 0.6em 1em; }
.path { color: #777; font-family: monospace; font-size: 0.85em; margin: 0; }
dl.prov { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; font-size: 0.85em;
          background: #f6f6f6; padding: 0.4em 0.8em; }
dl.prov dt { font-weight: 600; } dl.prov dd { margin: 0; font-family: monospace; word-break: break-all; }
table { border-collapse: collapse; font-size: 0.85em; display: block; overflow-x: auto; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }
pre { max-height: 30em; overflow: auto; background: #fafafa; font-size: 0.8em; }
iframe { width: 100%; height: 600px; border: 1px solid #eee; } img { max-width: 100%; }
nav ul { columns: 3; font-size: 0.9em; }
"""


@dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` wrote."""

    path: Path
    """The HTML file."""
    root: Path
    """The figure folder it was built from."""
    counts: Mapping[str, int]
    """Items per kind (figure, table, result, image, page, listed)."""
    n_plots: int
    """Plotly plots drawn (a figure file may hold several)."""
    bytes: int
    """Size of the file."""


def _script_json(obj) -> str:
    """JSON safe inside a <script> element (no ``</script>`` or comment openers)."""
    return json.dumps(obj, default=str).replace("</", "<\\/").replace("<!--", "<\\!--")


def _provenance(prov: Mapping[str, str]) -> str:
    if not prov:
        return '<dl class="prov"><dt>provenance</dt><dd>not recorded</dd></dl>'
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in prov.items())
    return f'<dl class="prov">{rows}</dl>'


def _article(item: ReportItem, first_plot: int) -> str:
    parts = [f"<article class=\"item {item.kind}\" data-path=\"{html.escape(item.path)}\">",
             f"<h3>{html.escape(item.title)}</h3>", f'<p class="path">{html.escape(item.path)}</p>',
             _provenance(item.provenance)]
    for i, spec in enumerate(item.figures):
        height = spec["layout"].get("height") or 460
        parts.append(f'<div class="report-plot" id="plot-{first_plot + i}" style="height:{int(height)}px"></div>')
    if item.numbers:
        parts.append(f"<details><summary>numbers</summary><pre>{html.escape(item.numbers)}</pre></details>")
    parts.append(item.body)
    parts.append("</article>")
    return "\n".join(parts)


def render_report(items: list[ReportItem], title: str, header: Mapping[str, str] | None = None) -> str:
    """The report page: a table of contents by folder, then every item with its provenance."""
    from plotly.offline import get_plotlyjs

    folders: dict[str, list[ReportItem]] = {}
    for item in items:
        folders.setdefault(str(Path(item.path).parent), []).append(item)
    specs, sections, toc = [], [], []
    for n, (folder, group) in enumerate(folders.items()):
        anchor = f"sec-{n}"
        toc.append(f'<li><a href="#{anchor}">{html.escape(folder)}</a> ({len(group)})</li>')
        articles = []
        for item in group:
            articles.append(_article(item, len(specs)))
            specs.extend(item.figures)
        sections.append(f'<section id="{anchor}"><h2>{html.escape(folder)}</h2>' + "\n".join(articles) + "</section>")
    head = dict(header or {}) | {"generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                                 "items": str(len(items)), "plots": str(len(specs))}
    draw = ("const SPECS = " + _script_json(specs) + ";\n"
            "SPECS.forEach((s, i) => Plotly.newPlot('plot-' + i, s.data, s.layout,"
            " {responsive: true, displaylogo: false}));")
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>", "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>",
        f"<script>{get_plotlyjs()}</script>", "</head><body>", f"<h1>{html.escape(title)}</h1>",
        _provenance(head), "<nav><ul>" + "".join(toc) + "</ul></nav>", *sections,
        f"<script>{draw}</script>", "</body></html>",
    ])


def write_report(root: str | Path, out: str | Path | None = None, title: str = "interp report",
                 header: Mapping[str, str] | None = None) -> ReportResult:
    """Write one self-contained HTML report of everything under ``root`` (default: ``root/report.html``)."""
    from interp.io import write_text

    root = Path(root)
    out = Path(out) if out is not None else root / "report.html"
    items = collect_items(root, exclude=(out,))
    page = render_report(items, title, header)
    write_text(out, page)
    counts: dict[str, int] = {}
    for item in items:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    return ReportResult(out, root, counts, sum(len(i.figures) for i in items), out.stat().st_size)
