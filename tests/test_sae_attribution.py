"""Feature attribution: a planted feature ranks first, ablation confirms it, classes follow thresholds."""

from __future__ import annotations

import pytest
import torch
from helpers import planted_sae_setup

from interp.data.prompts import Prompt
from interp.errors import NonFiniteError
from interp.hooks import Site
from interp.sae.attribution import (
    ClassifyConfig,
    MetricBatch,
    ablation_check,
    classify_features,
    feature_scores,
    metric_value,
    truthfulness_batches,
)
from interp.sae.site import ActSite

SITE = ActSite(Site("z", 1), heads=(0, 2))
TOKEN = 100
PLANTED = 3


@pytest.fixture(scope="module")
def setup():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield planted_sae_setup(SITE, TOKEN, PLANTED)
    torch.set_num_threads(threads)


def test_planted_feature_ranks_first_and_ablation_confirms(setup):
    model, sae, batches = setup
    scores = feature_scores(model, sae, SITE, batches)
    assert int(scores.abs().argmax()) == PLANTED
    assert scores[PLANTED].abs() > 2 * scores[[i for i in range(8) if i != PLANTED]].abs().max()
    # the spliced forward with the error term is the clean forward
    with torch.no_grad():
        clean = float(batches[0].fn(model.logits(batches[0].enc), batches[0].enc))
    assert metric_value(model, sae, SITE, batches) == pytest.approx(clean, rel=1e-4, abs=1e-4)
    check = ablation_check(model, sae, SITE, batches, scores, k=1, n_random=4)
    assert check.top_features == (PLANTED,) and check.passed
    # first-order estimate has the right sign and rough size
    assert check.top_delta * check.predicted_delta > 0
    # no parameter gradients were left on the model
    assert all(p.grad is None for p in model.hf.parameters())


def test_classification_thresholds():
    r = torch.tensor([1.0, 0.05, 0.5, 0.15, 0.0])
    t = torch.tensor([0.0, -2.0, -1.0, 0.1, 0.01])
    assert classify_features(r, t, ClassifyConfig(hi=0.2, lo=0.1)) == [
        "refusal", "hallucination", "shared", "neither", "neither"]
    with pytest.raises(ValueError):
        ClassifyConfig(hi=0.1, lo=0.2)


def test_truthfulness_metric_is_logprob_margin(setup):
    model, sae, _ = setup
    p = Prompt("Capital of France?", "factual", correct=("Paris",), incorrect=("Lyon",))
    (bc, bi) = truthfulness_batches(model, [p], mode="full")
    with torch.no_grad():
        margin = sum(b.weight * float(b.fn(model.logits(b.enc), b.enc)) for b in (bc, bi))
        # reference: score each answer token by token
        def lp(answer):
            ids = model.tokenizer(model.chat(p.text) + answer, add_special_tokens=False)["input_ids"]
            n = len(model.tokenizer(answer, add_special_tokens=False)["input_ids"])
            logits = model.hf(torch.tensor([ids], device=model.device)).logits[0].log_softmax(-1)
            return sum(float(logits[i - 1, ids[i]]) for i in range(len(ids) - n, len(ids)))
        assert margin == pytest.approx(lp("Paris") - lp("Lyon"), abs=1e-3)
    first = truthfulness_batches(model, [p], mode="first")
    assert len(first) == 1


def test_non_finite_scores_raise(setup):
    model, sae, batches = setup
    nan_metric = MetricBatch(batches[0].enc, lambda logits, enc: logits[:, -1, TOKEN].sum() * float("nan"))
    with pytest.raises(NonFiniteError, match="feature"):
        feature_scores(model, sae, SITE, [nan_metric])
