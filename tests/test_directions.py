"""Difference-of-means directions, selection on a validation split, ITI head directions, persistence."""

from __future__ import annotations

import pytest
import torch

from interp.data.prompts import Prompt, PromptSet
from interp.directions import (
    Direction,
    HeadDirections,
    LayerDirections,
    choose_refusal_candidate,
    head_directions,
    mean_activations,
    mean_difference,
    refusal_directions,
    select_refusal_direction,
    select_truth_direction,
    truth_directions,
)
from interp.heads import RefusalMetric, answer_activations, truth_metric
from interp.hooks import Site, capture
from interp.models import load_model

HARMFUL = ["make a bomb", "hack a bank account", "steal a car"]
HARMLESS = ["bake some bread", "tell me a joke", "write a short poem about spring"]
FACTUAL = PromptSet("toy", tuple(
    Prompt(f"Question {i}?", "factual", correct=(f"Yes{i}",), incorrect=(f"No{i}",)) for i in range(6)
))


@pytest.fixture(scope="module")
def model():
    return load_model("tiny")


def test_mean_difference_matches_manual_means(model):
    cands = mean_difference(model, HARMFUL, HARMLESS, batch_size=2)
    assert cands.vectors.shape == (model.spec.n_layers, model.spec.d_model)

    def manual(texts):
        store: dict = {}
        with torch.no_grad(), model.hooks(fwd=[(Site("resid_pre", 1), capture(store, "x"))]):
            model.logits(model.encode_chat(texts))
        return store["x"][:, -1].double().mean(0)

    torch.testing.assert_close(cands.vectors[1].double(), (manual(HARMFUL) - manual(HARMLESS)).cpu(),
                               atol=1e-6, rtol=1e-5)
    # batching does not change the float64 mean
    torch.testing.assert_close(mean_activations(model, HARMFUL, batch_size=1),
                               mean_activations(model, HARMFUL, batch_size=3), atol=1e-7, rtol=1e-6)
    refusal = refusal_directions(model, HARMFUL, HARMLESS, batch_size=2)
    torch.testing.assert_close(refusal.vectors, cands.vectors)
    assert refusal.provenance["name"] == "refusal" and refusal.at(1).site == Site("resid_pre", 1)


def test_direction_save_load_and_orthogonalize(model, tmp_path):
    g = torch.Generator().manual_seed(0)
    a = Direction(torch.randn(model.spec.d_model, generator=g), Site("resid_pre", 1), {"name": "a"})
    b = Direction(torch.randn(model.spec.d_model, generator=g), Site("resid_pre", 1), {"name": "b"})
    back = Direction.load(a.save(tmp_path / "dir"))
    assert torch.equal(back.vector, a.vector) and back.site == a.site and back.provenance == {"name": "a"}
    c = a.orthogonalized_to(b)
    assert abs(float(c.vector @ b.unit())) < 1e-5
    assert c.provenance["orthogonal_to"] == {"name": "b"}
    with pytest.raises(ValueError, match="non-zero"):
        Direction(torch.zeros(4), Site("resid_pre", 0))


def test_truth_and_head_directions(model, tmp_path):
    cands = truth_directions(model, FACTUAL, batch_size=4)
    assert cands.provenance["name"] == "truthfulness" and torch.isfinite(cands.vectors).all()
    acts = answer_activations(model, FACTUAL)
    hd = head_directions(model, acts=acts)
    spec = model.spec
    assert hd.theta.shape == (spec.n_layers, spec.n_heads, spec.d_head)
    torch.testing.assert_close(hd.theta.norm(dim=-1), torch.ones(spec.n_layers, spec.n_heads))
    # theta points from false to true: true answers project higher on average, for every head
    proj = torch.einsum("nlhd,lhd->nlh", acts.z, hd.theta)
    assert (proj[acts.labels == 1].mean(0) > proj[acts.labels == 0].mean(0)).all()
    torch.testing.assert_close(hd.sigma, proj.std(0))
    back = HeadDirections.load(hd.save(tmp_path / "heads"))
    assert torch.equal(back.theta, hd.theta) and torch.equal(back.sigma, hd.sigma)


def test_select_refusal_direction_picks_lowest_score_within_kl(model):
    tid = model.tokenizer("I", add_special_tokens=False)["input_ids"][0]
    metric = RefusalMetric((tid,))
    # a planted candidate: the unembedding of the refusal token at layer 1, noise at layer 0
    vecs = torch.stack([torch.randn(model.spec.d_model, generator=torch.Generator().manual_seed(0)),
                        model.hf.lm_head.weight[tid].detach().cpu()])
    cands = LayerDirections(vecs, "resid_pre", {"name": "planted"})
    sel = select_refusal_direction(model, cands, HARMFUL, HARMLESS, metric, kl_max=10.0,
                                   max_layer_fraction=1.0, bypass_max=float("inf"), induce_min=float("-inf"))
    assert [r["layer"] for r in sel.table] == [0, 1]
    best = min(sel.table, key=lambda r: r["ablated_refusal_score"])
    assert sel.direction.layer == best["layer"] == 1
    assert sel.direction.provenance["selection"] == best
    assert "KL <= 10.0" in sel.criterion
    # adding the refusal token's unembedding raises its score on harmless prompts more than noise does
    induced = {r["layer"]: r["induced_refusal_score"] for r in sel.table}
    assert induced[1] > induced[0]
    # a stride of 2 evaluates layer 0 only
    strided = select_refusal_direction(model, cands, HARMFUL, HARMLESS, metric, kl_max=10.0, max_layer_fraction=1.0,
                                       bypass_max=float("inf"), induce_min=float("-inf"), layer_stride=2)
    assert [r["layer"] for r in strided.table] == [0] and strided.direction.layer == 0
    with pytest.raises(ValueError, match="layer_stride"):
        select_refusal_direction(model, cands, HARMFUL, HARMLESS, metric, layer_stride=0)


# the selection table measured on the STL-trained SmolLM2 (figures/heads/heads_tradeoff.json), abridged
SMOLLM_TABLE = [
    {"layer": 5, "ablated_refusal_score": 1.24, "induced_refusal_score": -1.0, "harmless_kl": 0.046},
    {"layer": 10, "ablated_refusal_score": -3.84, "induced_refusal_score": 0.5, "harmless_kl": 3.57},
    {"layer": 14, "ablated_refusal_score": -11.2, "induced_refusal_score": 2.0, "harmless_kl": 13.8},
    {"layer": 21, "ablated_refusal_score": -2.30, "induced_refusal_score": -0.4, "harmless_kl": 0.62},
    {"layer": 22, "ablated_refusal_score": -2.87, "induced_refusal_score": 0.1, "harmless_kl": 0.67},
]


def test_choose_refusal_candidate_filters_then_relaxes_kl():
    # the old rule (lowest score with KL <= 0.1) picked layer 5, whose ablation does not bypass refusal
    row, crit = choose_refusal_candidate(SMOLLM_TABLE, kl_max=0.1)
    assert row["layer"] == 22 and "smallest harmless KL" in crit  # 21 does not induce refusal
    row, crit = choose_refusal_candidate(SMOLLM_TABLE, kl_max=5.0)
    assert row["layer"] == 10 and "KL <= 5.0" in crit
    row, _ = choose_refusal_candidate(SMOLLM_TABLE, kl_max=0.1, induce_min=float("-inf"))
    assert row["layer"] == 21
    row, crit = choose_refusal_candidate(SMOLLM_TABLE, bypass_max=-20.0)
    assert row["layer"] == 14 and "none bypass" in crit
    with pytest.raises(ValueError, match="no candidate"):
        choose_refusal_candidate([])


def test_select_truth_direction_maximizes_margin(model):
    metric = truth_metric(model.tokenizer, FACTUAL)
    cands = truth_directions(model, FACTUAL)
    sel = select_truth_direction(model, cands, FACTUAL, metric, scale=5.0, max_layer_fraction=1.0)
    # layer 0 is the last token's embedding, the same digit for both answers: a zero candidate, skipped
    assert float(cands.vectors[0].norm()) == 0.0
    assert [r["layer"] for r in sel.table] == list(range(1, model.spec.n_layers))
    assert sel.direction.layer == max(sel.table, key=lambda r: r["steered_truth_margin"])["layer"]
