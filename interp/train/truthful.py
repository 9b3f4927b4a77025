"""Truthfulness fine-tuning: SFT on factual questions answered with their correct answer.

With a :class:`interp.train.constraints.SubspaceConstraint` the same fine-tune preserves an exported
refusal subspace (every update of the weights that write into it is projected off it); the whole-model
variants (residual writers, null-space projection, anchor loss, Safe-LoRA) are planned by
:func:`interp.train.preserving.plan_variant`.
"""

from __future__ import annotations

import random
from pathlib import Path

from interp.data.prompts import PromptSet
from interp.errors import EmptyPromptClassError
from interp.train.examples import SFTExample
from interp.train.sft import SFTConfig, TrainResult, UpdateConstraint, train_sft


def truthful_examples(factual: PromptSet, n: int | None = None, seed: int = 0) -> list[SFTExample]:
    """(question, first correct answer) pairs from factual prompts that have one."""
    usable = factual.filter(lambda p: p.label == "factual" and bool(p.correct)).dedupe().sample(n, seed)
    if not len(usable):
        raise EmptyPromptClassError(f"{factual.name!r} has no factual prompts with a correct answer")
    examples = [SFTExample(p.text, p.correct[0], "factual") for p in usable]
    random.Random(seed).shuffle(examples)
    return examples


def truthful_finetune(
    model,
    factual: PromptSet,
    config: SFTConfig,
    out_dir: str | Path,
    constraint: UpdateConstraint | None = None,
    n: int | None = None,
    provenance: dict | None = None,
) -> TrainResult:
    """Fine-tune ``model`` in place towards correct answers; checkpoint in ``out_dir/model``."""
    examples = truthful_examples(factual, n, config.seed)
    meta = {"recipe": "truthful", "constrained": constraint is not None, "data": factual.name,
            **(provenance or {})}
    return train_sft(model, examples, config, out_dir, constraint=constraint, provenance=meta)
