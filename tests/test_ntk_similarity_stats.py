"""Symmetric NTK normalisation and bootstrap class statistics, on hand-built Frobenius matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.ntk import KernelMatrix, NTKConfig, normalise, symmetric


def _frob(n: int, seed: int = 0) -> torch.Tensor:
    """A valid ||K||_F matrix: Gram norms of random positive features, with varied per-prompt scales."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 8, generator=g, dtype=torch.float64) + 0.1
    return (x @ x.T) * torch.outer(s := torch.rand(n, generator=g, dtype=torch.float64) + 0.5, s)


def _kernel(frob: torch.Tensor, labels: list[str]) -> KernelMatrix:
    return KernelMatrix(labels=labels, texts=[f"p{i}" for i in range(len(labels))],
                        similarity=normalise(frob).float(), frobenius=frob.float(), config=NTKConfig())


def _matrix(sim: np.ndarray, labels: list[str]) -> KernelMatrix:
    """A KernelMatrix whose symmetric similarity is ``sim`` (unit diagonal): F = sim itself."""
    return _kernel(torch.as_tensor(sim, dtype=torch.float64), labels)


def _structured(n: int, within: float, cross: float, noise: float, seed: int) -> tuple[np.ndarray, list[str]]:
    """Two classes of n prompts: M_ij = level(class_i, class_j) + u_i + u_j + e_ij, unit diagonal."""
    rng = np.random.default_rng(seed)
    labels = ["a"] * n + ["b"] * n
    cls = np.array([0] * n + [1] * n)
    level = np.where(cls[:, None] == cls[None, :], within, cross)
    u = rng.normal(0, noise, 2 * n)
    e = rng.normal(0, noise, (2 * n, 2 * n))
    m = level + u[:, None] + u[None, :] + (e + e.T) / 2
    np.fill_diagonal(m, 1.0)
    return m, labels


def test_symmetric_is_symmetric_with_unit_diagonal():
    c = symmetric(_frob(6))
    torch.testing.assert_close(c, c.T)
    torch.testing.assert_close(c.diagonal(), torch.ones(6, dtype=torch.float64))


def test_symmetric_invariant_to_one_prompts_scale_paper_is_not():
    frob = _frob(8, seed=1)
    d = torch.ones(8, dtype=torch.float64)
    d[2] = 30 ** 0.5  # prompt 2's self-kernel norm F[2, 2] grows 30x, its cross norms sqrt(30)x
    scaled = frob * torch.outer(d, d)
    assert scaled[2, 2] / frob[2, 2] == pytest.approx(30.0)
    torch.testing.assert_close(symmetric(scaled), symmetric(frob))
    labels = ["a"] * 4 + ["b"] * 4
    before = _kernel(frob, labels).class_stats("paper", n_boot=10).pairs
    after = _kernel(scaled, labels).class_stats("paper", n_boot=10).pairs
    # the paper's S[x', 2] is multiplied by sqrt(30): one loud prompt moves the whole (b, a) mean
    assert after[("b", "a")].mean > 1.5 * before[("b", "a")].mean
    sym_before = _kernel(frob, labels).class_stats("symmetric", n_boot=10).pairs
    sym_after = _kernel(scaled, labels).class_stats("symmetric", n_boot=10).pairs
    for key in sym_before:
        assert sym_after[key].mean == pytest.approx(sym_before[key].mean)


def test_symmetric_zero_diagonal_names_prompt():
    frob = _frob(4)
    frob[3, 3] = 0.0
    with pytest.raises(ValueError, match=r"\[3\]"):
        symmetric(frob)


def test_paper_stats_match_class_means():
    km = _kernel(_frob(8, seed=2), ["a"] * 4 + ["b"] * 4)
    stats = km.class_stats("paper", n_boot=50)
    for key, value in km.class_means().items():
        assert stats.pairs[key].mean == pytest.approx(value, rel=1e-6)


def test_within_class_mean_excludes_diagonal_and_self_pairs():
    m = np.full((6, 6), 0.2)
    np.fill_diagonal(m, 1.0)
    stats = _matrix(m, ["a"] * 3 + ["b"] * 3).class_stats(n_boot=200)
    within = stats.pairs[("a", "a")]
    # a self pair (1.0) anywhere, even a prompt drawn twice in a resample, would lift these above 0.2
    assert within.mean == pytest.approx(0.2)
    assert within.low == pytest.approx(0.2) and within.high == pytest.approx(0.2)
    assert within.n == (3, 3)


def test_ci_contains_true_mean_and_shrinks_with_more_prompts():
    widths = []
    for n in (16, 64):  # one fixed draw each; over many draws the 95% interval covers 0.5 ~95% of the time
        m, labels = _structured(n, within=0.5, cross=0.5, noise=0.05, seed=n + 1)
        pair = _matrix(m, labels).class_stats(n_boot=1000).pairs[("a", "b")]
        assert pair.low < 0.5 < pair.high
        widths.append(pair.high - pair.low)
    assert widths[1] < 0.75 * widths[0]


def test_block_structure_ratio_below_one_unstructured_contains_one():
    m, labels = _structured(16, within=0.6, cross=0.4, noise=0.05, seed=3)
    ratio = _matrix(m, labels).class_stats(n_boot=1000).cross_within_ratio("a", "b")
    assert ratio.mean < 1 and ratio.high < 1
    assert ratio.mean == pytest.approx(0.4 / 0.6, abs=0.05)
    m, labels = _structured(16, within=0.5, cross=0.5, noise=0.05, seed=4)
    flat = _matrix(m, labels).class_stats(n_boot=1000).cross_within_ratio("a", "b")
    assert flat.low < 1 < flat.high


def test_seeded_determinism():
    m, labels = _structured(16, within=0.6, cross=0.4, noise=0.05, seed=5)
    km = _matrix(m, labels)
    one, two = km.class_stats(seed=7), km.class_stats(seed=7)
    assert one.pairs == two.pairs
    assert one.cross_within_ratio("a", "b") == two.cross_within_ratio("a", "b")
    assert km.class_stats(seed=8).pairs[("a", "b")] != one.pairs[("a", "b")]


def test_ratio_needs_within_class_pairs():
    km = _kernel(_frob(3), ["a", "a", "b"])
    stats = km.class_stats(n_boot=10)
    assert ("b", "b") not in stats.pairs
    with pytest.raises(ValueError, match="within-class"):
        stats.cross_within_ratio("a", "b")


def test_save_load_round_trip_keeps_symmetric(tmp_path):
    km = _kernel(_frob(6, seed=6), ["a"] * 3 + ["b"] * 3)
    back = KernelMatrix.load(km.save(tmp_path / "k"))
    torch.testing.assert_close(back.symmetric, km.symmetric)
    torch.testing.assert_close(back.similarity, km.similarity)
    assert back.class_stats(n_boot=100).pairs == km.class_stats(n_boot=100).pairs
