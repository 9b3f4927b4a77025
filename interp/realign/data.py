"""Labelled pairs from category-labelled prompt sets, for re-alignment experiments.

Each training-half prompt gets a built-in refusal and a helpful answer, preferred as yesterday's policy
says. Helpful answers are the shipped reference answers where there are some and otherwise the model's
own greedy replies (self-distilled), so no answer text is ever written into the repository.
"""

from __future__ import annotations

from collections.abc import Sequence

from interp.data.builtin import builtin_prompts
from interp.data.preferences import LabelledPair, refusal_pairs
from interp.data.prompts import PromptSet, concat
from interp.realign.policy import Policy, PolicyFn, prompt_metadata, requirement_of


def builtin_training_prompts(labels: Sequence[str], max_per_label: int | None = None, seed: int = 0) -> PromptSet:
    """The training half of the built-in prompts of ``labels`` (held-out prompts never appear)."""
    sets = [builtin_prompts(lab).split().train.sample(max_per_label, seed) for lab in labels]
    return concat("builtin:train", sets)


def training_prompts(
    specs: Sequence[str], labels: Sequence[str] | None = None, max_per_label: int | None = None, seed: int = 0,
    data_dir=None,
) -> PromptSet:
    """The training half of the prompt sets ``specs`` (registry specs, e.g. ``xstest?label=seemingly_harmful``),
    only ``labels`` (None: all), at most ``max_per_label`` per class (seeded)."""
    from interp.data.registry import load_prompts

    train = concat("+".join(specs), [load_prompts(s, data_dir).split().train for s in specs])
    if labels is not None:
        train = train.filter(lambda p: p.label in labels)
    if not len(train):
        raise ValueError(f"no training-half prompts of labels {list(labels or [])} in {list(specs)}")
    per = [train.by_label(lab).sample(max_per_label, seed) for lab in sorted(train.counts())]
    return concat(train.name, per)


def builtin_pairs(
    model, old_policy: Policy | PolicyFn, labels: Sequence[str] = ("seemingly_harmful", "harmless"),
    max_per_label: int | None = None, answer_tokens: int = 64, seed: int = 0,
) -> list[LabelledPair]:
    """Pairs on built-in training prompts; ``old_policy`` says which reply was preferred."""
    return policy_pairs(model, builtin_training_prompts(labels, max_per_label, seed), old_policy, answer_tokens)


def policy_pairs(
    model, prompts: PromptSet, old_policy: Policy | PolicyFn, answer_tokens: int = 64, cache_dir=None,
) -> list[LabelledPair]:
    """A built-in refusal against a helpful answer for every prompt, preferred as ``old_policy`` says.

    Prompts whose old requirement is ``any`` get the helpful answer as chosen. Prompts without a
    reference answer are answered by ``model`` (greedy, ``answer_tokens`` new tokens; cached in
    ``cache_dir`` when given). Pass the model *before* refusal training as ``model`` when the one being
    re-aligned refuses the prompts: a "helpful answer" that is itself a refusal (by the workbench's
    detector) would make a pair of two refusals, so such prompts are dropped (see :func:`dropped_refusals`).
    """
    from pathlib import Path

    from interp.evaluate.refusal import is_refusal
    from interp.train.align import self_distilled

    missing = [p.text for p in prompts if not p.response]
    cache = Path(cache_dir) if cache_dir is not None else None
    own = dict(zip(missing, self_distilled(model, missing, answer_tokens, cache), strict=True)) if missing else {}
    fallback = "I'd be glad to help with that."  # a tiny random model can reply with nothing printable

    def answer(p) -> str:
        return p.response or own.get(p.text, "").strip() or fallback

    def refuse(p) -> bool:
        return requirement_of(old_policy, prompt_metadata(p)) == "refuse"

    usable = prompts.filter(lambda p: not is_refusal(answer(p)))
    return refusal_pairs(usable, refuse, answer=answer)


def dropped_refusals(prompts: PromptSet, pairs: Sequence[LabelledPair]) -> int:
    """How many of ``prompts`` :func:`policy_pairs` dropped because their helpful answer was a refusal."""
    return len(prompts) - len(pairs)
