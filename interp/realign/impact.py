"""Alignment impact scores: first-order influence of each update item on the gold loss at θ_ref.

``s_k = <g_gold, g_k>`` with ``g_gold = ∇ mean DPO(gold)`` and ``g_k`` the gradient of item k's own loss
(DPO on the swapped pair for INVERT, NPO(chosen) + NPO(rejected) for PUNISH), both at θ_ref and through
the parameter subset :attr:`RealignConfig.params` (full weight matrices). One SGD step of size η on item
k changes the gold loss by ``-η s_k + O(η²)``: positive scores are the pairs whose training helps the new
policy. Weights: ``w_k = max(s_k, 0) / mean{s_j : s_j > 0}``.

Fixes to the public code's defects, as choices:

* no scale factor γ (it cancelled in the normalisation anyway);
* weights have mean 1 over the pairs that are trained (not sum 1), so the preference terms do not shrink
  like 1/N against ``α·KL``;
* gradients of full weight matrices, not of LoRA B at initialisation (where A's random draw, and so the
  seed, fixes the projection): scores depend on the model and data only;
* the same encoding and loss code as training (:mod:`interp.realign.hybrid`);
* a gold batch disjoint from the scored pairs (:mod:`interp.realign.gold`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.data.preferences import LabelledPair
from interp.errors import NonFiniteError
from interp.realign.config import RealignConfig
from interp.realign.gold import check_disjoint
from interp.realign.hybrid import ItemReference, item_losses, reference_for
from interp.realign.params import only_these_require_grad, select_parameters
from interp.realign.plan import TrainItem


@dataclass(frozen=True)
class ImpactScores:
    """Scores and weights of the update items, in their order, with how they were computed."""

    raw: tuple[float, ...]
    """``<g_gold, g_k>``: first-order decrease of the gold loss per unit SGD step on item k."""
    weights: tuple[float, ...]
    """``max(raw, 0)`` normalised to mean 1 over the positive ones (all 0 when none is positive)."""
    gold_loss: float
    """Mean gold loss at θ_ref (log 2 for DPO)."""
    gold_grad_norm: float
    """``‖g_gold‖``."""
    n_gold: int
    """Gold pairs."""
    params: tuple[str, ...]
    """Names of the parameters the gradients run through."""
    n_params: int
    """Their total number of scalars."""
    seconds_gold: float = 0.0
    """Wall time of the gold gradient (references + forward/backward over the gold batch)."""
    seconds_items: float = 0.0
    """Wall time of the per-item scores (references + one forward/backward per item)."""

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


def normalise(raw: Sequence[float]) -> list[float]:
    """Clamp at 0 and scale the positive scores to mean 1 (no γ: any constant factor cancels here)."""
    pos = [s for s in raw if s > 0]
    if not pos:
        return [0.0] * len(raw)
    mean = sum(pos) / len(pos)
    return [max(s, 0.0) / mean for s in raw]


def _grads(loss: Tensor, params: dict[str, torch.nn.Parameter]) -> list[Tensor]:
    return [g.to(torch.float64) for g in torch.autograd.grad(loss, list(params.values()))]


def gold_items(gold: Sequence[LabelledPair]) -> list[TrainItem]:
    """The gold pairs as DPO items (chosen is the policy-correct reply)."""
    return [TrainItem("dpo", p, 1.0, -1) for p in gold]


def mean_loss_and_grad(
    model, items: Sequence[TrainItem], refs: Sequence[ItemReference], params: dict[str, torch.nn.Parameter],
    config: RealignConfig,
) -> tuple[float, list[Tensor]]:
    """(mean unweighted loss of ``items`` against fixed references, its gradient), accumulated in chunks."""
    total, grad = 0.0, [torch.zeros_like(p, dtype=torch.float64) for p in params.values()]
    for lo in range(0, len(items), config.batch_size):
        part = slice(lo, lo + config.batch_size)
        loss = item_losses(model, items[part], refs[part], config).sum() / len(items)
        total += loss.item()
        for acc, g in zip(grad, _grads(loss, params), strict=True):
            acc += g
    return total, grad


def gold_gradient(
    model, gold: Sequence[LabelledPair], params: dict[str, torch.nn.Parameter], config: RealignConfig,
) -> tuple[float, list[Tensor]]:
    """(mean preference loss on the gold pairs, its gradient) at the current weights, taken as θ_ref."""
    items = gold_items(gold)
    return mean_loss_and_grad(model, items, reference_for(model, items, config), params, config)


def item_scores(
    model, items: Sequence[TrainItem], g_gold: list[Tensor], params: dict[str, torch.nn.Parameter],
    config: RealignConfig,
) -> Float[Tensor, " n"]:
    """``<g_gold, g_k>`` for every item, one backward pass per item."""
    refs = reference_for(model, items, config)
    out = torch.zeros(len(items), dtype=torch.float64)
    pairs = tqdm(zip(items, refs, strict=True), total=len(items), desc="impact scores", leave=False)
    for k, (item, ref) in enumerate(pairs):
        g_k = _grads(item_losses(model, [item], [ref], config).sum(), params)
        out[k] = sum((a * b).sum() for a, b in zip(g_gold, g_k, strict=True))
    if not torch.isfinite(out).all():
        raise NonFiniteError("an impact score came out NaN or infinite; check the pairs and the model")
    return out


def score_impact(
    model, items: Sequence[TrainItem], gold: Sequence[LabelledPair], config: RealignConfig,
) -> ImpactScores:
    """Impact scores of ``items`` against ``gold`` at the model's current weights (θ_ref)."""
    check_disjoint(gold, [it.pair for it in items])
    if not gold:
        raise ValueError("an empty gold batch gives no direction to score against")
    params = select_parameters(model, config.params)
    was_training = model.hf.training
    model.hf.eval()
    try:
        with only_these_require_grad(model, params):
            t0 = time.perf_counter()
            gold_loss, g_gold = gold_gradient(model, gold, params, config)
            t1 = time.perf_counter()
            raw = item_scores(model, items, g_gold, params, config).tolist() if items else []
            t2 = time.perf_counter()
    finally:
        model.hf.train(was_training)
    norm = float(torch.sqrt(sum((g * g).sum() for g in g_gold)))
    return ImpactScores(tuple(raw), tuple(normalise(raw)), gold_loss, norm, len(gold), tuple(params),
                        sum(p.numel() for p in params.values()), t1 - t0, t2 - t1)
