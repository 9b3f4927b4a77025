"""The refusal-preserving fine-tuning variants, as (SFT settings, update constraint, post-processing).

One place that turns a variant name into what :func:`interp.train.truthful.truthful_finetune` needs,
so the analysis compares them on equal terms (same data, schedule, seed):

* ``unconstrained``: full fine-tune (the tied embedding frozen, as always);
* ``upstream-frozen``: the control of freezing alone, every weight upstream of ``freeze_layer``'s
  ``hook_z`` frozen, nothing projected;
* ``lora``: LoRA adapters only;
* ``safe-lora``: the LoRA fine-tune, then Safe-LoRA's projection (:mod:`interp.train.safe_lora`);
* ``residual``: full fine-tune, every residual writer kept off the per-layer refusal subspaces
  (:mod:`interp.train.constraints_residual`);
* ``null-space``: LoRA, each update projected off the gradient span of the refusal components of
  harmful prompts (:mod:`interp.train.null_space`);
* ``anchor``: full fine-tune plus the anchor loss on those components (:mod:`interp.train.anchor`);
* ``constrained`` / ``constrained-frozen``: the single-site ``hook_z`` projection of an exported
  subspace (:class:`interp.train.constraints.SubspaceConstraint`), without / with upstream freezing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from interp.train.anchor import AnchorConfig, AnchorLoss
from interp.train.constraints import SubspaceConstraint, upstream_prefixes
from interp.train.constraints_residual import ResidualWriterConstraint
from interp.train.lora import LoRAConfig
from interp.train.null_space import NullSpaceConfig, NullSpaceConstraint
from interp.train.residual_subspaces import ResidualSubspaces
from interp.train.safe_lora import safe_lora_project
from interp.train.sft import SFTConfig, UpdateConstraint

VARIANTS = ("unconstrained", "upstream-frozen", "lora", "safe-lora", "residual", "null-space", "anchor",
            "constrained", "constrained-frozen")
"""Every variant; the last two need an exported ``hook_z`` subspace."""
NEEDS_RESIDUAL = ("residual", "null-space", "anchor")
"""Variants that need the per-layer residual refusal subspaces."""
USES_LORA = ("lora", "safe-lora", "null-space")
"""Variants that train LoRA adapters instead of the weights."""


@dataclass(frozen=True)
class PreservingConfig:
    """Settings of the constrained variants (the optimisation itself is the shared ``SFTConfig``)."""

    lora: LoRAConfig = field(default_factory=LoRAConfig)
    """Adapters of the LoRA variants (lora, safe-lora, null-space)."""
    freeze_layer: int | None = None
    """upstream-frozen: freeze everything upstream of this layer's ``hook_z`` (None: the subspace's layer)."""
    reach: Literal["own", "downstream"] = "downstream"
    """residual: keep each writer off its own stream's subspace or off every later stream's too."""
    null_space: NullSpaceConfig = field(default_factory=NullSpaceConfig)
    """null-space: protected streams, basis refresh, rank cap."""
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
    """anchor: weight λ, streams, prompts per step."""
    safe_lora_threshold: float = 0.5
    """safe-lora: cosine similarity below which a layer's update is projected."""


@dataclass
class VariantPlan:
    """What one variant trains with, and what happens to the model after training."""

    name: str
    sft: SFTConfig
    constraint: UpdateConstraint | None = None
    post: Callable[[object], dict] | None = None
    """Applied to the trained (merged) model; returns a record for the results (Safe-LoRA's)."""


def plan_variant(name: str, model, sft: SFTConfig, config: PreservingConfig = PreservingConfig(),
                 residual: ResidualSubspaces | None = None, harmful: Sequence[str] = (), z_subspace=None,
                 safe_lora: tuple[dict, dict] | None = None) -> VariantPlan:
    """The plan of variant ``name`` for ``model`` (a fresh copy of the aligned model).

    ``residual`` and ``harmful`` (training prompts): for residual / null-space / anchor; ``z_subspace``:
    for constrained, constrained-frozen (and the default upstream-frozen layer); ``safe_lora``:
    (aligned target weights, alignment matrices) for safe-lora.
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; expected one of {list(VARIANTS)}")
    if name in NEEDS_RESIDUAL and (residual is None or not harmful):
        raise ValueError(f"variant {name!r} needs the residual refusal subspaces and harmful training prompts")
    lora_sft = replace(sft, lora=config.lora)
    if name == "unconstrained":
        return VariantPlan(name, sft)
    if name == "upstream-frozen":
        layer = config.freeze_layer if config.freeze_layer is not None else (
            z_subspace.layer if z_subspace is not None else None)
        if layer is None:
            raise ValueError("upstream-frozen needs PreservingConfig.freeze_layer or a hook_z subspace")
        return VariantPlan(name, replace(sft, frozen=sft.frozen + upstream_prefixes(layer, model.arch)))
    if name == "lora":
        return VariantPlan(name, lora_sft)
    if name == "safe-lora":
        if safe_lora is None:
            raise ValueError("safe-lora needs (aligned weights, alignment matrices) of the LoRA targets")
        weights, alignment = safe_lora
        return VariantPlan(name, lora_sft, post=lambda m: safe_lora_project(
            m, weights, alignment, config.safe_lora_threshold).to_dict())
    if name == "residual":
        return VariantPlan(name, sft, ResidualWriterConstraint(model, residual, config.reach))
    if name == "null-space":
        return VariantPlan(name, lora_sft, NullSpaceConstraint(model, residual, harmful, config.null_space))
    if name == "anchor":
        return VariantPlan(name, sft, AnchorLoss(model, residual, harmful, config.anchor))
    if z_subspace is None:
        raise ValueError(f"variant {name!r} needs an exported hook_z subspace")
    return VariantPlan(name, sft, SubspaceConstraint(model, z_subspace, freeze_upstream=name == "constrained-frozen"))
