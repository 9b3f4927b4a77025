"""A subspace export records the ablation check of exactly its features, with random-feature controls."""

from __future__ import annotations

import pytest
from helpers import planted_sae_setup

from interp.hooks import Site
from interp.sae.attribution import feature_scores, metric_value, validate_features
from interp.sae.site import ActSite
from interp.subspace import export_subspace, load_subspace, subspace_from_sae

SITE = ActSite(Site("z", 1), heads=(0, 2))
TOKEN, PLANTED, D_SAE = 100, 3, 8


@pytest.fixture(scope="module")
def setup():
    return planted_sae_setup(SITE, TOKEN, PLANTED, D_SAE)


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
