"""Expert isolation: each expert's loss on held-out harmful text of every domain (the domain x expert matrix).

An expert isolates its domain's knowledge when its loss on its own domain's held-out answers is below
its loss on the other domains' (the diagonal is the row minimum), and below the base model's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from interp.train.examples import SFTExample, collate
from interp.train.loss import response_loss


@torch.no_grad()
def mean_response_loss(model, examples: Sequence[SFTExample], batch_size: int = 8, max_length: int = 256) -> float:
    """Token-weighted mean response loss (nats per token) of ``examples`` under the current weights."""
    if not examples:
        raise ValueError("no examples to score")
    total, tokens = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = collate(model, list(examples[i: i + batch_size]), max_length).to(model.device)
        n = batch.n_target_tokens
        if n:
            total += float(response_loss(model, batch)) * n
            tokens += n
    return total / tokens


@dataclass(frozen=True)
class LossMatrix:
    """``loss[row][col]``: mean held-out response loss of variant ``row`` on domain ``col``."""

    rows: list[str]
    """Variants (``base`` then ``expert:<domain>``)."""
    domains: list[str]
    loss: list[list[float]]
    n_examples: dict[str, int]
    """Held-out examples per domain."""

    def diagonal_is_row_min(self) -> dict[str, bool]:
        """Per expert: is its own domain its lowest-loss domain?"""
        out = {}
        for r, row in zip(self.rows, self.loss, strict=True):
            if r.startswith("expert:"):
                d = r.split(":", 1)[1]
                out[d] = min(range(len(row)), key=row.__getitem__) == self.domains.index(d)
        return out

    def to_dict(self) -> dict:
        return asdict(self) | {"diagonal_is_row_min": self.diagonal_is_row_min()}


def loss_matrix(moe, heldout: Mapping[str, Sequence[SFTExample]], batch_size: int = 8,
                max_length: int = 256) -> LossMatrix:
    rows = ["base"] + [f"expert:{e}" for e in moe.experts]
    domains = list(heldout)
    loss = []
    for r in rows:
        with moe.variant(r):
            loss.append([mean_response_loss(moe.model, heldout[d], batch_size, max_length) for d in domains])
    return LossMatrix(rows, domains, loss, {d: len(v) for d, v in heldout.items()})
