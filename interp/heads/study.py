"""The head study of the issue: refusal heads, truthfulness heads, their overlap, figures on disk.

``run_head_study`` computes; ``write_head_study`` writes JSON and HTML figures (atomically) into a
folder. The CLI (``interp heads``) and ``analyses/heads_tradeoff.py`` are thin wrappers around both.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from interp.data.prompts import PromptSet
from interp.figures import save_figure
from interp.heads.activations import head_patterns, suffix_positions, z_baseline
from interp.heads.attribution import attribution_patching
from interp.heads.candidates import CandidatePatching, PatchTarget, patch_candidates
from interp.heads.metrics import refusal_metric, truth_metric
from interp.heads.overlap import Overlap, overlap
from interp.heads.patching import patch_heads
from interp.heads.plots import attention_view, head_heatmap, html_page, overlap_figure
from interp.heads.probes import probe_heads
from interp.heads.scores import HeadScores, RankBy
from interp.io import write_json, write_text
from interp.models import Model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadStudyConfig:
    """Settings of a head study."""

    n_prompts: int = 32
    """Prompts per class (harmful, harmless, factual), a seeded sample."""
    method: Literal["attribution", "activation_patching"] = "attribution"
    """Head scoring method for both metrics."""
    probes: bool = False
    """Also fit ITI probes per head on the factual items."""
    ks: tuple[int, ...] = (5, 10, 20)
    """Top-k sizes for Jaccard overlap."""
    figure_k: int = 10
    """Top-k marked on the overlap figure and shown as attention views."""
    n_permutations: int = 1000
    """Permutations of the overlap test."""
    rank_by: RankBy = "signed"
    """Rank heads by signed score or by the magnitude of their effect (overlap, figure, attention views)."""
    candidate_k: int | None = None
    """With attribution: also patch exactly the union of both maps' top-k heads by magnitude and report
    the overlap of the exact scores there (``None``: skip)."""
    batch_size: int = 8
    """Prompts per forward pass."""
    seed: int = 0
    """Seed of the prompt samples and the permutation test."""

    def __post_init__(self) -> None:
        if self.figure_k not in self.ks:
            raise ValueError(f"figure_k={self.figure_k} must be one of ks={self.ks}")
        if self.n_prompts < 2:
            raise ValueError(f"n_prompts must be >= 2, got {self.n_prompts}")
        if self.candidate_k is not None and (self.candidate_k < 1 or self.method != "attribution"):
            raise ValueError(f"candidate_k={self.candidate_k} needs method='attribution' and k >= 1")


@dataclass(frozen=True)
class HeadStudy:
    """Refusal and truthfulness head scores, their overlap and the settings."""

    refusal: HeadScores
    """Refusal-score effect per head (harmful prompts, patched towards the harmless mean)."""
    truth: HeadScores
    """Truth-margin effect per head (factual prompts, mean-ablated over the factual set)."""
    overlap: Overlap
    """Overlap of the two maps."""
    probes: HeadScores | None
    """Held-out ITI probe accuracy per head, if asked for."""
    config: HeadStudyConfig
    """Settings."""
    examples: dict[str, list[str]]
    """A few prompts per class (for attention views; harmful ones only from the built-in set)."""
    candidates: CandidatePatching | None = None
    """Exact patching on attribution's top candidates and its overlap, if asked for."""


def _score(
    model: Model, prompts: list[str], metric, baseline, cfg: HeadStudyConfig, prov: dict
) -> HeadScores:
    if cfg.method == "attribution":
        return attribution_patching(model, prompts, metric, baseline, cfg.batch_size, prov)
    return patch_heads(model, prompts, metric, baseline, batch_size=cfg.batch_size, provenance=prov)


def run_head_study(
    model: Model, prompts: PromptSet, config: HeadStudyConfig = HeadStudyConfig()
) -> HeadStudy:
    """Score every head for refusal and truthfulness on ``prompts`` (needs harmful, harmless, factual)."""
    cfg = config
    harmful = prompts.by_label("harmful").sample(cfg.n_prompts, cfg.seed)
    harmless = prompts.by_label("harmless").sample(cfg.n_prompts, cfg.seed)
    factual = prompts.by_label("factual").sample(cfg.n_prompts, cfg.seed)
    positions = suffix_positions(model)

    log.info("refusal heads: %d harmful prompts vs the harmless mean", len(harmful))
    ref_metric = refusal_metric(model.tokenizer)
    ref_base = base = z_baseline(model, harmless.texts, positions, cfg.batch_size)
    refusal = _score(model, harmful.texts, ref_metric, base, cfg,
                     {"data": prompts.name, "clean": "harmful", "baseline": "harmless mean"})

    log.info("truthfulness heads: %d factual prompts, mean-ablation baseline", len(factual))
    tr_metric = truth_metric(model.tokenizer, factual)
    items = tr_metric.prompts.texts
    base = z_baseline(model, items, positions, cfg.batch_size)
    truth = _score(model, items, tr_metric, base, cfg,
                   {"data": prompts.name, "clean": "factual", "baseline": "factual mean (mean-ablation)",
                    "metric_note": "first-token log-prob margin, correct vs incorrect"})

    probes = probe_heads(model, factual, seed=cfg.seed, batch_size=cfg.batch_size) if cfg.probes else None
    names = ("refusal", "truthfulness")
    ov = overlap(refusal, truth, cfg.ks, cfg.n_permutations, cfg.seed, names=names, by=cfg.rank_by)
    cands = None
    if cfg.candidate_k is not None:
        log.info("exact patching of the top-%d candidates of both maps", cfg.candidate_k)
        cands = patch_candidates(model, refusal, truth, PatchTarget(harmful.texts, ref_metric, ref_base),
                                 PatchTarget(items, tr_metric, base), cfg.candidate_k, cfg.ks, "magnitude",
                                 cfg.n_permutations, cfg.seed, cfg.batch_size, names=names)
    # the attention views are written into figures: only built-in harmful prompts (already in this
    # repository) are shown there, never a benchmark's harmful text
    own = [p.text for p in harmful if p.source == "builtin"]
    examples = {"harmful": own[:2], "factual": items[:2]}
    return HeadStudy(refusal, truth, ov, probes, cfg, examples, cands)


def write_head_study(model: Model, study: HeadStudy, out: str | Path) -> list[Path]:
    """Write scores (JSON), overlap (JSON), heatmaps and attention views (HTML) into ``out``."""
    out = Path(out)
    # k values larger than the number of heads were dropped by the overlap: fall back to the largest kept
    k = study.config.figure_k if study.config.figure_k in study.overlap.shared else max(study.overlap.shared)
    written = [
        study.refusal.to_json(out / "refusal_heads.json"),
        study.truth.to_json(out / "truth_heads.json"),
        write_json(out / "overlap.json", {**study.overlap.to_dict(), "config": asdict(study.config)}),
        *save_figure(head_heatmap(study.refusal, "refusal heads"), out / "refusal_heads_map"),
        *save_figure(head_heatmap(study.truth, "truthfulness heads"), out / "truth_heads_map"),
        *save_figure(overlap_figure(study.refusal, study.truth, study.overlap, k), out / "overlap_map"),
    ]
    if study.candidates is not None:
        written.append(write_json(out / "candidate_patching.json", study.candidates.to_dict()))
    if study.probes is not None:
        written.append(study.probes.to_json(out / "probe_heads.json"))
        fig = head_heatmap(study.probes, "ITI probes")
        written += save_figure(fig, out / "probe_heads_map")
    by = study.config.rank_by
    heads = study.overlap.shared[k][:6] or study.refusal.top_k(3, by=by) + study.truth.top_k(3, by=by)
    sections = []
    for label, texts in study.examples.items():
        for text in texts:
            tokens, pats = head_patterns(model, text, heads)
            sections.append((f"{label}: {text}", attention_view(tokens, pats, heads)))
    title = f"attention of {'shared top-' + str(k) if study.overlap.shared[k] else 'top'} heads {heads}"
    written.append(write_text(out / "attention_shared_heads.html", html_page(title, sections)))
    return written
