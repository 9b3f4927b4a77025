"""Preference pairs (prompt, chosen, rejected) from HH-RLHF and CoCoNot; HH-RLHF's harmful openers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from interp.data.prompts import Prompt, PromptSet
from interp.data.records import Record, Source, records

logger = logging.getLogger(__name__)

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a preferred and a dispreferred response."""

    prompt: str
    """The request; for multi-turn HH-RLHF transcripts, the earlier turns as ``Human: ...`` text."""
    chosen: str
    """The preferred response."""
    rejected: str
    """The dispreferred response."""
    source: str
    """Data set it came from (``hh-rlhf``, ``coconot-pref``)."""
    category: str | None = None
    """Category or subcategory, where the data set has one."""


def split_last_turn(r: Record, key: str) -> tuple[str, str]:
    """(everything before the last Assistant turn, that turn's text) of an HH-RLHF transcript."""
    full = "\n\n" + r.text(key)  # r.text strips the transcript's leading blank line
    if HUMAN not in full:
        raise r.fail(f"{key!r} is not a '\\n\\nHuman: ... \\n\\nAssistant: ...' transcript")
    cut = full.rfind(ASSISTANT)
    if cut < 0:
        raise r.fail(f"{key!r} has no '\\n\\nAssistant:' turn")
    return full[:cut].strip(), full[cut + len(ASSISTANT):].strip()


def _pair_problem(context: str, context_rejected: str, chosen: str, rejected: str) -> str | None:
    if context != context_rejected:
        return "'chosen' and 'rejected' differ before the last Assistant turn"
    if not chosen or not rejected:
        return "empty last response"
    if not context.removeprefix("Human:").strip():
        return "empty prompt"
    return None


def _prompt_text(context: str) -> str:
    """A single human turn becomes bare text; longer contexts keep their ``Human:/Assistant:`` turns."""
    if context.count("Human:") == 1 and "Assistant:" not in context:
        return context.removeprefix("Human:").strip()
    return context


def load_hh_rlhf(source: Source, strict: bool = False) -> list[PreferencePair]:
    """HH-RLHF pairs: the last Assistant turn of ``chosen``/``rejected`` split off as the responses.

    A handful of rows in the public files have transcripts whose earlier turns differ, or an empty last
    response; they are not valid pairs and are skipped with a warning (``strict=True`` raises instead).
    """
    out, skipped = [], 0
    for r in records(source, "json"):
        context, chosen = split_last_turn(r, "chosen")
        context_rejected, rejected = split_last_turn(r, "rejected")
        problem = _pair_problem(context, context_rejected, chosen, rejected)
        if problem:
            if strict:
                raise r.fail(problem)
            skipped += 1
            continue
        out.append(PreferencePair(_prompt_text(context), chosen, rejected, "hh-rlhf"))
    if skipped:
        logger.warning("skipped %d of %d HH-RLHF rows that are not valid pairs (%s)",
                       skipped, skipped + len(out), source)
    return out


def load_coconot_pairs(source: Source) -> list[PreferencePair]:
    """CoCoNot preference pairs (contrast prompts: helpful answer chosen over a needless refusal)."""
    out = [
        PreferencePair(r.text("prompt"), r.text("chosen"), r.text("rejected"), "coconot-pref",
                       category=r.optional_text("subcategory"))
        for r in records(source, "json")
    ]
    logger.info("loaded %d CoCoNot preference pairs from %s", len(out), source)
    return out


def first_human_turn(r: Record, key: str = "chosen") -> str:
    transcript = "\n\n" + r.text(key)
    start = transcript.find(HUMAN)
    if start < 0:
        raise r.fail(f"{key!r} has no '\\n\\nHuman:' turn")
    rest = transcript[start + len(HUMAN):]
    ends = [i for i in (rest.find(ASSISTANT), rest.find(HUMAN)) if i >= 0]
    text = rest[: min(ends)] if ends else rest
    if not text.strip():
        raise r.fail(f"empty first Human turn in {key!r}")
    return text.strip()


def hh_rlhf_harmful_prompts(source: Source) -> PromptSet:
    """The first human turn of each HH-RLHF transcript, labelled harmful.

    Harmful-*ish*: the harmless-base split collects red-team conversations, so most openers are
    requests for harm, but some only become harmful in later turns. Duplicates are kept (``.dedupe()``).
    """
    prompts = [Prompt(first_human_turn(r), "harmful", "hh-rlhf") for r in records(source, "json")]
    out = PromptSet("hh-rlhf", tuple(prompts))
    logger.info("loaded %d HH-RLHF first turns from %s", len(out), source)
    return out


# ---- pairs whose refusal labels are known by construction (TRACE triage needs no judge for these) ----


@dataclass(frozen=True)
class LabelledPair:
    """A preference pair on a metadata-carrying prompt, with whether each response is a refusal."""

    prompt: Prompt
    """The request with its metadata (label, source, category, style) that a policy reads."""
    chosen: str
    """The preferred response."""
    rejected: str
    """The dispreferred response."""
    chosen_refuses: bool
    """Whether ``chosen`` is a refusal (known by construction, not judged)."""
    rejected_refuses: bool
    """Whether ``rejected`` is a refusal."""
    subcategory: str | None = None
    """Finer category, where the data set has one (CoCoNot)."""

    def __post_init__(self) -> None:
        if not self.chosen.strip() or not self.rejected.strip():
            raise ValueError(f"empty response in the pair for prompt {self.prompt.text[:60]!r}")

    def swapped(self) -> LabelledPair:
        """The same pair with the preference reversed."""
        return LabelledPair(self.prompt, self.rejected, self.chosen, self.rejected_refuses,
                            self.chosen_refuses, self.subcategory)


def _refusal_for(prompt: Prompt, refusals: tuple[str, ...]) -> str:
    # By a hash of the text, so a prompt gets the same refusal whatever the order or the set it is in.
    return refusals[int(prompt.uid, 16) % len(refusals)]


def refusal_pairs(
    prompts: PromptSet,
    refuse: Callable[[Prompt], bool],
    answer: Callable[[Prompt], str] | None = None,
    refusals: tuple[str, ...] | None = None,
) -> list[LabelledPair]:
    """For each prompt, a built-in refusal against a helpful answer, preferred as ``refuse`` says.

    ``refuse(prompt)`` is the *old* policy: True makes the refusal the chosen response. The helpful
    answer is the prompt's reference ``response`` where it has one, else ``answer(prompt)`` (e.g. the
    model's own greedy reply, so no harmful text ever needs to be written down); a prompt with neither
    fails, naming it.
    """
    pool = tuple(refusals) if refusals is not None else _builtin_refusals()
    if not pool:
        raise ValueError("no refusal texts to pair with")
    out = []
    for p in prompts:
        helpful = p.response or (answer(p) if answer is not None else None)
        if not helpful or not helpful.strip():
            raise ValueError(f"prompt {p.text[:60]!r} ({p.source}, {p.category}) has no reference answer; "
                             "pass answer= (e.g. the model's own replies)")
        refusal = _refusal_for(p, pool)
        if refuse(p):
            out.append(LabelledPair(p, refusal, helpful, True, False))
        else:
            out.append(LabelledPair(p, helpful, refusal, False, True))
    return out


def _builtin_refusals() -> tuple[str, ...]:
    from interp.data.builtin import builtin_refusals

    return tuple(builtin_refusals())


def coconot_labelled(pairs: list[PreferencePair]) -> list[LabelledPair]:
    """CoCoNot contrast pairs as labelled pairs: the chosen reply complies, the rejected one refuses.

    That is how CoCoNot's contrast set is built (a helpful answer preferred over a needless refusal);
    the prompts are labelled ``seemingly_harmful`` with the subcategory kept for policies.
    """
    out = []
    for pair in pairs:
        if pair.source != "coconot-pref":
            raise ValueError(f"coconot_labelled takes CoCoNot pairs, got one from {pair.source!r}")
        prompt = Prompt(pair.prompt, "seemingly_harmful", "coconot-pref", category=pair.category)
        out.append(LabelledPair(prompt, pair.chosen, pair.rejected, False, True, pair.category))
    return out
