"""Safe-LoRA: C = V Vᵀ / |V|_F, and ΔW -> C ΔW exactly where cos(ΔW, C ΔW) is below the threshold."""

from __future__ import annotations

import math

import pytest
import torch

from interp.models import load_model
from interp.train.safe_lora import alignment_matrices, project_update, safe_lora_matrix, safe_lora_project


def _unit(*xs):
    v = torch.tensor(xs, dtype=torch.float64)
    return v / v.norm()


def test_projection_on_a_constructed_rank_one_alignment_matrix():
    u, u_perp, w = _unit(1, 0, 0), _unit(0, 1, 0), _unit(0, 0, 1, 0)
    v = 3.0 * torch.outer(u, w)  # |V|_F = 3, so C = 3 u uᵀ
    assert torch.allclose(safe_lora_matrix(v), 3.0 * torch.outer(u, u))
    far = torch.outer(u + 2 * u_perp, w)  # cos = 1 / sqrt(5) ~ 0.447 (C scales, the cosine does not)
    kept, cos, projected = project_update(far, v, threshold=0.5)
    assert math.isclose(cos, 1 / math.sqrt(5), rel_tol=1e-12) and projected
    assert torch.allclose(kept, 3.0 * torch.outer(u, w))
    near = torch.outer(2 * u + u_perp, w)  # cos = 2 / sqrt(5) ~ 0.894: left alone
    kept, cos, projected = project_update(near, v, threshold=0.5)
    assert math.isclose(cos, 2 / math.sqrt(5), rel_tol=1e-12) and not projected
    assert torch.equal(kept, near)
    with pytest.raises(ValueError, match="zero"):
        safe_lora_matrix(torch.zeros(3, 4))


def test_safe_lora_on_tiny_models_projects_exactly_the_low_similarity_layers():
    pre = load_model("tiny")
    aligned = load_model("tiny")
    torch.manual_seed(0)
    names = ["model.layers.0.self_attn.v_proj.weight", "model.layers.1.self_attn.v_proj.weight"]
    with torch.no_grad():
        for n in names:
            aligned.named_parameters()[n].add_(0.1 * torch.randn_like(aligned.named_parameters()[n]))
    v = alignment_matrices(aligned, pre, ("v_proj",))
    assert sorted(v) == names
    base = {n: aligned.named_parameters()[n].detach().clone() for n in names}
    ft = aligned
    random_update = 0.05 * torch.randn_like(base[names[1]])
    with torch.no_grad():  # layer 0: an update along the alignment matrix; layer 1: a random one
        ft.named_parameters()[names[0]].add_(0.5 * v[names[0]])
        ft.named_parameters()[names[1]].add_(random_update)
    res = safe_lora_project(ft, base, v, threshold=0.9)
    by = {r["name"]: r for r in res.records}
    assert not by[names[0]]["projected"] and by[names[0]]["cosine"] > 0.9
    assert by[names[1]]["projected"] and by[names[1]]["cosine"] < 0.9 and res.n_projected == 1
    w0, w1 = (ft.named_parameters()[n].detach() for n in names)
    assert torch.allclose(w0, base[names[0]] + 0.5 * v[names[0]], atol=1e-6)  # left alone
    c = safe_lora_matrix(v[names[1]])
    assert torch.allclose(w1.double(), base[names[1]].double() + c @ random_update.double(), atol=1e-6)
    with pytest.raises(ValueError, match="missing"):
        safe_lora_project(ft, {}, v)
