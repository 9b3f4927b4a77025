"""Multiple-choice truthfulness: how likely the model finds correct vs incorrect answers as its reply.

Each candidate answer is scored as the assistant's reply to the question under the chat template:
the sum of the log-probabilities of the answer's tokens (and the per-token mean). MC1 asks whether the
best correct answer beats every incorrect one; MC2 is the normalised probability mass on correct
answers (as in TruthfulQA).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from interp.data.prompts import Prompt, PromptSet
from interp.errors import EmptyPromptClassError, NonFiniteError
from interp.evaluate.batching import sorted_batches
from interp.evaluate.logprobs import suffix_mask, token_logprobs
from interp.models.model import Encoding

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MCRecord:
    """Multiple-choice scores of one question."""

    prompt: str
    """The question."""
    source: str
    """Data set of the question."""
    category: str | None
    """Topic, where known."""
    correct: tuple[str, ...]
    """Correct answers."""
    incorrect: tuple[str, ...]
    """Incorrect answers."""
    correct_logprob: tuple[float, ...]
    """Summed log-probability of each correct answer."""
    incorrect_logprob: tuple[float, ...]
    """Summed log-probability of each incorrect answer."""
    correct_logprob_mean: tuple[float, ...]
    """Per-token mean log-probability of each correct answer."""
    incorrect_logprob_mean: tuple[float, ...]
    """Per-token mean log-probability of each incorrect answer."""

    @property
    def mc1(self) -> bool:
        """Best correct answer strictly beats every incorrect one (summed log-probability)."""
        return max(self.correct_logprob) > max(self.incorrect_logprob)

    @property
    def mc1_norm(self) -> bool:
        """MC1 with length-normalised (per-token mean) log-probabilities."""
        return max(self.correct_logprob_mean) > max(self.incorrect_logprob_mean)

    @property
    def mc2(self) -> float:
        """Probability mass on correct answers, normalised over all candidate answers."""
        return _mass(self.correct_logprob, self.incorrect_logprob)

    @property
    def mc2_norm(self) -> float:
        """MC2 on per-token mean log-probabilities."""
        return _mass(self.correct_logprob_mean, self.incorrect_logprob_mean)

    def to_dict(self) -> dict:
        return asdict(self) | {"mc1": self.mc1, "mc1_norm": self.mc1_norm, "mc2": self.mc2,
                               "mc2_norm": self.mc2_norm}


def _mass(good: Sequence[float], bad: Sequence[float]) -> float:
    all_lp = torch.tensor([*good, *bad], dtype=torch.float64)
    return float(torch.softmax(all_lp, 0)[: len(good)].sum())


def answer_token_ids(
    model, question: str, answer: str, system: str | None = None
) -> tuple[list[int], list[int]]:
    """Token ids of the chat prefix (up to the assistant header) and of the answer, tokenized apart.

    Tokenizing them apart is what generation sees: the model produces the answer after the header.
    """
    tok = model.tokenizer
    prefix = tok.encode(model.chat(question, system=system), add_special_tokens=False)
    ans = tok.encode(answer, add_special_tokens=False)
    if not ans:
        raise ValueError(f"answer {answer!r} to {question!r} encodes to no tokens")
    return prefix, ans


@torch.no_grad()
def answer_logprobs(
    model,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 16,
    system: str | None = None,
    progress: bool = False,
) -> list[tuple[float, int]]:
    """(summed log-probability, token count) of each (question, answer) pair, in one padded batch each.

    Hooks attached with ``model.hooks`` apply.
    """
    seqs = [answer_token_ids(model, q, a, system) for q, a in pairs]
    lengths = [len(p) + len(a) for p, a in seqs]
    pad = model.tokenizer.pad_token_id or 0
    out: list[tuple[float, int]] = [(math.nan, 0)] * len(seqs)
    for idx in tqdm(sorted_batches(lengths, batch_size), desc="answer log-probs", disable=not progress):
        width = max(lengths[i] for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):  # left padding: every answer ends at the last position
            row = seqs[i][0] + seqs[i][1]
            ids[r, width - len(row) :] = torch.tensor(row)
            mask[r, width - len(row) :] = 1
        n_B = torch.tensor([len(seqs[i][1]) for i in idx])
        logits = model.logits(Encoding(ids, mask).to(model.device))
        lp_BT = token_logprobs(logits, ids, suffix_mask(n_B, width)).cpu()
        for r, i in enumerate(idx):
            k = len(seqs[i][1])
            out[i] = (float(lp_BT[r, -k:].sum()), k)  # the answer's own k terms, summed as before
    bad = [i for i, (lp, _) in enumerate(out) if not math.isfinite(lp)]
    if bad:
        q, a = pairs[bad[0]]
        raise NonFiniteError(f"answer log-probability is not finite for {len(bad)} of {len(out)} pairs "
                             f"(first: answer {a!r} to {q!r})")
    return out


def _usable(p: Prompt) -> bool:
    return bool(p.correct) and bool(p.incorrect)


def mc_scores(
    model, prompts: PromptSet, batch_size: int = 16, system: str | None = None, progress: bool = False
) -> list[MCRecord]:
    """Multiple-choice scores of every prompt that has correct and incorrect answers.

    All candidate answers of all questions go through length-sorted padded batches together.
    Prompts without both kinds of answer are skipped (logged); none usable raises EmptyPromptClassError.
    """
    items = [p for p in prompts if _usable(p)]
    if len(items) < len(prompts):
        log.warning("mc_scores: skipping %d of %d prompts without correct and incorrect answers",
                    len(prompts) - len(items), len(prompts))
    if not items:
        raise EmptyPromptClassError(
            f"prompt set {prompts.name!r} has no prompts with both correct and incorrect answers"
        )
    pairs = [(p.text, a) for p in items for a in (*p.correct, *p.incorrect)]
    scores = answer_logprobs(model, pairs, batch_size=batch_size, system=system, progress=progress)
    records, k = [], 0
    for p in items:
        good = scores[k : k + len(p.correct)]
        k += len(p.correct)
        bad = scores[k : k + len(p.incorrect)]
        k += len(p.incorrect)
        records.append(MCRecord(
            prompt=p.text, source=p.source, category=p.category, correct=p.correct, incorrect=p.incorrect,
            correct_logprob=tuple(lp for lp, _ in good), incorrect_logprob=tuple(lp for lp, _ in bad),
            correct_logprob_mean=tuple(lp / n for lp, n in good),
            incorrect_logprob_mean=tuple(lp / n for lp, n in bad),
        ))
    return records
