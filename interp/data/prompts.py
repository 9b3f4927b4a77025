"""Typed prompt sets with deterministic, order-independent train/test splits."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from interp.errors import EmptyPromptClassError

HELDOUT_FRACTION = 0.3
"""Share of every prompt source held out for evaluation: the workbench's one held-out split."""
HELDOUT_SEED = 0
"""Seed of the held-out split's text hash. Never varied: training seeds subdivide the training half."""

Label = Literal["harmful", "seemingly_harmful", "harmless", "factual"]
LABELS: tuple[str, ...] = ("harmful", "seemingly_harmful", "harmless", "factual")


@dataclass(frozen=True)
class Prompt:
    """One prompt with its class and optional references."""

    text: str
    """The user request or question (not chat-formatted)."""
    label: Label
    """Class: harmful, seemingly_harmful, harmless or factual."""
    source: str = "builtin"
    """Data set it came from, e.g. ``advbench`` or ``builtin``."""
    category: str | None = None
    """Harm domain, XSTest type, topic, ..."""
    style: str | None = None
    """Phrasing style (imperative, question, first_person, ...), where known."""
    correct: tuple[str, ...] = ()
    """Correct reference answers (factual items)."""
    incorrect: tuple[str, ...] = ()
    """Plausible incorrect answers (factual items)."""
    response: str | None = None
    """A reference response, where the data set has one (a helpful answer, a refusal, ...)."""

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"prompt text must be a non-empty string (source {self.source!r})")
        if self.label not in LABELS:
            raise ValueError(f"unknown label {self.label!r}; expected one of {LABELS}")

    @property
    def uid(self) -> str:
        """Stable identifier from source and text (independent of file order)."""
        return hashlib.sha1(f"{self.source}\x00{self.text}".encode()).hexdigest()[:12]

    @property
    def heldout(self) -> bool:
        """Whether this prompt is in the workbench's held-out (evaluation) half, by its text alone."""
        return self.split_key(HELDOUT_SEED) < HELDOUT_FRACTION

    def split_key(self, seed: int | str) -> float:
        digest = hashlib.sha1(f"{seed}\x00{self.text.strip().lower()}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Split:
    """Two disjoint parts of a prompt set; unpacks as ``train, test = ps.split()``."""

    train: PromptSet
    test: PromptSet

    def __iter__(self) -> Iterator[PromptSet]:
        return iter((self.train, self.test))


@dataclass(frozen=True)
class PromptSet:
    """An immutable, named collection of prompts."""

    name: str
    prompts: tuple[Prompt, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))

    def __len__(self) -> int:
        return len(self.prompts)

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    def __getitem__(self, i: int) -> Prompt:
        return self.prompts[i]

    def __add__(self, other: PromptSet) -> PromptSet:
        return PromptSet(f"{self.name}+{other.name}", self.prompts + other.prompts)

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.prompts]

    def counts(self, key: str = "label") -> dict[str, int]:
        return dict(Counter(getattr(p, key) for p in self.prompts))

    def filter(self, pred, name: str | None = None) -> PromptSet:
        return PromptSet(name or self.name, tuple(p for p in self.prompts if pred(p)))

    def by_label(self, label: str, require: bool = True) -> PromptSet:
        """Prompts of one class; an empty class fails here, before any model runs."""
        out = self.filter(lambda p: p.label == label, f"{self.name}[{label}]")
        if require and not out:
            raise EmptyPromptClassError(
                f"prompt set {self.name!r} has no {label!r} prompts (it has {self.counts() or 'none'})"
            )
        return out

    def require(self, *labels: str) -> PromptSet:
        for label in labels:
            self.by_label(label)
        return self

    def split(self) -> Split:
        """The workbench's one held-out split: ``test`` is evaluation, ``train`` everything else may use.

        By a hash of each prompt's text (:attr:`Prompt.heldout`), so the same text lands on the same side
        in every source, order and process. It takes no arguments on purpose: analyses that need
        validation data subdivide the training half with :meth:`partition`, never the whole set.
        """
        test = tuple(p for p in self.prompts if p.heldout)
        train = tuple(p for p in self.prompts if not p.heldout)
        return Split(PromptSet(f"{self.name}:train", train), PromptSet(f"{self.name}:test", test))

    def partition(self, fraction: float, seed: int) -> Split:
        """Subdivide a *training* half (e.g. fit vs validation): ``test`` gets ~``fraction`` of it.

        Refuses a set holding held-out prompts, so a validation split can never reach the evaluation half.
        """
        leaked = [p for p in self.prompts if p.heldout]
        if leaked:
            raise ValueError(f"partition of {self.name!r}: {len(leaked)} prompt(s) are in the held-out half "
                             f"(e.g. {leaked[0].text[:60]!r}); partition the .split().train half instead")
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        # A hash of its own: keyed like the held-out split, seed 0 would put nothing below 0.3 here.
        key = f"partition\x00{seed}"
        test = tuple(p for p in self.prompts if p.split_key(key) < fraction)
        train = tuple(p for p in self.prompts if p.split_key(key) >= fraction)
        return Split(PromptSet(f"{self.name}:train", train), PromptSet(f"{self.name}:test", test))

    def sample(self, n: int | None, seed: int = 0) -> PromptSet:
        """At most ``n`` prompts, a seeded random subset (order kept); ``None`` keeps all."""
        if n is None or n >= len(self):
            return self
        idx = sorted(random.Random(seed).sample(range(len(self)), n))
        return PromptSet(self.name, tuple(self.prompts[i] for i in idx))

    def dedupe(self) -> PromptSet:
        seen: set[str] = set()
        keep = []
        for p in self.prompts:
            key = p.text.strip().lower()
            if key not in seen:
                seen.add(key)
                keep.append(p)
        return PromptSet(self.name, tuple(keep))

    def relabel(self, label: Label) -> PromptSet:
        return PromptSet(self.name, tuple(replace(p, label=label) for p in self.prompts))

    def without(self, others: Iterable[Prompt] | PromptSet) -> PromptSet:
        """Drop prompts whose text appears in ``others`` (case-insensitive): no train/eval overlap."""
        banned = {p.text.strip().lower() for p in others}
        return self.filter(lambda p: p.text.strip().lower() not in banned)

    def to_records(self) -> list[dict]:
        from dataclasses import asdict

        return [asdict(p) | {"uid": p.uid} for p in self.prompts]


def concat(name: str, sets: Sequence[PromptSet]) -> PromptSet:
    return PromptSet(name, tuple(p for s in sets for p in s.prompts))
