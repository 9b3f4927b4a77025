"""TRACE losses on the tiny model: log 2 and zero KL at θ_ref, DPO/IPO equal trl's formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from interp.data.preferences import LabelledPair
from interp.data.prompts import Prompt
from interp.models import load_model
from interp.realign.config import RealignConfig
from interp.realign.hybrid import item_losses, reference_for
from interp.realign.params import only_these_require_grad, select_parameters
from interp.realign.plan import TrainItem

CFG = RealignConfig(batch_size=4, max_length=256)


def _model():
    model = load_model("tiny", device="cpu")
    model.hf.to(torch.float64)  # exact comparisons; the float32 path is the same code
    return model


def _items(kind: str, n: int = 3) -> list[TrainItem]:
    out = []
    for i in range(n):
        p = Prompt(f"Tell me about topic {i}?", "harmless", category="c")
        pair = LabelledPair(p, f"Topic {i} is nice" + "!" * i, "I can't help with that.", False, True)
        out.append(TrainItem(kind, pair, 1.0, i))
    return out


@pytest.mark.parametrize("kind", ["dpo", "npo"])
def test_preference_losses_are_log2_at_reference(kind):
    model = _model()
    items = _items(kind)
    losses = item_losses(model, items, reference_for(model, items, CFG), CFG)
    per_response = 2 if kind == "npo" else 1  # NPO(chosen) + NPO(rejected)
    torch.testing.assert_close(losses, torch.full((3,), per_response * math.log(2), dtype=torch.float64),
                               rtol=0, atol=1e-12)


def test_kl_and_its_gradient_are_zero_at_reference():
    model = _model()
    items = _items("kl")
    refs = reference_for(model, items, CFG)
    params = select_parameters(model, ("model.layers.*",))
    with only_these_require_grad(model, params):
        kl = item_losses(model, items, refs, CFG)
        grads = torch.autograd.grad(kl.sum(), list(params.values()))
    assert kl.abs().max() < 1e-12
    assert max(g.abs().max().item() for g in grads) < 1e-10
    # and away from θ_ref it is positive: the test can fail
    with torch.no_grad():
        for p in params.values():
            p.add_(0.05 * torch.randn_like(p))
    assert (item_losses(model, items, refs, CFG) > 1e-6).all()


def _independent_logprob(model, prompt: str, response: str, average: bool = False) -> float:
    """log p(response + EOS | chat(prompt)) by a plain forward pass and gather, no workbench helpers."""
    tok = model.tokenizer
    p_ids = tok(model.chat(prompt), add_special_tokens=False)["input_ids"]
    r_ids = tok(response + tok.eos_token, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + r_ids])
    with torch.no_grad():
        logits = model.hf(input_ids=ids).logits[0].to(torch.float64)
    lp = torch.log_softmax(logits[len(p_ids) - 1:-1], -1).gather(-1, torch.tensor(r_ids)[:, None])[:, 0]
    return float(lp.mean() if average else lp.sum())


@pytest.mark.parametrize("loss", ["dpo", "ipo"])
def test_preference_loss_matches_trl_formula(loss):
    """trl's DPOTrainer (trl is not installed here): sigmoid loss ``-logsigmoid(β·logits)`` and IPO
    ``(logits - 1/(2β))²`` on length-averaged log-probs, ``logits = (π_c - π_r) - (ref_c - ref_r)``."""
    cfg = RealignConfig(batch_size=4, max_length=256, loss=loss)
    model = _model()
    items = _items("dpo")
    refs = reference_for(model, items, cfg)
    avg = loss == "ipo"
    ref_lp = [(_independent_logprob(model, it.pair.prompt.text, it.pair.chosen, avg),
               _independent_logprob(model, it.pair.prompt.text, it.pair.rejected, avg)) for it in items]
    torch.manual_seed(0)
    with torch.no_grad():  # move away from θ_ref so the margins are not zero
        for p in model.hf.parameters():
            p.add_(0.02 * torch.randn_like(p))
    ours = item_losses(model, items, refs, cfg)
    for k, it in enumerate(items):
        pc = _independent_logprob(model, it.pair.prompt.text, it.pair.chosen, avg)
        pr = _independent_logprob(model, it.pair.prompt.text, it.pair.rejected, avg)
        logits = torch.tensor((pc - pr) - (ref_lp[k][0] - ref_lp[k][1]), dtype=torch.float64)
        trl = -F.logsigmoid(cfg.beta * logits) if loss == "dpo" else (logits - 1 / (2 * cfg.beta)) ** 2
        assert abs(logits) > 1e-3
        torch.testing.assert_close(ours[k], trl, rtol=1e-10, atol=1e-12)
