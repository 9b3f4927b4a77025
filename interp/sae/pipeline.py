"""Glue shared by the CLI and the analysis script: prompts -> store -> SAE -> attribution -> subspace."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import torch

from interp.data.prompts import PromptSet
from interp.io import write_json, write_text
from interp.sae.attribution import (
    ClassifyConfig,
    FeatureAttribution,
    ablation_check,
    attribute_features,
    refusal_batches,
    top_activations,
    truthfulness_batches,
)
from interp.sae.site import ActSite
from interp.sae.store import ActivationStore


def corpus_texts(model, prompts: PromptSet, with_responses: bool = False) -> tuple[list[str], list[str]]:
    """Chat-formatted texts (with the reference response where asked and present) and their labels."""
    texts = [model.chat(p.text, p.response if with_responses and p.response else None) for p in prompts]
    return texts, [p.label for p in prompts]


@torch.no_grad()
def last_token_activations(model, site: ActSite, texts: Sequence[str], batch_size: int = 8) -> torch.Tensor:
    """Flattened float64 activation at ``site`` on the last token of each chat-formatted prompt (CPU)."""
    rows = []
    for i in range(0, len(texts), batch_size):
        got: dict = {}

        def grab(act, *, hook, got=got):
            got["a"] = act.detach()

        with model.hooks(fwd=[(site.site, grab)]):
            model.run_hooks(model.encode_chat(list(texts[i : i + batch_size])), stop_after=site.site)
        rows.append(site.extract(got["a"])[:, -1].double().cpu())
    return torch.cat(rows) if rows else torch.zeros(0, site.width(model.spec), dtype=torch.float64)


def difference_of_means(model, site: ActSite, harmful: Sequence[str], harmless: Sequence[str],
                        batch_size: int = 8) -> torch.Tensor:
    """Mean last-token activation at ``site`` on harmful minus harmless prompts (chat-formatted)."""
    means = [last_token_activations(model, site, texts, batch_size).sum(0) / len(texts)
             for texts in (harmful, harmless)]
    return (means[0] - means[1]).float()


def run_attribution(model, sae, site: ActSite, prompts: PromptSet, n_per_class: int = 16,
                    truth_mode: str = "full", cfg: ClassifyConfig = ClassifyConfig(), batch_size: int = 8,
                    check_k: int = 5) -> tuple[FeatureAttribution, dict]:
    """Attribute both metrics on a prompt set and validate each by ablation."""
    harmful = prompts.by_label("harmful").sample(n_per_class).texts
    harmless = prompts.by_label("harmless").sample(n_per_class).texts
    factual = list(prompts.by_label("factual").sample(n_per_class))
    rb = refusal_batches(model, harmful, harmless, batch_size)
    tb = truthfulness_batches(model, factual, truth_mode, batch_size)  # type: ignore[arg-type]
    prov = {"model": model.name, "site": site.to_dict(), "prompts": prompts.name,
            "n": {"harmful": len(harmful), "harmless": len(harmless), "factual": len(factual)},
            "truth_mode": truth_mode}
    attr = attribute_features(model, sae, site, rb, tb, cfg, prov)
    checks = {}
    for name, batches, scores in (("refusal", rb, attr.refusal), ("truthfulness", tb, attr.truthfulness)):
        c = ablation_check(model, sae, site, batches, scores, k=check_k)
        checks[name] = {"base": c.base, "top_features": list(c.top_features), "top_delta": c.top_delta,
                        "random_deltas": list(c.random_deltas), "predicted_delta": c.predicted_delta,
                        "passed": c.passed}
    return attr, checks


def write_attribution(attr: FeatureAttribution, checks: dict, out: Path, sae=None,
                      store: ActivationStore | None = None, tokenizer=None, n_top: int = 8, model=None,
                      max_pages: int = 64) -> dict:
    """JSON + CSV of scores and classes, scatter figure and top-prompt table/HTML; returns the summary.

    With an SAE and a store it also writes ``feature_pages.json`` (histograms, top examples with
    per-token activations, and, given ``model``, logit effects) for the classified features, strongest
    first, at most ``max_pages`` of them (what ``interp explore`` shows on its feature pages); harmful
    examples' tokens are redacted there, and the full pages go into the store's folder.
    """
    from interp.sae.plots import attribution_scatter, top_prompts_html, top_prompts_table

    recs = attr.to_records()
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(recs[0]))
    w.writeheader()
    w.writerows(recs)
    write_text(out / "feature_attribution.csv", buf.getvalue())
    counts = {c: attr.classes.count(c) for c in ("refusal", "hallucination", "shared", "neither")}
    summary = {"counts": counts, "ablation_checks": checks, "thresholds": vars(attr.config),
               "top": {c: attr.features(c)[:n_top] for c in ("refusal", "hallucination", "shared")},
               "provenance": attr.provenance}
    write_json(out / "feature_attribution.json", summary | {"features": recs})
    write_text(out / "attribution_scatter.html", attribution_scatter(attr).to_html(include_plotlyjs="cdn"))
    if sae is not None and store is not None:
        feats = [f for c in ("refusal", "shared", "hallucination") for f in summary["top"][c][:4]]
        if feats:
            ex = top_activations(sae, store, feats, k=5)
            classes = {f: attr.classes[f] for f in feats}
            write_text(out / "top_prompts.html", top_prompts_html(ex, classes, tokenizer))
            write_text(out / "top_prompts_table.html",
                       top_prompts_table(ex, classes, tokenizer).to_html(include_plotlyjs="cdn"))
            write_json(out / "top_prompts.json", {str(k): v for k, v in ex.items()})
        paged = _paged_features(attr, summary["top"], max_pages)
        if paged:
            from interp.sae.feature_pages import feature_pages, redact_examples

            pages = feature_pages(sae, store, paged, tokenizer, model) | {"provenance": attr.provenance}
            # figures are committed: harmful prompts' tokens only go beside the store (a runs/ cache)
            write_json(store.path / "feature_pages.json", pages)
            write_json(out / "feature_pages.json", redact_examples(pages))
    return summary


def _paged_features(attr: FeatureAttribution, top: dict, limit: int) -> list[int]:
    """Top features of each class first, then every other classified feature, strongest first."""
    ranked = [f for c in ("refusal", "shared", "hallucination") for f in top[c]]
    ranked += [f for c in ("refusal", "shared", "hallucination") for f in attr.features(c)]
    return list(dict.fromkeys(ranked))[:limit]
