"""Overlap of two head rankings (e.g. refusal heads vs hallucination heads).

Jaccard@k compares the top-k sets; Spearman's rho compares the whole rankings. Both get a seeded
permutation-test p-value: the null shuffles which head carries which score in one of the two maps, so
p is the chance that two unrelated rankings overlap at least this much; the mean Jaccard@k over the
permutations is reported beside it as the chance baseline (about ``k / (2n - k)`` for ``n`` heads, see
:func:`expected_jaccard`). Heads are ranked by signed score or by magnitude (``by="magnitude"``: the
size of the causal effect, so strongly suppressing heads count as much as strongly promoting ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from jaxtyping import Float
from scipy.stats import hypergeom, rankdata
from torch import Tensor

from interp.heads.scores import Head, HeadScores, RankBy, rank_by


def jaccard(a: Sequence[Head], b: Sequence[Head]) -> float:
    sa, sb = set(map(tuple, a)), set(map(tuple, b))
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def spearman(x: Float[Tensor, "..."], y: Float[Tensor, "..."]) -> float:
    """Spearman rank correlation of two equally shaped score arrays (average ranks for ties)."""
    rx, ry = rankdata(x.flatten().numpy()), rankdata(y.flatten().numpy())
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def expected_jaccard(n: int, k: int) -> float:
    """Exact mean Jaccard@k of two independent uniformly random k-subsets of ``n`` heads.

    The intersection ``X`` is hypergeometric (``n`` heads, ``k`` marked, ``k`` drawn), with
    ``E[X] = k^2 / n``, and Jaccard is ``X / (2k - X)``. Plugging in ``E[X]`` gives ``k / (2n - k)``, an
    underestimate (``x / (2k - x)`` is convex) by about a factor ``1 + 1/(2k)`` when ``k << n`` (10% at
    k = 5, 2% at k = 30); this sums the distribution instead.
    """
    if not 0 < k <= n:
        raise ValueError(f"need 0 < k <= n, got k={k}, n={n}")
    x = np.arange(max(0, 2 * k - n), k + 1)
    return float((hypergeom.pmf(x, n, k, k) * x / (2 * k - x)).sum())


@dataclass(frozen=True)
class Overlap:
    """How much two head-score maps agree."""

    a: str
    """Name of the first map (e.g. ``refusal``)."""
    b: str
    """Name of the second map (e.g. ``truthfulness``)."""
    jaccard: dict[int, float]
    """Jaccard index of the top-k head sets, per k."""
    jaccard_p: dict[int, float]
    """Permutation p-value of each Jaccard@k (chance of at least this overlap by accident)."""
    spearman: float
    """Spearman rank correlation over all heads."""
    spearman_p: float
    """Permutation p-value of the Spearman correlation (one-sided, positive association)."""
    shared: dict[int, list[Head]] = field(default_factory=dict)
    """Heads in both top-k sets, per k (in the first map's order)."""
    settings: dict = field(default_factory=dict)
    """Permutations, seed, ranking mode, number of heads compared, methods."""
    jaccard_null: dict[int, float] = field(default_factory=dict)
    """Mean Jaccard@k over the permutations: the overlap two unrelated rankings reach by chance."""
    rank_by: RankBy = "signed"
    """How both maps were ranked (``signed`` score or ``magnitude`` of the effect)."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shared"] = {k: [list(h) for h in v] for k, v in self.shared.items()}
        return d


def jaccard_cell(ov: dict, k: int) -> str:
    """``"J (p; chance)"`` of Jaccard@k from an :meth:`Overlap.to_dict` (keys as ints or, read back from
    JSON, strings), or ``"n/a"`` where k was not computed: one table cell."""
    j, p, null = (ov[f].get(k, ov[f].get(str(k))) for f in ("jaccard", "jaccard_p", "jaccard_null"))
    return "n/a" if j is None else f"{j:.2f} ({p:.3g}; {null:.2f})"


def overlap(
    a: HeadScores, b: HeadScores, ks: Sequence[int] = (5, 10, 20, 30), n_permutations: int = 1000,
    seed: int = 0, absolute: bool = False, names: tuple[str, str] | None = None, *,
    by: RankBy | None = None,
) -> Overlap:
    """Jaccard@k, Spearman and their permutation p-values between two head-score maps.

    ``by="magnitude"`` ranks heads by ``|score|`` (the size of the causal effect, either sign);
    ``by="signed"`` (default, or ``absolute=False``) by the score itself. k values larger than the number
    of heads are dropped.
    """
    if a.scores.shape != b.scores.shape:
        raise ValueError(f"head maps differ in shape: {tuple(a.scores.shape)} vs {tuple(b.scores.shape)}")
    heads = [(la, h) for la in range(a.n_layers) for h in range(a.n_heads)]
    return compare(a.scores.flatten(), b.scores.flatten(), heads, ks, n_permutations, seed,
                   rank_by(absolute, by), names or (a.metric, b.metric), {"methods": [a.method, b.method]})


def compare(
    sa: Float[Tensor, " n"], sb: Float[Tensor, " n"], heads: Sequence[Head], ks: Sequence[int],
    n_permutations: int, seed: int, by: RankBy, names: tuple[str, str], settings: dict,
) -> Overlap:
    """:func:`overlap` on two score vectors over the same ``heads``; the null permutes these heads only."""
    n = len(heads)
    if sa.shape != (n,) or sb.shape != (n,):
        raise ValueError(f"scores of shape {tuple(sa.shape)}, {tuple(sb.shape)} for {n} heads")
    kept = [k for k in ks if 0 < k <= n]
    if not kept:
        raise ValueError(f"no k in {tuple(ks)} fits {n} heads")
    if by == "magnitude":
        sa, sb = sa.abs(), sb.abs()
    ra, rb = _ranks(sa), _ranks(sb)
    ta, tb = {k: ra < k for k in kept}, {k: rb < k for k in kept}
    jac = {k: _jac(ta[k], tb[k]) for k in kept}
    xa, xb = rankdata(sa.numpy()), rankdata(sb.numpy())
    rho = _rho(xa, xb)
    rng = np.random.default_rng(seed)
    hits_j, null_sum = dict.fromkeys(kept, 0), dict.fromkeys(kept, 0.0)
    hits_r = 0
    for _ in range(n_permutations):
        perm = rng.permutation(n)
        for k in kept:
            j = _jac(ta[k], tb[k][perm])
            hits_j[k] += j >= jac[k] - 1e-12
            null_sum[k] += j
        hits_r += _rho(xa, xb[perm]) >= rho - 1e-12
    pj = {k: (1 + hits_j[k]) / (1 + n_permutations) for k in kept}
    null = {k: null_sum[k] / n_permutations if n_permutations else expected_jaccard(n, k) for k in kept}
    order_a = np.argsort(ra)
    shared = {k: [tuple(heads[i]) for i in order_a[:k] if tb[k][i]] for k in kept}
    settings = {"n_permutations": n_permutations, "seed": seed, "absolute": by == "magnitude",
                "rank_by": by, "n_heads": n, **settings}
    return Overlap(names[0], names[1], jac, pj, rho, (1 + hits_r) / (1 + n_permutations), shared, settings,
                   null, by)


def _ranks(s: Tensor) -> np.ndarray:
    """Rank of every entry (0 = largest; ties by index, as :meth:`HeadScores.ranking`)."""
    order = torch.argsort(s, descending=True, stable=True).numpy()
    out = np.empty(len(order), dtype=np.int64)
    out[order] = np.arange(len(order))
    return out


def _jac(x: np.ndarray, y: np.ndarray) -> float:
    union = np.logical_or(x, y).sum()
    return float(np.logical_and(x, y).sum() / union) if union else 1.0


def _rho(rx: np.ndarray, ry: np.ndarray) -> float:
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def top_k_agreement(
    a: HeadScores, b: HeadScores, k: int = 20, absolute: bool = False, *, by: RankBy | None = None
) -> float:
    """Spearman correlation of the two maps restricted to the union of their top-k heads."""
    heads = sorted(set(a.top_k(k, absolute, by=by)) | set(b.top_k(k, absolute, by=by)))
    idx = torch.tensor([la * a.n_heads + h for la, h in heads])
    sa = a.key(absolute, by=by).flatten()[idx]
    sb = b.key(absolute, by=by).flatten()[idx]
    return spearman(sa, sb)
