"""TRACE's stages on a list of labelled pairs: set aside gold, triage, score, plan the training items.

Only training-half prompts may be used (:meth:`PromptSet.split`): evaluation prompts are never triaged,
scored or trained on, and a pair on a held-out prompt fails here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from interp.data.preferences import LabelledPair
from interp.errors import InterpError
from interp.realign.config import RealignConfig
from interp.realign.gold import split_gold
from interp.realign.impact import ImpactScores, score_impact
from interp.realign.plan import TrainItem, plan_retain, plan_updates, with_weights
from interp.realign.policy import Policy, PolicyFn
from interp.realign.triage import TriageResult, triage


@dataclass(frozen=True)
class RealignPlan:
    """Everything decided before training: the triage, the scores and the weighted items."""

    pairs: tuple[LabelledPair, ...]
    """The triaged pairs (gold prompts removed), in order."""
    gold: tuple[LabelledPair, ...]
    """The gold batch, relabelled to the new policy."""
    triage: TriageResult
    """Action per pair."""
    updates: tuple[TrainItem, ...]
    """dpo/npo items with their weights (impact weights, or 1 for the unweighted variants)."""
    retain: tuple[TrainItem, ...]
    """kl items (weight α)."""
    impact: ImpactScores | None
    """Scores of ``updates`` (None for variants without impact weights)."""

    @property
    def items(self) -> list[TrainItem]:
        return list(self.updates) + list(self.retain)


def check_training_half(pairs: Sequence[LabelledPair]) -> None:
    leaked = [p for p in pairs if p.prompt.heldout]
    if leaked:
        raise InterpError(f"{len(leaked)} pair(s) are on held-out evaluation prompts (e.g. "
                          f"{leaked[0].prompt.text[:60]!r}); build pairs from PromptSet.split().train only")


def prepare(model, pairs: Sequence[LabelledPair], policy: Policy | PolicyFn, config: RealignConfig,
            score: bool = True) -> RealignPlan:
    """Gold split, triage, update/retain items and (``score`` and the variant uses them) impact weights."""
    check_training_half(pairs)
    split = split_gold(pairs, policy, config.gold_fraction, config.seed, config.gold_scope == "conflicts")
    triaged = triage(split.rest, policy)
    updates = plan_updates(split.rest, triaged, config)
    impact = None
    if config.uses_impact and score:
        impact = score_impact(model, updates, split.gold, config)
        updates = with_weights(updates, impact.weights)
    return RealignPlan(split.rest, split.gold, triaged, tuple(updates),
                       tuple(plan_retain(split.rest, triaged, config)), impact)
