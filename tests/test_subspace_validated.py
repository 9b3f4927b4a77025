"""A subspace export records the ablation check of exactly its features, with random-feature controls."""

from __future__ import annotations

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from interp.hooks import Site
from interp.models import load_model
from interp.sae.attribution import MetricBatch, feature_scores, metric_value, validate_features
from interp.sae.site import ActSite
from interp.subspace import export_subspace, load_subspace, subspace_from_sae

SITE = ActSite(Site("z", 1), heads=(0, 2))
TOKEN, PLANTED, D_SAE = 100, 3, 8


@pytest.fixture(scope="module")
def setup():
    model = load_model("tiny")
    enc = model.encode_chat(["tell me a story", "what is two plus two", "hello"])

    def fn(logits, enc):
        return logits[:, -1, TOKEN].sum()

    grads = {}

    def grab(act, *, hook):
        act.register_hook(lambda g: grads.update(g=g))
        return act

    with model.hooks(fwd=[(SITE.site, grab)]):
        fn(model.logits(enc), enc).backward()
    model.hf.zero_grad(set_to_none=True)
    g = SITE.extract(grads["g"]).sum((0, 1)).detach()
    d = SITE.width(model.spec)
    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=D_SAE, apply_b_dec_to_input=False))
    w = torch.randn(D_SAE, d, generator=torch.Generator().manual_seed(0))
    w[PLANTED] = g  # the feature along the metric's gradient moves the metric most when ablated
    w = w / w.norm(dim=1, keepdim=True)
    with torch.no_grad():
        sae.W_dec.copy_(w)
        sae.W_enc.copy_(w.T * 0.1)
        sae.b_enc.fill_(5.0)
        sae.b_dec.zero_()
    return model, sae, [MetricBatch(enc, fn)]


def test_validation_measures_the_set_each_feature_and_random_controls(setup):
    model, sae, batches = setup
    scores = feature_scores(model, sae, SITE, batches)
    val = validate_features(model, sae, SITE, batches, [PLANTED], scores, n_random=5)
    base = metric_value(model, sae, SITE, batches)
    assert val.base == pytest.approx(base)
    assert val.set_delta == pytest.approx(metric_value(model, sae, SITE, batches, [PLANTED]) - base)
    assert val.feature_deltas == (val.set_delta,)
    assert len(val.random_deltas) == 5 and val.passed
    assert abs(val.set_delta) > max(abs(d) for d in val.random_deltas)
    two = validate_features(model, sae, SITE, batches, [PLANTED, 0], scores, n_random=3)
    assert len(two.feature_deltas) == 2 and len(two.random_deltas) == 3
    with pytest.raises(ValueError, match="distinct"):
        validate_features(model, sae, SITE, batches, [1, 1])


def test_export_records_which_features_and_their_effects(setup, tmp_path):
    model, sae, batches = setup
    scores = feature_scores(model, sae, SITE, batches)
    val = validate_features(model, sae, SITE, batches, [PLANTED, 5], scores, n_random=4, seed=1)
    sub = subspace_from_sae(sae, SITE, [PLANTED, 5], validation=val, model_shape=model.spec.to_dict())
    back = load_subspace(export_subspace(sub, tmp_path), model)
    rec = back.provenance["validation"]
    assert back.provenance["refusal_features"] == [PLANTED, 5] and rec["features"] == [PLANTED, 5]
    assert rec["set_delta"] == pytest.approx(val.set_delta)
    assert set(rec["feature_deltas"]) == {str(PLANTED), "5"} and len(rec["random_deltas"]) == 4
    assert back.provenance["validated"] == val.passed
    with pytest.raises(ValueError, match="validate exactly"):
        subspace_from_sae(sae, SITE, [PLANTED], validation=val)
