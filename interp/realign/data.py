"""Labelled pairs from the built-in prompt sets, for re-alignment experiments.

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


def builtin_pairs(
    model, old_policy: Policy | PolicyFn, labels: Sequence[str] = ("seemingly_harmful", "harmless"),
    max_per_label: int | None = None, answer_tokens: int = 64, seed: int = 0,
) -> list[LabelledPair]:
    """Pairs on built-in training prompts; ``old_policy`` says which reply was preferred.

    Prompts whose old requirement is ``any`` get the helpful answer as chosen. Prompts without a
    reference answer are answered by ``model`` (greedy, ``answer_tokens`` new tokens).
    """
    from interp.evaluate.generate import generate

    prompts = builtin_training_prompts(labels, max_per_label, seed)
    missing = [p.text for p in prompts if not p.response]
    own = dict(zip(missing, generate(model, missing, max_new_tokens=answer_tokens, progress=False), strict=True)) \
        if missing else {}
    fallback = "I'd be glad to help with that."  # a tiny random model can reply with nothing printable

    def refuse(p) -> bool:
        return requirement_of(old_policy, prompt_metadata(p)) == "refuse"

    return refusal_pairs(prompts, refuse, answer=lambda p: own.get(p.text, "").strip() or fallback)
