"""Head attribution: which attention heads carry a behaviour, and how two head sets overlap.

Scores come from attribution patching (all heads, one backward pass), exact activation patching and
mean-ablation (one forward per head), and ITI-style linear probes; all return :class:`HeadScores`.
"""

from interp.heads.activations import collect_z, head_patterns, suffix_positions, z_baseline
from interp.heads.attribution import attribution_patching
from interp.heads.candidates import (
    CandidatePatching,
    PatchTarget,
    candidate_heads,
    candidate_overlap,
    patch_candidates,
)
from interp.heads.metrics import Metric, RefusalMetric, TruthMargin, refusal_metric, truth_metric
from interp.heads.overlap import Overlap, expected_jaccard, jaccard, overlap, spearman, top_k_agreement
from interp.heads.patching import head_means, mean_ablation, patch_heads
from interp.heads.probes import AnswerActivations, answer_activations, probe_heads
from interp.heads.scores import Head, HeadScores, RankBy

__all__ = [
    "AnswerActivations", "CandidatePatching", "Head", "HeadScores", "Metric", "Overlap", "PatchTarget",
    "RankBy", "RefusalMetric", "TruthMargin", "answer_activations", "attribution_patching",
    "candidate_heads", "candidate_overlap", "collect_z", "expected_jaccard", "head_means", "head_patterns",
    "jaccard", "mean_ablation", "overlap", "patch_candidates", "patch_heads", "probe_heads",
    "refusal_metric", "spearman", "suffix_positions", "top_k_agreement", "truth_metric", "z_baseline",
]
