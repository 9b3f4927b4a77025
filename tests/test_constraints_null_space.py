"""Null-space projection on LoRA parameters: the protected components change only at second order."""

from __future__ import annotations

import torch

from interp.models import load_model
from interp.train.lora import LoRAConfig, apply_lora
from interp.train.null_space import NullSpaceConfig, NullSpaceConstraint, trainable
from interp.train.residual_subspaces import ResidualSubspaceConfig, refusal_components, residual_refusal_subspaces

HARMFUL = [f"tell me how to hurt someone, case {i}" for i in range(4)]
HARMLESS = [f"tell me how to bake a loaf, case {i}" for i in range(4)]
TEXTS = ["the cat sat on the mat", "paris is in france ok!"]  # equal lengths: no padded rows in float64


def _setup():
    model = load_model("tiny")
    model.hf.double()  # the second-order term must stand above float rounding
    sub = residual_refusal_subspaces(model, HARMFUL, HARMLESS, ResidualSubspaceConfig(rank=2))
    apply_lora(model, LoRAConfig(rank=2, targets=("q_proj", "v_proj", "o_proj", "down_proj")))
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for name, p in model.hf.named_parameters():
            if "lora_B" in name:  # peft starts B at 0; a generic point has B != 0
                p.normal_(0, 0.05)
    return model, sub


def _grad(model):
    enc = model.encode(TEXTS)
    logits = model.logits(enc)
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, enc.input_ids[:, 1:, None])[..., 0]
    loss = -(lp * enc.attention_mask[:, 1:]).sum() / enc.attention_mask[:, 1:].sum()
    params = trainable(model)
    return params, torch.autograd.grad(loss, params)


def _drift(model, sub, con, lr, params, grads):
    """Change of the protected components after one SGD step of size lr (projected when con is given)."""
    start = [p.detach().clone() for p in params]
    c0 = refusal_components(model, sub, HARMFUL).double()
    if con is not None:
        con.before_step(model)
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            p.sub_(lr * g)
    if con is not None:
        con.after_step(model)
    moved = sum(float((p.detach() - s).norm() ** 2) for p, s in zip(params, start, strict=True)) ** 0.5
    drift = float((refusal_components(model, sub, HARMFUL).double() - c0).abs().max())
    with torch.no_grad():
        for p, s in zip(params, start, strict=True):
            p.copy_(s)
    return drift, moved


def test_projected_step_changes_the_protected_components_at_second_order():
    model, sub = _setup()
    params, grads = _grad(model)
    n_protected = len(HARMFUL) * (sub.n_streams - 1) * 2  # stream 0 (the embeddings) has no adapter
    assert sum(p.numel() for p in params) > n_protected  # the null space is not empty
    lrs = (1e-1, 5e-2)
    free = [_drift(model, sub, None, lr, params, grads) for lr in lrs]
    proj = []
    for lr in lrs:
        con = NullSpaceConstraint(model, sub, HARMFUL, NullSpaceConfig(refresh_every=1, tol=1e-9))
        proj.append(_drift(model, sub, con, lr, params, grads))
        assert con.ranks == [(0, n_protected)]
    assert free[0][0] / free[1][0] < 2.5  # unprojected: first order (ratio ~2)
    assert proj[0][0] / proj[1][0] > 3.5  # projected: second order (ratio ~4)
    assert proj[0][0] < 0.05 * free[0][0], (proj, free)
    assert proj[0][1] > 0.3 * free[0][1]  # the projected step still moves the weights


def test_basis_is_lazy_and_respects_max_rank():
    model, sub = _setup()
    con = NullSpaceConstraint(model, sub, HARMFUL[:2], NullSpaceConfig(streams=(1, 2), max_rank=3))
    assert con.ranks == []
    con.before_step(model)
    con.after_step(model)
    assert con.ranks == [(0, 3)]


def test_basis_does_not_depend_on_the_prompt_batching():
    """One prompt per forward (the cheap default) spans the same row space as batched forwards."""
    from interp.train.null_space import jacobian_basis

    model, sub = _setup()
    params = trainable(model)
    spans = []
    for batch in (1, 4):
        blocks = jacobian_basis(model, sub, HARMFUL, params, NullSpaceConfig(batch_size=batch, tol=1e-9))
        b = torch.cat([x.reshape(len(x), -1) for x in blocks], dim=1).double()
        spans.append(b.T @ b)  # the projector onto the basis' span
    assert NullSpaceConfig().batch_size == 1
    assert torch.linalg.matrix_rank(spans[0]) == len(HARMFUL) * (sub.n_streams - 1) * 2
    torch.testing.assert_close(spans[0], spans[1], atol=1e-6, rtol=0)
