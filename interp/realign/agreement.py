"""Target-policy agreement: the share of replies that do what the new policy requires of their prompt.

Replies are greedy generations judged by the workbench's refusal detector (the one the evaluation
harness uses). Prompts are grouped as *changed* (the new policy requires something other than the old
one) and *unchanged*; prompts whose new requirement is ``any`` are not counted. Intervals are Wilson
95% intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

from interp.data.prompts import PromptSet
from interp.realign.policy import Policy, PolicyFn, prompt_metadata, requirement_of
from interp.realign.triage import violates


@dataclass(frozen=True)
class GroupAgreement:
    """Agreement of one group of prompts."""

    n: int
    """Prompts counted."""
    agree: int
    """Replies that follow the new policy."""
    rate: float
    """``agree / n`` (NaN when n is 0)."""
    ci: tuple[float, float]
    """Wilson 95% interval of the rate."""


@dataclass(frozen=True)
class AgreementResult:
    """Agreement with the new policy on changed and unchanged prompts, and per category."""

    changed: GroupAgreement
    unchanged: GroupAgreement
    by_category: dict[str, GroupAgreement]
    """Keyed ``label/category``."""
    records: tuple[dict, ...]
    """Per prompt: uid, label, category, requirement, changed, refused, agrees (no reply text)."""


def _group(flags: list[bool]) -> GroupAgreement:
    from scipy.stats import binomtest

    n, k = len(flags), sum(flags)
    if n == 0:
        return GroupAgreement(0, 0, float("nan"), (float("nan"), float("nan")))
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return GroupAgreement(n, k, k / n, (float(ci.low), float(ci.high)))


def policy_agreement(
    model, prompts: PromptSet, new: Policy | PolicyFn, old: Policy | PolicyFn, max_new_tokens: int = 48,
) -> AgreementResult:
    from interp.evaluate.generate import generate
    from interp.evaluate.refusal import is_refusal

    wanted = [p for p in prompts if requirement_of(new, prompt_metadata(p)) != "any"]
    replies = generate(model, [p.text for p in wanted], max_new_tokens=max_new_tokens, progress=False)
    records = []
    for p, reply in zip(wanted, replies, strict=True):
        need, before = requirement_of(new, prompt_metadata(p)), requirement_of(old, prompt_metadata(p))
        refused = is_refusal(reply)
        records.append({"uid": p.uid, "label": p.label, "category": p.category, "requirement": need,
                        "changed": need != before, "refused": refused, "agrees": not violates(refused, need)})
    cats = sorted({f"{r['label']}/{r['category']}" for r in records})
    return AgreementResult(
        _group([r["agrees"] for r in records if r["changed"]]),
        _group([r["agrees"] for r in records if not r["changed"]]),
        {c: _group([r["agrees"] for r in records if f"{r['label']}/{r['category']}" == c]) for c in cats},
        tuple(records))
