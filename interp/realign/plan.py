"""From triaged pairs to training items: what each variant trains on, before and after impact weights.

An item is one term of the hybrid objective: ``dpo`` on a pair oriented as it is to be learned
(INVERT pairs swapped), ``npo`` on both responses of a PUNISH pair, or ``kl`` on a RETAIN pair's chosen
response. Variants:

* ``trace``: INVERT -> dpo, PUNISH -> npo (both impact-weighted), RETAIN -> kl (weight α);
* ``no_kl``: as ``trace`` without the kl items; ``no_impact``: as ``trace`` with every weight 1;
* ``no_triage``: every pair relabelled to the new policy and DPO'd, impact-weighted (PUNISH pairs,
  which have no right orientation, are dropped); ``naive_dpo``: the same with every weight 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from interp.data.preferences import LabelledPair
from interp.errors import InterpError
from interp.realign.config import RealignConfig
from interp.realign.triage import Action, TriageResult

Kind = Literal["dpo", "npo", "kl"]


@dataclass(frozen=True)
class TrainItem:
    """One weighted term of the objective."""

    kind: Kind
    """``dpo`` (pair as oriented here), ``npo`` (unlearn both responses) or ``kl`` (retain ``chosen``)."""
    pair: LabelledPair
    """The pair, oriented as trained (INVERT pairs already swapped)."""
    weight: float
    """Multiplier of the item's loss: impact weight, 1, or α for kl items."""
    index: int
    """Position of the pair in the triaged list (provenance)."""

    def __post_init__(self) -> None:
        if self.kind not in ("dpo", "npo", "kl"):
            raise ValueError(f"unknown item kind {self.kind!r}")
        if not self.weight >= 0:
            raise ValueError(f"item weights must be >= 0, got {self.weight}")


def plan_updates(pairs: Sequence[LabelledPair], triaged: TriageResult, config: RealignConfig) -> list[TrainItem]:
    """The items that change the model (dpo/npo), weight 1: the ones impact scores are computed for."""
    if len(pairs) != len(triaged.actions):
        raise InterpError(f"{len(pairs)} pairs but {len(triaged.actions)} triage actions")
    out = []
    for i, (pair, action) in enumerate(zip(pairs, triaged.actions, strict=True)):
        if config.variant in ("no_triage", "naive_dpo"):
            if action is Action.PUNISH:
                continue
            out.append(TrainItem("dpo", pair.swapped() if action is Action.INVERT else pair, 1.0, i))
        elif action is Action.INVERT:
            out.append(TrainItem("dpo", pair.swapped(), 1.0, i))
        elif action is Action.PUNISH:
            out.append(TrainItem("npo", pair, 1.0, i))
    return out


def plan_retain(pairs: Sequence[LabelledPair], triaged: TriageResult, config: RealignConfig) -> list[TrainItem]:
    """The kl items (weight α) of the variants that keep a retain term."""
    if config.variant in ("no_triage", "naive_dpo", "no_kl") or config.alpha == 0:
        return []
    keep = list(triaged.indices(Action.RETAIN))
    if config.max_retain is not None and len(keep) > config.max_retain:
        import random

        keep = sorted(random.Random(config.seed).sample(keep, config.max_retain))
    return [TrainItem("kl", pairs[i], config.alpha, i) for i in keep]


def with_weights(items: Sequence[TrainItem], weights: Sequence[float]) -> list[TrainItem]:
    if len(items) != len(weights):
        raise InterpError(f"{len(items)} items but {len(weights)} weights")
    return [replace(it, weight=float(w)) for it, w in zip(items, weights, strict=True)]
