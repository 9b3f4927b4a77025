"""Settings of a TRACE re-alignment: objective, ablation variant, trainable parameters, optimisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from interp.train.sft import SFTConfig

Variant = Literal["trace", "no_triage", "no_impact", "no_kl", "naive_dpo"]
VARIANTS: tuple[str, ...] = ("trace", "no_triage", "no_impact", "no_kl", "naive_dpo")

DEFAULT_PARAMS = ("model.layers.*.self_attn.q_proj.weight", "model.layers.*.self_attn.v_proj.weight")
"""Full q/v projection weights of every layer: where TRACE puts its LoRA, but as whole matrices, so the
impact scores are gradients of the model itself and not of a LoRA's random initialisation."""


@dataclass(frozen=True)
class RealignConfig:
    """How TRACE scores and re-trains (defaults from the paper where it gives them)."""

    variant: Variant = "trace"
    """``trace``; ablations ``no_triage`` (every pair DPO'd as relabelled, impact-weighted), ``no_impact``
    (all weights 1), ``no_kl`` (no retain term); baseline ``naive_dpo`` (relabelled DPO, weights 1)."""
    loss: Literal["dpo", "ipo"] = "dpo"
    """Preference loss on INVERT pairs (and the gold batch)."""
    beta: float = 0.3
    """Inverse temperature of DPO/IPO/NPO."""
    alpha: float = 0.1
    """Weight of the KL retain term on RETAIN pairs' chosen responses."""
    params: tuple[str, ...] = DEFAULT_PARAMS
    """fnmatch patterns of the parameters that are scored and trained (all others frozen)."""
    gold_fraction: float = 0.2
    """Share of the pairs' prompts set aside (by text hash) as the gold batch, never scored or trained."""
    gold_scope: Literal["all", "conflicts"] = "all"
    """Gold pairs from every set-aside prompt the policy orders (``all``), or only from those it flips
    (``conflicts``): with ``all`` the gold gradient is dominated by the unchanged categories."""
    max_retain: int | None = None
    """Keep at most this many RETAIN pairs for the KL term (seeded subsample; None: all). The retain set
    is a regulariser: a few dozen replies anchor the unchanged behaviour at a fraction of the steps."""
    lr: float = 1e-4
    """Peak AdamW learning rate."""
    epochs: int = 1
    """Passes over the training items."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (None: all epochs); for equal-step comparisons."""
    batch_size: int = 8
    """Items (pairs or retain replies) per optimizer step."""
    max_length: int = 192
    """Tokens per (prompt, response); longer ones are cut."""
    warmup_steps: int = 0
    """Linear warm-up steps, then linear decay to zero."""
    weight_decay: float = 0.0
    """AdamW weight decay (0: an item with zero gradient leaves the weights exactly unchanged)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    seed: int = 0
    """Seed of the data order."""
    checkpoint_every: int = 20
    """Optimizer steps between resumable checkpoints."""
    callback_every: int = 20
    """Steps between callback calls (also before the first and after the last step)."""

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; expected one of {VARIANTS}")
        if self.gold_scope not in ("all", "conflicts"):
            raise ValueError(f"unknown gold_scope {self.gold_scope!r}; expected 'all' or 'conflicts'")
        if self.loss not in ("dpo", "ipo"):
            raise ValueError(f"unknown loss {self.loss!r}; expected 'dpo' or 'ipo'")
        if self.beta <= 0 or self.alpha < 0 or self.lr <= 0:
            raise ValueError(f"need beta > 0, alpha >= 0, lr > 0: {self}")
        if not 0.0 < self.gold_fraction < 1.0:
            raise ValueError(f"gold_fraction must be in (0, 1), got {self.gold_fraction}")
        if self.epochs < 1 or self.batch_size < 1 or self.max_length < 8 or not self.params:
            raise ValueError(f"invalid RealignConfig: {self}")
        if self.max_retain is not None and self.max_retain < 0:
            raise ValueError(f"max_retain must be >= 0 or None, got {self.max_retain}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")

    @property
    def uses_impact(self) -> bool:
        return self.variant in ("trace", "no_triage", "no_kl")

    def schedule_config(self) -> SFTConfig:
        """The SFT trainer's view of the optimisation settings (its batch order and LR schedule are reused)."""
        return SFTConfig(lr=self.lr, epochs=self.epochs, batch_size=self.batch_size, max_length=self.max_length,
                         warmup_steps=self.warmup_steps, weight_decay=self.weight_decay,
                         max_grad_norm=self.max_grad_norm, seed=self.seed, checkpoint_every=self.checkpoint_every,
                         callback_every=self.callback_every, frozen=())
