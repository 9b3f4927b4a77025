"""Two models on the same prompts: paired differences with confidence intervals and p-values.

Scoring every model on the same held-out prompts makes the comparison paired, which is far more
sensitive than comparing two rates: only the prompts on which the models disagree carry information.

* rates (refused, complied, degenerate, MC1 correct): difference of proportions with Newcombe's
  hybrid-score interval for paired data (Newcombe 1998, method 10; no bootstrap, sensible at 0 or n
  discordant pairs) and the exact McNemar test (a two-sided binomial test on the discordant pairs);
* scores (first-token refusal log-odds, MC2): mean paired difference with a t interval and the
  paired t-test's p-value, plus the Wilcoxon signed-rank p-value as a distribution-free check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedComparison:
    """``b - a`` on ``n`` prompts both models were scored on."""

    metric: str
    """What is compared, e.g. ``harmful/refusal_rate`` or ``harmful/refusal_score[source=advbench]``."""
    n: int
    """Paired prompts."""
    mean_a: float
    """Mean of model a."""
    mean_b: float
    """Mean of model b."""
    diff: float
    """``mean_b - mean_a``."""
    low: float
    """Lower end of the interval of ``diff``."""
    high: float
    """Upper end of the interval of ``diff``."""
    p_value: float
    """Two-sided p-value of no difference (exact McNemar for rates, paired t for scores)."""
    test: str
    """Which test gave ``p_value``."""
    a_only: int | None = None
    """Rates: prompts where only a's flag is true (discordant pairs)."""
    b_only: int | None = None
    """Rates: prompts where only b's flag is true."""
    wilcoxon_p: float | None = None
    """Scores: Wilcoxon signed-rank p-value."""

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{self.metric}: {self.mean_a:.3f} -> {self.mean_b:.3f}, diff {self.diff:+.3f} "
                f"[{self.low:+.3f}, {self.high:+.3f}], p={self.p_value:.3g} ({self.test}, n={self.n})")


def _wilson(k: int, n: int, alpha: float) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="wilson")
    return float(ci.low), float(ci.high)


Flags = Sequence[int] | np.ndarray
"""Per-prompt booleans (bools, 0/1 ints or an array)."""
Scores = Sequence[float] | np.ndarray
"""Per-prompt real scores."""


def paired_rates(a: Flags, b: Flags, metric: str = "rate", alpha: float = 0.05) -> PairedComparison:
    """Difference of two paired proportions (b - a): Newcombe's interval, exact McNemar p-value."""
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"{metric}: paired flags need equal 1-d lengths, got {x.shape} and {y.shape}")
    n = int(x.size)
    if n == 0:
        raise ValueError(f"{metric}: no paired observations")
    both, a_only, b_only = int((x & y).sum()), int((x & ~y).sum()), int((~x & y).sum())
    neither = n - both - a_only - b_only
    p1, p2 = (both + b_only) / n, (both + a_only) / n  # b's rate, a's rate
    l1, u1 = _wilson(both + b_only, n, alpha)
    l2, u2 = _wilson(both + a_only, n, alpha)
    denom = (both + b_only) * (a_only + neither) * (both + a_only) * (b_only + neither)
    phi = (both * neither - a_only * b_only) / math.sqrt(denom) if denom > 0 else 0.0
    diff = p1 - p2
    delta = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    eps = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    disc = a_only + b_only
    p = 1.0 if disc == 0 else float(stats.binomtest(b_only, disc, 0.5).pvalue)
    return PairedComparison(metric, n, p2, p1, diff, max(diff - delta, -1.0), min(diff + eps, 1.0), p,
                            "exact McNemar", a_only, b_only)


def paired_scores(a: Scores, b: Scores, metric: str = "score",
                  alpha: float = 0.05) -> PairedComparison:
    """Mean paired difference (b - a) with a t interval; paired t and Wilcoxon p-values."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"{metric}: paired scores need equal 1-d lengths, got {x.shape} and {y.shape}")
    if x.size < 2:
        raise ValueError(f"{metric}: a paired comparison of scores needs >= 2 pairs, got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{metric}: non-finite scores")
    d = y - x
    mean = float(d.mean())
    if np.allclose(d, d[0]):  # no spread: the interval is the point and only a non-zero shift is significant
        return PairedComparison(metric, int(d.size), float(x.mean()), float(y.mean()), mean, mean, mean,
                                1.0 if d[0] == 0 else 0.0, "paired t", wilcoxon_p=1.0 if d[0] == 0 else 0.0)
    t = stats.ttest_rel(y, x)
    ci = t.confidence_interval(1 - alpha)
    w = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return PairedComparison(metric, int(d.size), float(x.mean()), float(y.mean()), mean, float(ci.low),
                            float(ci.high), float(t.pvalue), "paired t", wilcoxon_p=w)
