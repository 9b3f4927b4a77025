"""Overview: the provenance of every result found, SAE quality and the head-overlap statistics."""

from __future__ import annotations

import json

from dash import html
from dash.development.base_component import Component

from interp.explore.components import kv_table, note, table
from interp.explore.results import Results

_QUALITY = ("explained_variance", "mse", "l0", "dead_fraction", "loss_clean", "loss_spliced", "loss_recovered",
            "n_rows")
_PROV_KEYS = ("model", "data", "prompts", "site", "method", "n_prompts", "n")


def provenance_rows(results: Results) -> list[tuple[str, str, str, str]]:
    """One row per result file: path, kind, model, other key settings."""
    rows = []
    for f in results.files:
        p = f.provenance
        rest = {k: p[k] for k in _PROV_KEYS[1:] if k in p}
        rows.append((f.path, f.kind, str(p.get("model", "")), json.dumps(rest, default=str)[:160]))
    return rows


def overlap_rows(ov: dict) -> list[tuple]:
    """Jaccard@k with its p-value and chance level, per k."""
    null = ov.get("jaccard_null", {})
    return [(int(k), ov["jaccard"][k], ov["jaccard_p"][k], null.get(k), len(ov.get("shared", {}).get(k, [])))
            for k in sorted(ov["jaccard"], key=int)]


def layout(results: Results) -> Component:
    parts: list = [html.H2("Overview"), note(f"figures folder: {results.root}")]
    parts += [html.H3("Results found"),
              table(["file", "kind", "model", "settings"], provenance_rows(results), id="provenance")
              if results.files else note("no result files found")]
    feats = results.features
    if feats is not None:
        parts.append(html.H3("SAE"))
        if feats.quality:
            parts.append(table(["metric", "value"], [(k, feats.quality.get(k)) for k in _QUALITY
                                                     if k in feats.quality], id="sae-quality"))
        parts.append(kv_table({"classes": feats.summary.get("counts"), "site": feats.summary.get(
            "provenance", {}).get("site"), "sae": feats.sae_path}))
    heads = results.heads
    if heads is not None and heads.overlap:
        ov = heads.overlap
        parts += [html.H3(f"Head overlap: {ov.get('a')} vs {ov.get('b')} ({heads.rank_by} ranking)"),
                  table(["k", "Jaccard", "p", "chance", "shared heads"], overlap_rows(ov), id="overlap-table"),
                  note(f"Spearman {ov['spearman']:.3f} (p = {ov['spearman_p']:.3g})")]
        if heads.candidates:
            cov = heads.candidates["overlap"]
            parts += [html.H4(f"exact patching of {len(heads.candidates['candidates'])} candidate heads"),
                      table(["k", "Jaccard", "p", "chance", "shared heads"], overlap_rows(cov))]
    return html.Div(parts)
