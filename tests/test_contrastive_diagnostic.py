"""The contrastive stage's diagnostic on tiny models: ranges, a planted separation, chance, no side effects."""

from __future__ import annotations

import math

import pytest
import torch

from interp.errors import EmptyPromptClassError
from interp.models import TinyConfig, load_model
from interp.train.contrastive_diagnostic import (
    SeparationStats,
    cosine_summary,
    probe_auc,
    separation,
    stratified_folds,
)

GENERAL = ["The quick brown fox jumps over the lazy dog.", "Water boils at one hundred degrees Celsius."]
A = ["a" * n for n in range(3, 11)]
Z = ["z" * n for n in range(3, 11)]
MIXED = ["tell me a joke", "how do I bake bread", "what is a zombie process", "name three rivers",
         "explain gravity", "write a haiku", "how to pick a lock", "best way to learn python"]


@pytest.fixture(scope="module")
def model():
    return load_model("tiny", tiny=TinyConfig(n_layers=3, seed=3), device="cpu")


def _check_ranges(s: SeparationStats) -> None:
    for name in ("within_cos", "within_cos_a", "within_cos_b", "cross_cos", "cos_gap", "probe_auc",
                 "refusal_prob_a", "refusal_prob_b", "lm_loss"):
        assert math.isfinite(getattr(s, name)), name
    for name in ("within_cos", "within_cos_a", "within_cos_b", "cross_cos"):
        assert -1 - 1e-9 <= getattr(s, name) <= 1 + 1e-9, name
    assert 0 <= s.probe_auc <= 1 and 0 <= s.refusal_prob_a <= 1 and 0 <= s.refusal_prob_b <= 1
    assert s.lm_loss > 0


@pytest.mark.parametrize("pooling", ["user", "mean", "last"])
def test_stats_are_finite_in_range_and_carry_provenance(model, pooling):
    s = separation(model, MIXED[:4], MIXED[4:], GENERAL, layer=1, pooling=pooling, folds=2)
    _check_ranges(s)
    assert s.provenance["pooling"] == pooling and s.provenance["layer"] == 1
    assert s.provenance["n_a"] == 4 and s.provenance["model"] == model.name
    # a random model over a 259-token vocabulary: the loss is near log(259) nats per token
    assert abs(s.lm_loss - math.log(len(model.tokenizer))) < 1.0


def test_separable_classes_give_auc_one_and_a_positive_gap(model):
    s = separation(model, A, Z, GENERAL, layer=1, pooling="user", folds=4)
    _check_ranges(s)
    assert s.probe_auc > 0.95
    assert s.cos_gap > 0.05 and s.within_cos > s.cross_cos


def test_identical_classes_give_chance(model):
    s = separation(model, MIXED, MIXED, GENERAL, layer=1, pooling="user", folds=4, batch_size=64)
    assert s.probe_auc == pytest.approx(0.5, abs=1e-9)
    assert s.cos_gap <= 0  # pairs of the same prompt are cross-class pairs only
    assert s.refusal_prob_a == pytest.approx(s.refusal_prob_b)


def test_the_model_is_left_unchanged(model):
    before = {k: v.clone() for k, v in model.hf.state_dict().items()}
    enc = model.encode_chat(MIXED[:3])
    with torch.no_grad():
        logits = model.logits(enc)
    model.hf.train()
    separation(model, A[:4], Z[:4], GENERAL, layer=2, folds=2)
    assert model.hf.training  # mode restored
    model.hf.eval()
    after = model.hf.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.hf.parameters())
    with torch.no_grad():  # the full stack runs again (the truncation was undone), giving the same logits
        torch.testing.assert_close(model.logits(enc), logits)


def test_cosine_summary_on_hand_set_vectors():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0]])
    c = cosine_summary(a, b)
    assert c["within_cos_a"] == pytest.approx(1) and c["within_cos_b"] == pytest.approx(1)
    assert c["cross_cos"] == pytest.approx(0) and c["cos_gap"] == pytest.approx(1)


def test_probe_auc_on_planted_features_and_folds_are_stratified():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    x[20:, 0] += 4.0
    y = torch.tensor([0] * 20 + [1] * 20)
    assert probe_auc(x, y, folds=5) > 0.95
    folds = stratified_folds(20, 20, 5, seed=0)
    assert all(int((folds[:20] == k).sum()) == 4 and int((folds[20:] == k).sum()) == 4 for k in range(5))
    with pytest.raises(EmptyPromptClassError):
        stratified_folds(3, 20, 5, seed=0)
