"""Anchor loss: keep the refusal components of harmful prompts at their aligned model's values.

``AnchorLoss(model, subspaces, harmful, weight)`` records, on the aligned model it is built on, the
refusal components ``c_ref = Q_s · pool(a_s(x))`` of the harmful prompts at the chosen streams
(:func:`interp.train.residual_subspaces.refusal_components`). At every optimizer step it adds the
gradient of

    L_anchor = weight * sum_s mean_x |c_s(x) - c_ref_s(x)|² / mean_x |c_ref_s(x)|²

to the training gradient already in ``.grad`` (before ``optimizer.step``), so the step minimises
task loss + L_anchor; each stream is normalised by its reference scale, so ``weight`` does not depend
on how large the residual stream is at that depth. The anchor term is added after train_sft clipped
the task gradient, so it is not clipped.

Guarantee: none exact; a penalty. L_anchor >= 0 with equality iff the protected components equal the
aligned values on the anchor prompts, and as ``weight`` grows the optimum keeps them there, so with a
large weight their drift is much smaller than without (tested on the tiny model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from interp.train.residual_subspaces import ResidualSubspaces, refusal_components


@dataclass(frozen=True)
class AnchorConfig:
    """Weight and batching of the anchor term."""

    weight: float = 1.0
    """λ: multiplier of the normalised squared drift."""
    streams: tuple[int, ...] | None = None
    """Residual streams whose components are anchored (None: every stream)."""
    batch_size: int = 8
    """Anchor prompts per step (cycled through the set)."""
    every: int = 1
    """Add the term every this many steps, weighted ``weight * every`` (the same mean pull at 1/every of
    the extra forward and backward passes)."""

    def __post_init__(self) -> None:
        if self.weight < 0 or self.batch_size < 1 or self.every < 1:
            raise ValueError(f"invalid AnchorConfig: {self}")


class AnchorLoss:
    """An update constraint that adds the anchor term's gradient before each optimizer step."""

    supports_lora = True
    """Adds gradients to whatever train_sft trains, LoRA adapters included."""

    def __init__(self, model, subspaces: ResidualSubspaces, harmful: Sequence[str],
                 config: AnchorConfig = AnchorConfig()):
        subspaces.check(model)
        if not harmful:
            raise ValueError("AnchorLoss needs harmful prompts to anchor")
        self.subspaces, self.prompts, self.config = subspaces, list(harmful), config
        self._streams = list(config.streams) if config.streams is not None else list(range(subspaces.n_streams))
        self._ranks = [len(subspaces.bases[s]) for s in self._streams]
        with torch.no_grad():
            self._ref = [self._components(model, self.prompts[i:i + config.batch_size], grad=False)
                         for i in range(0, len(self.prompts), config.batch_size)]
        refs = torch.cat([r.reshape(-1, sum(self._ranks)) for r in self._ref])
        self._scale = torch.stack([c.pow(2).sum(1).mean() for c in refs.split(self._ranks, dim=1)]).clamp_min(1e-12)
        self._step = 0
        self.losses: list[float] = []
        """The anchor term's value (``weight`` times the normalised drift) at every step it was added."""

    def _components(self, model, prompts: Sequence[str], grad: bool) -> torch.Tensor:
        return refusal_components(model, self.subspaces, prompts, self._streams, grad=grad)

    def loss(self, model, chunk: int) -> torch.Tensor:
        """L_anchor on anchor chunk ``chunk`` (with the graph to the weights), weighted ``weight``."""
        prompts = self.prompts[chunk * self.config.batch_size:(chunk + 1) * self.config.batch_size]
        c = self._components(model, prompts, grad=True).reshape(len(prompts), sum(self._ranks))
        ref = self._ref[chunk].to(c.device).reshape_as(c)
        per_stream = [d.pow(2).sum(1).mean() for d in (c - ref).split(self._ranks, dim=1)]
        return self.config.weight * (torch.stack(per_stream) / self._scale.to(c.device)).sum()

    def before_step(self, model) -> None:
        """Add d L_anchor / d θ (this step's anchor chunk) to the gradients."""
        step, every = self._step, self.config.every
        self._step += 1
        if self.config.weight == 0 or step % every:
            return
        with torch.enable_grad():
            loss = self.loss(model, (step // every) % len(self._ref))
            (loss * every).backward()
        self.losses.append(float(loss.detach()))

    def after_step(self, model) -> None:
        """Nothing: the anchor acts through the gradient."""
