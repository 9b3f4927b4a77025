"""Exact patching on attribution's candidate heads, and the overlap of the exact scores there.

Attribution patching scores every head in one backward pass but is a linear estimate; exact activation
patching costs a forward pass per head. The usual compromise: take the heads attribution puts in either
map's top-k by magnitude (k = 30), patch only those exactly, and compare the two exact maps on that
candidate set. The permutation null of that comparison shuffles heads *within the candidate set only*:
the candidates were chosen for having large effects in one map or the other, so the chance baseline is
the overlap of two random rankings of the candidates, not of all heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.heads.metrics import Metric
from interp.heads.overlap import Overlap, compare
from interp.heads.patching import patch_heads
from interp.heads.scores import Head, HeadScores, RankBy
from interp.models import Model


def candidate_heads(a: HeadScores, b: HeadScores, k: int = 30, by: RankBy = "magnitude") -> list[Head]:
    """The union of both maps' top-k heads (by magnitude unless told otherwise), in (layer, head) order."""
    if a.scores.shape != b.scores.shape:
        raise ValueError(f"head maps differ in shape: {tuple(a.scores.shape)} vs {tuple(b.scores.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return sorted(set(a.top_k(k, by=by)) | set(b.top_k(k, by=by)))


def candidate_overlap(
    a: HeadScores, b: HeadScores, candidates: Sequence[Head], ks: Sequence[int] = (5, 10, 20, 30),
    n_permutations: int = 1000, seed: int = 0, by: RankBy = "magnitude",
    names: tuple[str, str] | None = None,
) -> Overlap:
    """Jaccard@k and Spearman of ``a`` and ``b`` restricted to ``candidates``.

    Heads outside ``candidates`` are ignored entirely: they are neither ranked nor permuted, so the
    permutation null (and its mean, ``jaccard_null``) is over the candidate set only. k values larger
    than the candidate set are dropped.
    """
    if a.scores.shape != b.scores.shape:
        raise ValueError(f"head maps differ in shape: {tuple(a.scores.shape)} vs {tuple(b.scores.shape)}")
    heads = [tuple(h) for h in candidates]
    if len(set(heads)) != len(heads):
        raise ValueError("candidate heads contain duplicates")
    bad = [h for h in heads if not (0 <= h[0] < a.n_layers and 0 <= h[1] < a.n_heads)]
    if bad:
        raise ValueError(f"candidate heads {bad} are outside the {a.n_layers} x {a.n_heads} map")
    rows = torch.tensor([la for la, _ in heads], dtype=torch.long)
    cols = torch.tensor([h for _, h in heads], dtype=torch.long)
    return compare(a.scores[rows, cols], b.scores[rows, cols], heads, ks, n_permutations, seed, by,
                   names or (a.metric, b.metric),
                   {"methods": [a.method, b.method], "null": "permutations within the candidate heads",
                    "candidates": [list(h) for h in heads]})


@dataclass(frozen=True)
class PatchTarget:
    """What one metric's exact patching needs: prompts, the metric and the patching baseline."""

    prompts: Sequence[str]
    """Clean prompts."""
    metric: Metric
    """Behaviour metric on the next-token logits."""
    baseline: Float[Tensor, "b pos layer head d_head"]
    """z the patched head is set to (e.g. the mean over the corrupted prompts)."""


@dataclass(frozen=True)
class CandidatePatching:
    """Exact patching scores of the candidate heads for two metrics, and their overlap."""

    candidates: list[Head]
    """Union of both attribution maps' top-k heads."""
    a: HeadScores
    """Exact scores of the first metric (0 outside the candidates)."""
    b: HeadScores
    """Exact scores of the second metric (0 outside the candidates)."""
    overlap: Overlap
    """Overlap of the exact scores on the candidates (null over the candidates only)."""
    k: int
    """Top-k of each attribution map that went into the candidates."""

    def to_dict(self) -> dict:
        return {"k": self.k, "candidates": [list(h) for h in self.candidates], "overlap": self.overlap.to_dict(),
                "a": self.a.to_dict(), "b": self.b.to_dict()}


def patch_candidates(
    model: Model, attr_a: HeadScores, attr_b: HeadScores, target_a: PatchTarget, target_b: PatchTarget,
    k: int = 30, ks: Sequence[int] = (5, 10, 20, 30), by: RankBy = "magnitude", n_permutations: int = 1000,
    seed: int = 0, batch_size: int = 8, heads_per_forward: int = 8, names: tuple[str, str] | None = None,
) -> CandidatePatching:
    """Exact activation patching of the union of both attribution maps' top-k heads, then their overlap."""
    heads = candidate_heads(attr_a, attr_b, k, by)
    prov = {"candidates_from": [attr_a.method, attr_b.method], "candidate_k": k, "candidate_rank_by": by}
    exact = [patch_heads(model, t.prompts, t.metric, t.baseline, heads=heads, batch_size=batch_size,
                         provenance=prov, heads_per_forward=heads_per_forward) for t in (target_a, target_b)]
    ov = candidate_overlap(exact[0], exact[1], heads, ks, n_permutations, seed, by,
                           names or (attr_a.metric, attr_b.metric))
    return CandidatePatching(heads, exact[0], exact[1], ov, k)
