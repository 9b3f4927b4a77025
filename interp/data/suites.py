"""Standard collections of prompt sets: what alignment trains on and what evaluation scores.

Every set is split once by :meth:`PromptSet.split`, the workbench's one held-out split (a hash of the
text; see :data:`interp.data.prompts.HELDOUT_FRACTION`), so training code takes ``.train`` halves and
evaluation ``.test`` halves and the two never meet. Benchmarks come
from a data directory laid out like the shared one (see :func:`interp.data.registry.find_benchmark`);
without one, only the built-in sets are used.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal

from interp.data.builtin import builtin_prompts
from interp.data.prompts import PromptSet, concat
from interp.data.registry import find_benchmark, load_prompts
from interp.errors import DataFormatError

log = logging.getLogger(__name__)

# Which benchmark feeds which role. Files held out entirely from training are marked eval_only.
SUITE: dict[str, tuple[str, ...]] = {
    "harmful": ("advbench", "harmbench-test", "catqa", "jbb"),
    "seemingly_harmful": ("xstest", "oktest", "coconot-contrast", "jbb-benign"),
    "harmless": ("alpaca-val",),
    "factual": ("truthfulqa-mc",),
}
EVAL_ONLY = {"alpaca-test"}


@dataclass(frozen=True)
class Suite:
    """Per-source prompt sets of one class, split into train and test halves."""

    label: str
    sources: dict[str, PromptSet]

    def train(self) -> PromptSet:
        return concat(f"{self.label}:train", [ps.split().train for ps in self.sources.values()])

    def test(self, per_source: int | None = None, seed: int = 0) -> dict[str, PromptSet]:
        """Held-out half of each source (all of it by default; ``per_source`` subsamples, seeded)."""
        return {name: ps.split().test.sample(per_source, seed) for name, ps in self.sources.items()}


def _load(label: str, name: str, data_dir, missing: Literal["error", "skip"]) -> PromptSet | None:
    try:
        find_benchmark(data_dir, name)
    except DataFormatError as exc:
        if missing == "error":
            raise DataFormatError(
                f"the {label!r} suite needs benchmark {name!r}, not found in {data_dir} ({exc}); "
                f"pass missing='skip' to evaluate without it") from exc
        log.warning("benchmark %s not found in %s (%s); skipping it", name, data_dir, exc)
        return None
    ps = load_prompts(name, data_dir)
    return ps.filter(lambda p: p.label == label, f"{name}")


def load_suite(label: str, data_dir: str | os.PathLike | None = None,
               missing: Literal["error", "skip"] = "error") -> Suite:
    """Built-in prompts of ``label`` plus that class's benchmarks (:data:`SUITE`) from ``data_dir``.

    A benchmark missing from ``data_dir`` is an error (a silently smaller suite changes every number);
    ``missing="skip"`` drops it with a warning instead.
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    sources = {"builtin": builtin_prompts(label)}
    if data_dir is not None:
        for name in SUITE.get(label, ()):
            ps = _load(label, name, data_dir, missing)
            if ps is not None and len(ps):
                sources[name] = ps
    return Suite(label, sources)
