"""Gather a figure folder's results for the HTML report: plotly figures, tables, JSON results, images.

Every item carries its provenance: the command of the stage that wrote its folder (from the stage stamp)
and the model / data / settings fields of its own JSON (or of the JSON beside it with the same stem).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from interp.reporting.stamps import STAMP, read_stamp

PROVENANCE_KEYS = ("command", "model", "models", "base", "data", "prompts", "dataset", "site", "sae", "subspace",
                   "config", "settings", "dtype", "device", "seed")
"""Fields shown as an item's provenance, when its JSON (or its ``provenance`` field) has them."""

MAX_VALUE_CHARS = 600
"""A provenance value longer than this is cut (the full JSON is one click away in the item)."""
MAX_JSON_CHARS = 20_000
"""Characters of a JSON result shown inline (evaluations with every reply run to megabytes)."""
MAX_CSV_ROWS = 500
MAX_INLINE_BYTES = 5_000_000
"""Larger images and HTML pages are listed, not inlined."""

_NEWPLOT = re.compile(r"Plotly\.newPlot\(\s*")
_REMOTE = re.compile(r"""<(script|link)[^>]+(src|href)\s*=\s*["']?(https?:)?//""", re.IGNORECASE)


@dataclass(frozen=True)
class ReportItem:
    """One figure, table, result or image of the report."""

    kind: Literal["figure", "table", "result", "image", "page", "listed"]
    """What it is (``listed``: named only, e.g. an HTML page that needs the network)."""
    path: str
    """Its path relative to the figure root."""
    title: str
    """Heading shown above it."""
    body: str = ""
    """Rendered HTML (tables, results, images, pages); empty for figures."""
    figures: tuple[Mapping[str, Any], ...] = ()
    """Plotly specs (``data``, ``layout``) drawn by the report's one local plotly.js."""
    provenance: Mapping[str, str] = field(default_factory=dict)
    """Command, model, data and settings that produced it (label -> compact text)."""
    numbers: str = ""
    """The numbers behind a figure (its sidecar JSON), as text for a collapsible block."""


def plotly_specs(page: str) -> list[dict]:
    """The ``(data, layout)`` of every ``Plotly.newPlot`` call in a plotly-written HTML page."""
    decoder = json.JSONDecoder()
    specs = []
    for m in _NEWPLOT.finditer(page):
        pos, args = m.end(), []
        try:
            for _ in range(3):  # div id, data, layout
                while page[pos].isspace():
                    pos += 1
                value, pos = decoder.raw_decode(page, pos)
                args.append(value)
                while page[pos].isspace():
                    pos += 1
                pos += page[pos] == ","
        except (ValueError, IndexError):
            continue  # not a literal call (e.g. plotly.js' own source); skip it
        specs.append({"data": args[1], "layout": args[2]})
    return specs


def _compact(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(", ", ": "))
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + " ..."


def provenance_of(obj: Any) -> dict[str, str]:
    """Provenance fields of a JSON result: top-level ones, then those inside its ``provenance`` field."""
    if not isinstance(obj, dict):
        return {}
    out = {k: _compact(without_texts(obj[k])) for k in PROVENANCE_KEYS if k in obj and obj[k] not in (None, {}, [])}
    inner = obj.get("provenance")
    if isinstance(inner, dict):
        for k, v in inner.items():
            if v not in (None, {}, []):
                out.setdefault(k, _compact(without_texts(v)))
    return out


def _stamp_provenance(path: Path, root: Path) -> dict[str, str]:
    for folder in (path.parent, *path.parent.parents):
        stamp = read_stamp(folder)
        if stamp is not None:
            return {"command": " ".join(stamp.command),
                    "stage": f"{stamp.stage} ({stamp.profile} profile, {stamp.seconds:.0f} s, {stamp.finished})"}
        if folder == root:
            break
    return {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _csv_table(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return "<p>(empty)</p>"
    head, body = rows[0], rows[1:MAX_CSV_ROWS + 1]
    cells = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    lines = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    more = f"<p>... {len(rows) - 1 - MAX_CSV_ROWS} more rows</p>" if len(rows) - 1 > MAX_CSV_ROWS else ""
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{lines}</tbody></table>{more}"


def _markdown(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


TEXT_KEYS = ("prompt", "response", "reply", "text", "completion", "question")
"""Fields of per-prompt records; lists of such records are summarised, never inlined."""


def without_texts(obj: Any) -> Any:
    """``obj`` with every list of per-prompt records replaced by a count: results such as an unredacted
    ``eval.json`` hold harmful prompts and replies, which the report must not copy into a shareable page."""
    if isinstance(obj, dict):
        return {k: without_texts(v) for k, v in obj.items()}
    if isinstance(obj, list):
        if any(isinstance(r, dict) and any(k in r for k in TEXT_KEYS) for r in obj):
            return f"[{len(obj)} per-prompt records: not shown in the report]"
        return [without_texts(v) for v in obj]
    return obj


def _json_text(obj: Any) -> str:
    text = json.dumps(without_texts(obj), indent=1, default=str)
    return text if len(text) <= MAX_JSON_CHARS else text[:MAX_JSON_CHARS] + f"\n... ({len(text):,} characters in all)"


def _item(path: Path, root: Path, siblings: set[str]) -> ReportItem | None:
    rel, suffix, stem = path.relative_to(root).as_posix(), path.suffix.lower(), path.with_suffix("")
    sidecar = _read_json(path.with_suffix(".json")) if path.with_suffix(".json").name in siblings else None
    prov = _stamp_provenance(path, root) | provenance_of(sidecar)
    if suffix == ".html":
        page = path.read_text(errors="replace")
        specs = plotly_specs(page)
        if specs:
            layout_title = specs[0]["layout"].get("title")
            title = layout_title.get("text") if isinstance(layout_title, dict) else layout_title
            return ReportItem("figure", rel, title or stem.name, figures=tuple(specs), provenance=prov,
                              numbers=_json_text(sidecar) if sidecar is not None else "")
        if _REMOTE.search(page) or len(page) > MAX_INLINE_BYTES:
            return ReportItem("listed", rel, stem.name, "<p>not inlined: the page loads scripts from the network "
                              "or is too large; open it beside this report.</p>", provenance=prov)
        return ReportItem("page", rel, stem.name, f'<iframe srcdoc="{html.escape(page, quote=True)}"></iframe>',
                          provenance=prov)
    if suffix in (".md", ".csv"):
        text = path.read_text(errors="replace")
        body = _markdown(text) if suffix == ".md" else _csv_table(text)
        return ReportItem("table", rel, path.name, body, provenance=prov)
    if suffix == ".json":
        if any(path.with_suffix(s).name in siblings for s in (".html", ".md", ".csv")):
            return None  # a figure's or table's numbers: shown with it
        obj = _read_json(path)
        own = _stamp_provenance(path, root) | provenance_of(obj)
        body = f"<details><summary>JSON</summary><pre>{html.escape(_json_text(obj))}</pre></details>"
        return ReportItem("result", rel, path.name, body, provenance=own)
    if suffix == ".png" and path.with_suffix(".html").name not in siblings:
        data = path.read_bytes()
        if len(data) > MAX_INLINE_BYTES:
            return ReportItem("listed", rel, path.name, "<p>image too large to inline</p>", provenance=prov)
        src = "data:image/png;base64," + base64.b64encode(data).decode()
        return ReportItem("image", rel, path.name, f'<img alt="{html.escape(rel)}" src="{src}">', provenance=prov)
    return None


def collect_items(root: str | Path, exclude: tuple[str | Path, ...] = ()) -> list[ReportItem]:
    """Every figure, table, JSON result and standalone image under ``root``, in path order.

    PNGs beside an HTML figure are skipped (the figure is drawn live); JSON beside a figure or table is
    shown with it; stage stamps, hidden files and ``exclude`` (e.g. the report itself) are left out.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"figure folder {root} does not exist; run the report's stages first")
    skip = {Path(p).resolve() for p in exclude}
    items, listing = [], {}
    for path in sorted(root.rglob("*")):
        rel_parts = path.relative_to(root).parts
        if (not path.is_file() or path.name == STAMP or path.resolve() in skip
                or any(part.startswith(".") for part in rel_parts)):
            continue
        if path.parent not in listing:
            listing[path.parent] = {p.name for p in path.parent.iterdir()}
        item = _item(path, root, listing[path.parent])
        if item is not None:
            items.append(item)
    return items
