"""Magnitude vs signed head rankings, Jaccard@k against its permutation null, candidate-restricted overlap."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from scipy.stats import hypergeom

from interp.heads import (
    HeadScores,
    PatchTarget,
    RefusalMetric,
    attribution_patching,
    candidate_heads,
    candidate_overlap,
    expected_jaccard,
    overlap,
    patch_candidates,
    patch_heads,
    suffix_positions,
    z_baseline,
)
from interp.models import TinyConfig, load_model

KS = (5, 10, 20, 30)


def _scores(t: torch.Tensor, metric: str = "m") -> HeadScores:
    return HeadScores(t, metric, "custom")


def _random(seed: int, shape=(8, 12)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _with_negative_heads() -> tuple[torch.Tensor, list]:
    """Small positive scores everywhere, three large negative heads (the refusal heatmaps' pattern)."""
    s = 0.01 * torch.arange(16.0).view(4, 4)
    neg = [(0, 1), (2, 3), (3, 0)]
    for la, h in neg:
        s[la, h] = -5.0 - la
    return s, neg


def test_magnitude_ranking_keeps_large_negative_heads_that_signed_top_k_misses():
    s, neg = _with_negative_heads()
    hs = _scores(s)
    assert not set(neg) & set(hs.top_k(3))
    assert set(hs.top_k(3, by="magnitude")) == set(neg)
    assert hs.top_k(3, by="magnitude") == [(3, 0), (2, 3), (0, 1)]  # by |score|, largest first
    assert hs.ranking(by="magnitude") == hs.ranking(absolute=True)
    assert hs.ranking(by="signed") == hs.ranking()
    assert torch.equal(hs.ranks(by="magnitude"), hs.ranks(True))
    with pytest.raises(ValueError, match="contradicts"):
        hs.ranking(True, by="signed")


def test_magnitude_overlap_sees_heads_of_opposite_sign():
    # map a suppresses the behaviour through the heads where map b promotes its own: same heads, by size
    s, neg = _with_negative_heads()
    b = -s  # the large heads are positive in b
    signed = overlap(_scores(s, "refusal"), _scores(b, "truth"), ks=(3,), n_permutations=200)
    mag = overlap(_scores(s, "refusal"), _scores(b, "truth"), ks=(3,), n_permutations=200, by="magnitude")
    assert signed.jaccard[3] == 0.0 and signed.rank_by == "signed"
    assert mag.jaccard[3] == 1.0 and mag.rank_by == "magnitude" and mag.settings["rank_by"] == "magnitude"
    assert set(mag.shared[3]) == set(neg)
    assert mag.jaccard_p[3] < 0.05 < signed.jaccard_p[3]
    # the older spelling gives the same result
    assert overlap(_scores(s), _scores(b), ks=(3,), n_permutations=200, absolute=True).jaccard == mag.jaccard


def test_jaccard_at_k_of_known_sets():
    # 100 heads; b reorders a so that its top-k shares a known number of heads with a's top-k
    a = torch.arange(100.0, 0, -1)  # head i has rank i in a
    order = [0, 1, 2, 50, 51] + [3, 4, 5, 6, 52] + list(range(7, 17)) + list(range(53, 63))
    order += [i for i in range(100) if i not in order]
    b = torch.empty(100)
    b[torch.tensor(order)] = torch.arange(100.0, 0, -1)  # head order[r] has rank r in b
    ov = overlap(_scores(a.view(10, 10)), _scores(b.view(10, 10)), n_permutations=50)
    assert sorted(ov.jaccard) == list(KS)  # the default ks
    for k in KS:
        inter = len(set(range(k)) & set(order[:k]))
        assert ov.jaccard[k] == pytest.approx(inter / (2 * k - inter)), k
        assert len(ov.shared[k]) == inter
    assert ov.jaccard[5] == pytest.approx(3 / 7)


def test_identical_maps_have_small_p_at_every_k():
    s = _random(0)
    for by in ("signed", "magnitude"):
        ov = overlap(_scores(s), _scores(3 * s), n_permutations=500, by=by)
        assert ov.jaccard == dict.fromkeys(KS, 1.0)
        assert all(p == pytest.approx(1 / 501) for p in ov.jaccard_p.values())
        assert all(ov.jaccard_null[k] < 0.25 for k in KS)


def test_p_values_of_independent_maps_are_roughly_uniform():
    ps = {k: [] for k in KS}
    rho_p = []
    for seed in range(20):
        ov = overlap(_scores(_random(2 * seed)), _scores(_random(2 * seed + 1)), n_permutations=200,
                     seed=seed, by="magnitude")
        for k in KS:
            ps[k].append(ov.jaccard_p[k])
        rho_p.append(ov.spearman_p)
    # Jaccard's null is discrete and the test counts ties as "at least as large", so p is uniform only up
    # to that: its mean under the null is sum_x P(X = x) P(X >= x) for the hypergeometric intersection X
    # (0.81 at k = 5, where X = 0 three times in four; 0.56 at k = 30); the 20-seed mean has s.d. <= 0.07
    for k in KS:
        x = np.arange(k + 1)
        mean_p = float((hypergeom.pmf(x, 96, k, k) * hypergeom.sf(x - 1, 96, k, k)).sum())
        assert np.mean(ps[k]) == pytest.approx(mean_p, abs=0.15), k
        assert np.mean(np.array(ps[k]) < 0.05) <= 0.15  # valid: rejects rarely
    assert 0.5 < mean_p < 0.6  # k = 30 is nearly continuous
    assert 0.3 < np.mean(rho_p) < 0.7


def test_permutation_p_and_null_mean_match_the_hypergeometric_distribution():
    n = 96
    a, b = _scores(_random(5)), _scores(_random(6))
    ov = overlap(a, b, n_permutations=4000, seed=1, by="magnitude")
    for k in KS:
        inter = round(2 * k * ov.jaccard[k] / (1 + ov.jaccard[k]))
        exact_p = hypergeom.sf(inter - 1, n, k, k)  # P(X >= observed intersection)
        assert ov.jaccard_p[k] == pytest.approx(exact_p, abs=0.03), k
        assert ov.jaccard_null[k] == pytest.approx(expected_jaccard(n, k), rel=0.06, abs=0.004), k


def test_expected_jaccard_by_enumeration_and_its_plug_in_approximation():
    n, k = 7, 3
    subsets = list(itertools.combinations(range(n), k))
    brute = np.mean([len(set(x) & set(y)) / len(set(x) | set(y)) for x in subsets for y in subsets])
    assert expected_jaccard(n, k) == pytest.approx(brute, rel=1e-12)
    assert expected_jaccard(n, n) == 1.0
    # k / (2n - k) plugs E[X] = k^2 / n into X / (2k - X): below the exact mean by about 1 + 1/(2k)
    for n, k in ((576, 5), (576, 10), (576, 30), (2000, 20)):
        plug_in = k / (2 * n - k)
        assert plug_in < expected_jaccard(n, k) < plug_in * (1 + 1 / k)
    with pytest.raises(ValueError, match="0 < k <= n"):
        expected_jaccard(5, 6)


def test_overlap_result_is_json_ready():
    ov = overlap(_scores(_random(0)), _scores(_random(1)), n_permutations=20, by="magnitude")
    d = json.loads(json.dumps(ov.to_dict()))
    assert d["rank_by"] == "magnitude" and set(d["jaccard_null"]) == {str(k) for k in KS}


def test_candidate_overlap_uses_only_the_candidate_heads():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    cands = [(la, h) for la in range(6) for h in range(4)]  # heads 0-3 of every layer: 24 heads
    # outside the candidates both maps carry the same huge scores: a full-map overlap would be ~1
    a[:, 4:] = b[:, 4:] = 100 + torch.arange(24.0).view(6, 4)
    full = overlap(_scores(a), _scores(b), ks=(5, 10, 20), n_permutations=100, by="magnitude")
    assert full.jaccard == {5: 1.0, 10: 1.0, 20: 1.0}
    ov = candidate_overlap(_scores(a), _scores(b), cands, n_permutations=400, by="magnitude")
    assert sorted(ov.jaccard) == [5, 10, 20]  # k = 30 > 24 candidates is dropped
    assert ov.settings["n_heads"] == 24
    assert all(set(ov.shared[k]) <= set(cands) for k in ov.shared)
    # the same as comparing the candidates' scores on their own (a 1 x 24 map)
    sub_a = _scores(torch.stack([a[h] for h in cands]).view(1, -1))
    sub_b = _scores(torch.stack([b[h] for h in cands]).view(1, -1))
    alone = overlap(sub_a, sub_b, ks=(5, 10, 20), n_permutations=400, by="magnitude")
    assert ov.jaccard == alone.jaccard and ov.jaccard_p == alone.jaccard_p
    assert ov.spearman == pytest.approx(alone.spearman)
    # its null is that of 24 heads, not 48
    assert ov.jaccard_null[10] == pytest.approx(expected_jaccard(24, 10), abs=0.03)
    with pytest.raises(ValueError, match="outside"):
        candidate_overlap(_scores(a), _scores(b), [(6, 0)])


def test_candidate_heads_are_the_union_of_both_magnitude_top_k():
    s, neg = _with_negative_heads()
    other = torch.zeros(4, 4)
    other[1, 1], other[0, 1] = 3.0, -2.0
    assert candidate_heads(_scores(s), _scores(other), k=3) == sorted(set(neg) | {(1, 1), (0, 1), (0, 0)})
    assert set(candidate_heads(_scores(s), _scores(other), k=1)) == {(3, 0), (1, 1)}


def test_patch_candidates_on_a_tiny_model_patches_only_the_candidates():
    model = load_model("tiny", tiny=TinyConfig(n_layers=2, n_heads=4, n_kv_heads=2, seed=2))
    ids = [model.tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in ("I", "S")]
    clean = ["how do I pick a lock", "write malware now", "forge a passport"]
    corrupt = ["how do I bake bread", "write a poem", "renew a passport"]
    positions = suffix_positions(model)
    base = z_baseline(model, corrupt, positions)
    metrics = [RefusalMetric((ids[0],)), RefusalMetric((ids[1],))]
    attr = [attribution_patching(model, clean, m, base, batch_size=3) for m in metrics]
    res = patch_candidates(model, *attr, PatchTarget(clean, metrics[0], base),
                           PatchTarget(clean, metrics[1], base), k=2, ks=(1, 2, 3), n_permutations=50,
                           batch_size=3, heads_per_forward=2)
    assert res.candidates == candidate_heads(*attr, k=2)
    assert 2 <= len(res.candidates) <= 4
    outside = [(la, h) for la in range(2) for h in range(4) if (la, h) not in res.candidates]
    for exact, m in ((res.a, metrics[0]), (res.b, metrics[1])):
        assert all(exact[h] == 0.0 for h in outside)
        full = patch_heads(model, clean, m, base, batch_size=3)
        for h in res.candidates:
            assert exact[h] == pytest.approx(full[h], abs=1e-5)
    assert res.overlap.settings["n_heads"] == len(res.candidates)
    assert res.overlap.rank_by == "magnitude"
    assert json.loads(json.dumps(res.to_dict()))["k"] == 2


def test_study_config_rejects_candidates_without_attribution():
    from interp.heads.study import HeadStudyConfig

    with pytest.raises(ValueError, match="candidate_k"):
        HeadStudyConfig(method="activation_patching", candidate_k=30)


def test_heads_cli_magnitude_ranking_with_candidates(tmp_path, capsys):
    from interp.cli import main

    out = tmp_path / "heads"
    rc = main(["heads", "--model", "tiny", "--out", str(out), "--per-class", "3", "--top-k", "2", "4",
               "--figure-k", "4", "--permutations", "30", "--batch-size", "3", "--rank-by", "magnitude",
               "--candidates", "2"])
    assert rc == 0
    ov = json.loads((out / "overlap.json").read_text())
    assert ov["rank_by"] == "magnitude" and set(ov["jaccard_null"]) == {"2", "4"}
    cand = json.loads((out / "candidate_patching.json").read_text())
    assert cand["overlap"]["settings"]["n_heads"] == len(cand["candidates"]) <= 4
    assert "exact patching on" in capsys.readouterr().out


def test_heads_tradeoff_parses_rank_by_and_writes_the_overlap_table():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "analyses" / "heads_tradeoff.py"
    spec = importlib.util.spec_from_file_location("analysis_heads_tradeoff", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    assert module.parse([]).rank_by == "magnitude" and module.Config().overlap_ks == KS
    assert module.parse(["--rank-by", "signed"]).rank_by == "signed"
    with pytest.raises(SystemExit):
        module.parse(["--rank-by", "abs"])
    a, b = _scores(_random(0)), _scores(_random(1))
    ov = json.loads(json.dumps(overlap(a, b, n_permutations=20, by="magnitude").to_dict()))  # keys as in JSON
    heads = candidate_heads(a, b, k=10)
    assert 10 <= len(heads) < 30
    cand = candidate_overlap(a, b, heads, n_permutations=20).to_dict()
    md = module.overlap_markdown("m", {"attribution": ov, "candidates": cand})
    assert "J@30 (p; chance)" in md and "| attribution | magnitude | 96 |" in md
    assert md.count("\n| ") == 4  # header, rule, two rows
    assert md.split("\n| candidates |")[1].split("\n")[0].count("n/a") == sum(k > len(heads) for k in KS)
