"""Training callback: NTK class-similarity means at checkpoints (the DCR paper's Fig. on ||K_t||_F)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from interp.data import PromptSet
from interp.models import Model
from interp.ntk.config import NTKConfig
from interp.ntk.similarity import kernel_similarity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KernelRecord:
    """One class-pair mean at one training step."""

    step: int
    """Optimizer step at which the kernel was measured."""
    pair: tuple[str, str]
    """(class of x', class of x)."""
    value: float
    """Mean normalised similarity S(x', x) over the pair's prompts."""


class KernelCallback:
    """Call as ``callback(model, step)``; measures every ``every_n_steps`` steps (and at step 0).

    Records ``ntk_similarity`` (the paper's ||K(x',x)|| / ||K(x',x')||) per class pair; with
    ``symmetric`` also ``ntk_similarity_sym`` (||K(x',x)|| / sqrt(||K(x',x')|| ||K(x,x)||)) with
    ``low``/``high`` percentile-bootstrap bounds over prompts (``n_boot`` resamples).

    The model's train/eval mode, ``requires_grad`` flags and ``.grad`` buffers are left as found.
    """

    def __init__(self, prompts: PromptSet, config: NTKConfig = NTKConfig(), every_n_steps: int = 1,
                 pairs: list[tuple[str, str]] | None = None, symmetric: bool = False, n_boot: int = 200) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.prompts, self.config, self.every_n_steps, self.pairs = prompts, config, every_n_steps, pairs
        self.symmetric, self.n_boot = symmetric, n_boot
        self.records: list[KernelRecord] = []

    def __call__(self, model: Model, step: int) -> list[dict]:
        """Measure (on schedule) and return the new records in the trainer's history format."""
        if step % self.every_n_steps:
            return []
        grads = [(p, p.grad) for p in model.hf.parameters()]
        try:
            km = kernel_similarity(model, self.prompts, self.config, progress=False)
        finally:
            for p, g in grads:  # autograd.grad never touches .grad; this guards against future changes
                p.grad = g
        new = [KernelRecord(step, pair, value) for pair, value in km.class_means(self.pairs).items()]
        for r in new:
            log.info("step %d: NTK similarity %s = %.4f", step, r.pair, r.value)
        self.records += new
        out = [{"step": r.step, "metric": "ntk_similarity", "label": f"{r.pair[0]} x {r.pair[1]}",
                "value": r.value} for r in new]
        if not self.symmetric:
            return out
        # beside the paper's ratio, the symmetric one (blind to each prompt's own norm) with bootstrap CIs
        stats = km.class_stats("symmetric", n_boot=self.n_boot, seed=step)
        wanted = set(self.pairs) if self.pairs is not None else None
        out += [{"step": step, "metric": "ntk_similarity_sym", "label": f"{a} x {b}", "value": s.mean,
                 "low": s.low, "high": s.high} for (a, b), s in stats.pairs.items()
                if wanted is None or (a, b) in wanted]
        return out

    def to_records(self) -> list[dict]:
        return [{"step": r.step, "pair": list(r.pair), "value": r.value} for r in self.records]
