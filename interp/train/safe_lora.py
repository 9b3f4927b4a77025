"""Safe-LoRA baseline (Hsu et al. 2024): project fine-tuning updates onto the alignment matrix's span.

Per adapted weight i, the *alignment matrix* is ``V_i = W_aligned - W_pre`` (aligned minus
pre-alignment weights, [out, in]) and ``C_i = V_i V_iᵀ / ||V_i||_F`` (the paper's cheap stand-in for the
projection onto V_i's column space). With the fine-tune's update ``ΔW_i = W_ft - W_aligned`` (the
merged LoRA update ``(alpha / r) B A``), layers whose update is far from that span, i.e. whose cosine
similarity ``<ΔW_i, C_i ΔW_i>_F / (|ΔW_i|_F |C_i ΔW_i|_F)`` is below ``threshold``, get ``ΔW_i``
replaced by ``C_i ΔW_i``; the others are left alone. On merged weights this is the paper's
``B <- C B`` exactly, since ``C (B A) = (C B) A``, so it also applies to full fine-tunes.

Guarantee (exact): afterwards every projected weight equals ``W_aligned + C_i ΔW_i`` and every other
one is unchanged; the result records each weight's similarity and whether it was projected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor


def target_names(model, targets: Sequence[str]) -> list[str]:
    """Clean names of the 2-d weights of the modules named ``targets`` (last path part), e.g. q/v_proj."""
    names = [n for n, p in model.named_parameters().items()
             if n.endswith(".weight") and p.ndim == 2 and n[: -len(".weight")].rsplit(".", 1)[-1] in targets]
    if not names:
        raise ValueError(f"model {model.name!r} has no weights of modules named {list(targets)}")
    return names


def alignment_matrices(aligned, pre, targets: Sequence[str]) -> dict[str, Float[Tensor, "out in"]]:
    """``V = W_aligned - W_pre`` for every target weight (float32, CPU)."""
    a, p = aligned.named_parameters(), pre.named_parameters()
    out = {}
    for name in target_names(aligned, targets):
        if name not in p or p[name].shape != a[name].shape:
            raise ValueError(f"pre-alignment model {pre.name!r} has no weight {name} shaped like the aligned one's")
        out[name] = (a[name].detach().float() - p[name].detach().float()).cpu()
    return out


def safe_lora_matrix(v: Float[Tensor, "out in"]) -> Float[Tensor, "out out"]:
    """``C = V Vᵀ / ||V||_F`` (float64)."""
    v = v.double()
    norm = v.norm()
    if float(norm) == 0:
        raise ValueError("the alignment matrix is zero: aligned and pre-alignment weights are equal")
    return v @ v.T / norm


def project_update(delta: Float[Tensor, "out in"], v: Float[Tensor, "out in"], threshold: float,
                   ) -> tuple[Float[Tensor, "out in"], float, bool]:
    """(the update to keep, cosine similarity of ΔW and CΔW, whether it was projected)."""
    d = delta.double()
    cd = safe_lora_matrix(v.to(d.device)) @ d
    denom = float(d.norm() * cd.norm())
    cos = float((d * cd).sum()) / denom if denom > 0 else 1.0
    if cos < threshold:
        return cd.to(delta.dtype), cos, True
    return delta, cos, False


@dataclass(frozen=True)
class SafeLoRAResult:
    """Which weights Safe-LoRA projected."""

    threshold: float
    """Similarity below which an update was projected."""
    records: list[dict] = field(default_factory=list)
    """Per weight: name, cosine similarity, projected, update norm before and after."""

    @property
    def n_projected(self) -> int:
        return sum(r["projected"] for r in self.records)

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "n_projected": self.n_projected, "n_weights": len(self.records),
                "records": self.records}


@torch.no_grad()
def safe_lora_project(model, aligned_weights: dict[str, Tensor], alignment: dict[str, Tensor],
                      threshold: float = 0.5) -> SafeLoRAResult:
    """Apply Safe-LoRA in place to a fine-tuned (merged) ``model``.

    ``aligned_weights``: the aligned model's target weights (name -> tensor, before the fine-tune);
    ``alignment``: :func:`alignment_matrices` for the same names.
    """
    if not -1 <= threshold <= 1:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    params = model.named_parameters()
    missing = sorted(set(alignment) - set(params)) or sorted(set(alignment) - set(aligned_weights))
    if missing:
        raise ValueError(f"Safe-LoRA weights missing from the model or the aligned weights: {missing[:3]}")
    records = []
    for name, v in alignment.items():
        w = params[name]
        base = aligned_weights[name].to(w.device, torch.float32)
        delta = w.float() - base
        kept, cos, projected = project_update(delta, v.to(w.device), threshold)
        if projected:
            w.copy_((base + kept).to(w.dtype))
        records.append({"name": name, "cosine": cos, "projected": projected,
                        "update_norm": float(delta.norm()), "kept_norm": float(kept.norm())})
    return SafeLoRAResult(threshold, records)
