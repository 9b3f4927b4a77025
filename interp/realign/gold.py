"""The gold batch: pairs labelled right under the new policy, kept apart from the pairs being scored.

The public TRACE code draws its gold batch from the pairs it scores, so a pair's score partly measures
its agreement with itself. Here the gold pairs come from prompts set aside by a hash of their text
(:meth:`Prompt.split_key`, a key of its own) before anything is triaged, and :func:`check_disjoint`
refuses any overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from interp.data.preferences import LabelledPair
from interp.errors import InterpError
from interp.realign.policy import Policy, PolicyFn
from interp.realign.triage import Action, pair_requirement, relabelled, triage_pair, violates


@dataclass(frozen=True)
class GoldSplit:
    """Gold pairs (relabelled to the new policy) and the remaining pairs to triage, score and train."""

    gold: tuple[LabelledPair, ...]
    """Policy-correct pairs: chosen follows the new policy, rejected breaks it."""
    rest: tuple[LabelledPair, ...]
    """Everything else, in the original order."""


def is_policy_correct(pair: LabelledPair, policy: Policy | PolicyFn) -> bool:
    need = pair_requirement(pair, policy)
    return not violates(pair.chosen_refuses, need) and violates(pair.rejected_refuses, need)


def _key(pair: LabelledPair) -> str:
    return pair.prompt.text.strip().lower()


def split_gold(
    pairs: Sequence[LabelledPair], policy: Policy | PolicyFn, fraction: float, seed: int = 0,
    conflicts_only: bool = False,
) -> GoldSplit:
    """Set aside ~``fraction`` of the prompts; their pairs, relabelled, are the gold batch.

    Set-aside pairs that the new policy cannot order (both responses acceptable or both not) are dropped:
    they belong to neither side. ``conflicts_only`` keeps only set-aside pairs the new policy flips
    (triaged INVERT): a gold batch about the change itself, not dominated by the unchanged categories.
    """
    if not 0.0 < fraction < 1.0:
        raise InterpError(f"gold fraction must be in (0, 1), got {fraction}")
    key = f"trace-gold\x00{seed}"
    gold, rest = [], []
    for pair in pairs:
        if pair.prompt.split_key(key) < fraction:
            fixed = relabelled(pair, policy)
            if conflicts_only and triage_pair(pair, policy) is not Action.INVERT:
                continue
            if fixed is not None and is_policy_correct(fixed, policy):
                gold.append(fixed)
        else:
            rest.append(pair)
    if not gold:
        raise InterpError(f"no policy-correct gold pair among the ~{fraction:.0%} of prompts set aside; the "
                          "policy orders none of them (raise the fraction or add pairs the policy decides)")
    return GoldSplit(tuple(gold), tuple(rest))


def check_disjoint(gold: Sequence[LabelledPair], scored: Sequence[LabelledPair]) -> None:
    """Fail if a gold prompt is also among the scored pairs (the score would measure self-agreement)."""
    shared = {_key(p) for p in gold} & {_key(p) for p in scored}
    if shared:
        raise InterpError(f"{len(shared)} prompt(s) are both in the gold batch and among the scored pairs "
                          f"(e.g. {sorted(shared)[0][:60]!r}); draw the gold batch with split_gold")


def check_gold(gold: Sequence[LabelledPair], policy: Policy | PolicyFn) -> None:
    bad = [p for p in gold if not is_policy_correct(p, policy)]
    if bad:
        raise InterpError(f"{len(bad)} gold pair(s) are not policy-correct under the new policy "
                          f"(e.g. {bad[0].prompt.text[:60]!r}); gold chosen must follow it and rejected break it")
