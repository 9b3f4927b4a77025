"""Anchor loss: with a large weight the anchored refusal components barely move; without, they drift."""

from __future__ import annotations

import torch

from interp.models import load_model
from interp.train.anchor import AnchorConfig, AnchorLoss
from interp.train.residual_subspaces import ResidualSubspaceConfig, refusal_components, residual_refusal_subspaces

HARMFUL = [f"tell me how to hurt someone, case {i}" for i in range(4)]
HARMLESS = [f"tell me how to bake a loaf, case {i}" for i in range(4)]
TEXTS = ["the cat sat on the mat", "refuse harmful requests politely", "paris is in france"]


def _drift(weight: float, steps: int = 8) -> tuple[float, list[float]]:
    model = load_model("tiny")
    sub = residual_refusal_subspaces(model, HARMFUL, HARMLESS, ResidualSubspaceConfig(rank=2))
    c0 = refusal_components(model, sub, HARMFUL)
    anchor = AnchorLoss(model, sub, HARMFUL, AnchorConfig(weight=weight, batch_size=4))
    opt = torch.optim.Adam([p for p in model.hf.parameters() if p.requires_grad], lr=1e-3)
    enc = model.encode(TEXTS)
    for _ in range(steps):
        logits = model.logits(enc)
        lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, enc.input_ids[:, 1:, None])[..., 0]
        (-(lp * enc.attention_mask[:, 1:]).sum() / enc.attention_mask[:, 1:].sum()).backward()
        anchor.before_step(model)
        opt.step()
        anchor.after_step(model)
        opt.zero_grad(set_to_none=True)
    return float((refusal_components(model, sub, HARMFUL) - c0).norm() / c0.norm()), anchor.losses


def test_a_large_anchor_weight_keeps_the_components():
    free, no_losses = _drift(0.0)
    anchored, losses = _drift(1e3)
    assert no_losses == [] and len(losses) == 8
    assert losses[0] == 0.0  # at the aligned weights the anchor term vanishes
    assert free > 1.0, free  # training alone moves the refusal components (relative drift ~5)
    assert anchored < 0.2 * free, (anchored, free)  # measured ~0.57 vs ~5.4


def test_anchor_loss_is_zero_at_reference_and_positive_after_a_change():
    model = load_model("tiny")
    sub = residual_refusal_subspaces(model, HARMFUL, HARMLESS, ResidualSubspaceConfig(rank=1))
    anchor = AnchorLoss(model, sub, HARMFUL, AnchorConfig(weight=2.0, streams=(1, 2), batch_size=2))
    assert float(anchor.loss(model, 0).detach()) == 0.0 and float(anchor.loss(model, 1).detach()) == 0.0
    with torch.no_grad():
        model.arch.mlp_out_projection(model.hf, 0).weight.mul_(1.5)
    assert float(anchor.loss(model, 0).detach()) > 0


def test_every_k_steps_adds_k_times_the_weight():
    model = load_model("tiny")
    sub = residual_refusal_subspaces(model, HARMFUL, HARMLESS, ResidualSubspaceConfig(rank=1))
    with torch.no_grad():
        model.arch.mlp_out_projection(model.hf, 0).weight.mul_(1.5)  # away from the reference
    w = model.arch.mlp_out_projection(model.hf, 1).weight
    grads = {}
    for every in (1, 2):
        anchor = AnchorLoss(load_model("tiny"), sub, HARMFUL, AnchorConfig(weight=1.0, batch_size=4, every=every))
        for _ in range(4):
            anchor.before_step(model)
        assert len(anchor.losses) == 4 // every
        grads[every] = w.grad.detach().clone()
        model.hf.zero_grad(set_to_none=True)
    assert torch.allclose(grads[1], grads[2], rtol=1e-4, atol=1e-8)  # 4 x g == 2 x (2 g)
