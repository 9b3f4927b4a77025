"""Refusal-preserving updates: a constrained Adam update leaves the subspace projection unchanged."""

from __future__ import annotations

import pytest
import torch
from helpers import train_with_constraint

from interp.hooks import Site, capture
from interp.models import TinyConfig, load_model
from interp.sae.site import ActSite
from interp.subspace import build_subspace, export_subspace, load_subspace
from interp.train.constraints import SubspaceConstraint

TEXTS = ["the cat sat on the mat", "refuse harmful requests politely", "paris is in france"]


def _train(model, constraint, steps=2, lr=3e-2):
    train_with_constraint(model, constraint, TEXTS, steps, lr)


def _site_proj(model, sub, texts):
    got: dict = {}
    with torch.no_grad(), model.hooks(fwd=[(sub.site.site, capture(got, "a"))]):
        model.logits(model.encode(texts))
    return sub.project(sub.site.extract(got["a"])), sub.site.extract(got["a"])


@pytest.fixture
def z_subspace(tmp_path):
    torch.manual_seed(0)
    site = ActSite(Site("z", 1), heads=(0, 1, 3))  # heads 0 and 1 share KV head 0 (GQA)
    path = export_subspace(build_subspace(site, torch.randn(3, 48)), tmp_path)
    return path


@pytest.mark.parametrize("constrained", [True, False])
def test_z_subspace_projection_is_preserved(z_subspace, constrained):
    model = load_model("tiny")
    sub = load_subspace(z_subspace, model)
    probe = ["an unseen prompt", "another one entirely"]
    before, full_before = _site_proj(model, sub, probe)
    con = SubspaceConstraint(model, sub, freeze_upstream=True) if constrained else None
    _train(model, con)
    after, full_after = _site_proj(model, sub, probe)
    assert (full_after - full_before).abs().max() > 1e-3  # the site activation itself did change
    change = (after - before).abs().max() / before.abs().max()
    if constrained:
        assert change < 1e-5, change
        assert con.violation() < 1e-5
        assert set(con.constrained) == {"layers.1.v_proj.weight[kv0]", "layers.1.v_proj.weight[kv1]"}
    else:
        assert change > 1e-2, change


@pytest.mark.parametrize("constrained", [True, False])
def test_resid_writers_keep_their_subspace_component(constrained):
    model = load_model("tiny")
    torch.manual_seed(1)
    sub = build_subspace(ActSite(Site("resid_post", 0)), torch.randn(4, 64))
    b = sub.basis.to(model.device)
    layer = model.hf.model.layers[0]
    weights = {"o": layer.self_attn.o_proj.weight, "down": layer.mlp.down_proj.weight}
    before = {k: (b @ w).detach().clone() for k, w in weights.items()}
    emb_before = (model.hf.model.embed_tokens.weight @ b.T).detach().clone()
    w_before = {k: w.detach().clone() for k, w in weights.items()}
    con = SubspaceConstraint(model, sub) if constrained else None
    _train(model, con)
    x = torch.randn(5, layer.mlp.down_proj.weight.shape[1])
    for k, w in weights.items():
        assert (w - w_before[k]).abs().max() > 1e-3  # the weight was trained
        drift = (b @ w - before[k]).abs().max()
        assert (drift < 1e-5) if constrained else (drift > 1e-3), (k, drift)
    drift_e = (model.hf.model.embed_tokens.weight @ b.T - emb_before).abs().max()
    assert (drift_e < 1e-5) if constrained else (drift_e > 1e-3)
    # B W x for a fixed input x of the MLP's down projection
    dw = layer.mlp.down_proj.weight
    out = b @ (dw @ x.T.to(dw.device))
    ref = b @ (w_before["down"] @ x.T.to(dw.device))
    assert torch.allclose(out, ref, atol=1e-4) == constrained


def test_upstream_prefixes_name_exactly_what_freeze_upstream_freezes(z_subspace):
    from interp.train.constraints import upstream_prefixes

    model = load_model("tiny", tiny=TinyConfig(n_layers=3))
    SubspaceConstraint(model, load_subspace(z_subspace, model), freeze_upstream=True)
    params = model.named_parameters()  # clean Hugging Face names, as SFTConfig.frozen uses
    frozen = {n for n, p in params.items() if not p.requires_grad}
    by_prefix = {n for n in params if n.startswith(upstream_prefixes(1))}
    assert frozen == by_prefix
    assert "model.layers.0.mlp.down_proj.weight" in frozen and "model.layers.1.self_attn.q_proj.weight" in frozen
    assert "model.layers.1.self_attn.v_proj.weight" not in frozen and "model.layers.2.mlp.up_proj.weight" not in frozen
    assert not "model.layers.10.mlp.up_proj.weight".startswith(upstream_prefixes(2))  # "layers.1." only
