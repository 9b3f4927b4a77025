"""Triage: what to do with each existing preference pair under a new policy.

TRACE's truth table, with "violates" read off the pair's known refusal labels and the policy's
requirement for its prompt (no judge):

=====================  ======================  ========
chosen violates        rejected violates       action
=====================  ======================  ========
yes                    no                      INVERT  (swap: the rejected reply is now right)
yes                    yes                     PUNISH  (neither is acceptable: unlearn both)
no                     either                  RETAIN  (still right: keep the model where it is)
=====================  ======================  ========
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from interp.data.preferences import LabelledPair
from interp.realign.policy import Policy, PolicyFn, Requirement, prompt_metadata, requirement_of


class Action(StrEnum):
    """What the hybrid objective does with a pair."""

    INVERT = "invert"
    PUNISH = "punish"
    RETAIN = "retain"


def violates(refuses: bool, requirement: Requirement) -> bool:
    """Whether a reply that does (``refuses``) or does not refuse breaks ``requirement``."""
    if requirement == "any":
        return False
    return refuses != (requirement == "refuse")


def action_for(chosen_violates: bool, rejected_violates: bool) -> Action:
    """The truth table in the module docstring."""
    if not chosen_violates:
        return Action.RETAIN
    return Action.PUNISH if rejected_violates else Action.INVERT


def pair_requirement(pair: LabelledPair, policy: Policy | PolicyFn) -> Requirement:
    return requirement_of(policy, prompt_metadata(pair.prompt, pair.subcategory))


def triage_pair(pair: LabelledPair, policy: Policy | PolicyFn) -> Action:
    need = pair_requirement(pair, policy)
    return action_for(violates(pair.chosen_refuses, need), violates(pair.rejected_refuses, need))


def relabelled(pair: LabelledPair, policy: Policy | PolicyFn) -> LabelledPair | None:
    """The pair oriented as the new policy prefers it: swapped if INVERT, as is if RETAIN, None if PUNISH."""
    action = triage_pair(pair, policy)
    if action is Action.PUNISH:
        return None
    return pair.swapped() if action is Action.INVERT else pair


@dataclass(frozen=True)
class TriageResult:
    """The action for every pair, in the pairs' order, with the policy it was made under."""

    actions: tuple[Action, ...]
    """One per pair."""
    policy: str
    """Name of the policy."""

    def indices(self, action: Action) -> list[int]:
        return [i for i, a in enumerate(self.actions) if a is action]

    def counts(self) -> dict[str, int]:
        c = Counter(a.value for a in self.actions)
        return {a.value: c.get(a.value, 0) for a in Action}

    def counts_by(self, pairs: Sequence[LabelledPair], key: str = "category") -> dict[str, dict[str, int]]:
        """Action counts per value of a prompt field (category, label, ...), for the triage figure."""
        out: dict[str, dict[str, int]] = {}
        for pair, action in zip(pairs, self.actions, strict=True):
            group = str(getattr(pair.prompt, key))
            out.setdefault(group, {a.value: 0 for a in Action})[action.value] += 1
        return out


def triage(pairs: Sequence[LabelledPair], policy: Policy | PolicyFn) -> TriageResult:
    name = getattr(policy, "name", None) or getattr(policy, "__name__", "callable")
    return TriageResult(tuple(triage_pair(p, policy) for p in pairs), str(name))
