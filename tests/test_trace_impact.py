"""TRACE impact scores on the tiny model: they predict one SGD step's effect on the gold loss, zero-weight
pairs are never trained on, the weights are normalised as documented."""

from __future__ import annotations

import pytest
import torch

from interp.data.preferences import LabelledPair
from interp.data.prompts import Prompt
from interp.models import load_model
from interp.realign.config import RealignConfig
from interp.realign.gold import split_gold
from interp.realign.hybrid import item_losses, reference_for
from interp.realign.impact import gold_items, mean_loss_and_grad, normalise, score_impact
from interp.realign.params import only_these_require_grad, select_parameters
from interp.realign.pipeline import prepare
from interp.realign.plan import TrainItem
from interp.realign.policy import policy_from_dict
from interp.realign.trainer import train_realign

CFG = RealignConfig(batch_size=4, max_length=256, gold_fraction=0.3)
REFUSAL, ANSWER = "I can't help with that.", "Sure, here is how it works."
# Tightening: category "med" must now be refused; "gen" stays answered.
POLICY = policy_from_dict({"name": "tighten", "default": "comply", "rule": [{"category": "med", "require": "refuse"}]})


def _model():
    model = load_model("tiny", device="cpu")
    model.hf.to(torch.float64)
    return model


def _pairs(n: int = 24) -> list[LabelledPair]:
    """Yesterday everything was answered; half the prompts are in the category that must now be refused."""
    out = []
    for i in range(n):
        p = Prompt(f"Question {i} about {'pills' if i % 2 else 'pasta'}?", "harmless",
                   category="med" if i % 2 else "gen")
        if p.heldout:
            continue
        out.append(LabelledPair(p, f"{ANSWER} ({i})", REFUSAL, False, True))
    return out


def _gold_loss(model, items, refs, params, cfg):
    loss, _ = mean_loss_and_grad(model, items, refs, params, cfg)  # references stay those of θ_ref
    return loss


@pytest.mark.parametrize("kind", ["dpo", "npo"])
def test_one_sgd_step_moves_gold_loss_by_minus_eta_times_score(kind):
    model = _model()
    pairs = _pairs()
    split = split_gold(pairs, POLICY, CFG.gold_fraction)
    scored = [p for p in split.rest if p.prompt.category == "med"][:3]
    if kind == "dpo":
        items = [TrainItem("dpo", p.swapped(), 1.0, i) for i, p in enumerate(scored)]
    else:  # a PUNISH-style item: unlearn both responses
        items = [TrainItem("npo", p, 1.0, i) for i, p in enumerate(scored)]
    scores = score_impact(model, items, split.gold, CFG)
    k = max(range(len(items)), key=lambda j: abs(scores.raw[j]))
    params = select_parameters(model, CFG.params)
    with only_these_require_grad(model, params):
        gold = gold_items(split.gold)
        gold_refs = reference_for(model, gold, CFG)
        before = _gold_loss(model, gold, gold_refs, params, CFG)
        loss_k = item_losses(model, [items[k]], reference_for(model, [items[k]], CFG), CFG).sum()
        g_k = torch.autograd.grad(loss_k, list(params.values()))
        eta = 1e-4 / float(torch.sqrt(sum((g * g).sum() for g in g_k)))  # a step of norm 1e-4
        with torch.no_grad():
            for p, g in zip(params.values(), g_k, strict=True):
                p.sub_(eta * g)
        after = _gold_loss(model, gold, gold_refs, params, CFG)
    predicted = -eta * scores.raw[k]
    assert abs(predicted) > 1e-8
    assert abs((after - before) - predicted) <= 0.05 * abs(predicted), (after - before, predicted)


def test_weights_clamp_and_have_mean_one_over_positive_scores():
    assert normalise([2.0, -1.0, 6.0, 0.0]) == [0.5, 0.0, 1.5, 0.0]
    assert normalise([-1.0, -2.0]) == [0.0, 0.0]
    # mean 1 whatever the count: the preference terms do not shrink like 1/N against α·KL
    assert sum(normalise([1.0] * 1000)) / 1000 == 1.0


def test_scores_do_not_depend_on_the_global_seed():
    pairs = _pairs()
    split = split_gold(pairs, POLICY, CFG.gold_fraction)
    items = [TrainItem("dpo", p.swapped(), 1.0, i) for i, p in enumerate(split.rest[:2])]
    runs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        runs.append(score_impact(_model(), items, split.gold, CFG).raw)
    assert runs[0] == runs[1]


def test_zero_impact_pair_is_not_trained_on(tmp_path):
    model = _model()
    pair = _pairs()[1]
    item = TrainItem("dpo", pair.swapped(), 0.0, 0)
    before = {n: p.detach().clone() for n, p in model.named_parameters().items()}
    result = train_realign(model, [item], CFG, tmp_path / "run")
    assert result.steps == 0 and result.n_items == {"dpo": 0, "npo": 0, "kl": 0}
    for n, p in model.named_parameters().items():
        assert torch.equal(p, before[n]), n
    # and inside a batch its gradient contribution is exactly zero
    other = TrainItem("dpo", _pairs()[3].swapped(), 1.0, 1)
    params = select_parameters(model, CFG.params)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in params.values():
            p.add_(0.02 * torch.randn_like(p))  # away from θ_ref, where per-item gradients differ
    refs = reference_for(_model(), [item, other], CFG)
    with only_these_require_grad(model, params):
        losses = item_losses(model, [item, other], refs, CFG)
        g_zero = torch.autograd.grad((torch.tensor([0.0, 1.0], dtype=torch.float64) * losses).sum(),
                                     list(params.values()))
        g_other = torch.autograd.grad(item_losses(model, [other], refs[1:], CFG).sum(), list(params.values()))
    for a, b in zip(g_zero, g_other, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


def test_prepare_drops_negative_impact_pairs_from_training():
    model = _model()
    plan = prepare(model, _pairs(), POLICY, CFG)
    assert plan.impact is not None and len(plan.impact.raw) == len(plan.updates) > 0
    assert plan.triage.counts()["invert"] == len(plan.updates)
    for it, raw in zip(plan.updates, plan.impact.raw, strict=True):
        assert (it.weight == 0.0) == (raw <= 0.0)
    pos = [it.weight for it in plan.updates if it.weight > 0]
    assert pos and abs(sum(pos) / len(pos) - 1.0) < 1e-12
    assert len(plan.retain) == plan.triage.counts()["retain"]
