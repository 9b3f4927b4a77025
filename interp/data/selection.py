"""What an analysis or recipe fits on and what it scores on, checkable against the one held-out split.

Every analysis script and training recipe exposes a ``data_selection(...)`` returning a
:class:`DataSelection`; ``tests/test_heldout_disjoint.py`` builds each one for every seed and asserts
:meth:`DataSelection.leaks` is empty: nothing fit, trained, selected or validated on is in the held-out
half (:attr:`interp.data.prompts.Prompt.heldout`), and everything scored is.
"""

from __future__ import annotations

from dataclasses import dataclass

from interp.data.prompts import PromptSet


@dataclass(frozen=True)
class DataSelection:
    """Named prompt pools of one analysis: ``train`` (anything fit on) and ``evaluation`` (scored)."""

    name: str
    """The analysis or recipe."""
    train: dict[str, PromptSet]
    """Every pool used to train, fit, select or validate (directions, head scores, SAE corpora, ...)."""
    evaluation: dict[str, PromptSet]
    """Every pool whose results are reported."""

    def leaks(self) -> list[str]:
        """Descriptions of violations (empty when the selection respects the held-out split)."""
        out = []
        for pool, ps in self.train.items():
            bad = [p for p in ps if p.heldout]
            if bad:
                out.append(f"{self.name}: {len(bad)} held-out prompt(s) in training pool {pool!r}, "
                           f"e.g. {bad[0].text[:60]!r}")
        for pool, ps in self.evaluation.items():
            bad = [p for p in ps if not p.heldout]
            if bad:
                out.append(f"{self.name}: {len(bad)} training-half prompt(s) in evaluation pool {pool!r}, "
                           f"e.g. {bad[0].text[:60]!r}")
        return out

    def check(self) -> DataSelection:
        """Raise ``ValueError`` listing every leak; return self when there is none."""
        leaks = self.leaks()
        if leaks:
            raise ValueError("held-out split violated:\n  " + "\n  ".join(leaks))
        return self
