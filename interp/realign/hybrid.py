"""The hybrid objective on a batch of items: one forward pass, per-item losses, weighted mean.

``L = (1/|B|) Σ_{i∈B} w_i ℓ_i`` with ``ℓ`` DPO/IPO (dpo items), NPO(chosen) + NPO(rejected) (npo items)
or the token-level KL (kl items, ``w = α``). Weights are normalised to mean 1 over the trained pairs
(see :mod:`interp.realign.impact`), so the preference terms keep their size against ``α·KL`` however many
pairs there are. The reference log-probabilities are computed once, at θ_ref, by :func:`reference_for`,
through the same encoding and the same code path as the losses. The KL needs the reference's whole
next-token distribution at every retained response token: ``tokens x vocab`` floats (float32 for a
float32 model; ~200 kB per token for a 49k vocabulary), held in memory for the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import InterpError
from interp.realign.config import RealignConfig
from interp.realign.objective import dpo_loss, ipo_loss, npo_loss, token_kl
from interp.realign.plan import TrainItem
from interp.realign.tokens import (
    encode_responses,
    forward_logits,
    response_log_softmax,
    response_logprobs,
    response_mask,
)
from interp.train.examples import TokenBatch


@dataclass(frozen=True)
class ItemReference:
    """What the reference model assigned to one item's responses."""

    chosen: Tensor
    """Summed log-probability of the chosen response (float64 scalar)."""
    rejected: Tensor | None
    """Same for the rejected response (None for kl items)."""
    n_chosen: int
    """Response tokens of ``chosen``."""
    n_rejected: int
    """Response tokens of ``rejected`` (0 for kl items)."""
    log_softmax: Tensor | None
    """kl items: reference next-token log-distributions at each response position, ``[n_chosen, vocab]``."""


@dataclass(frozen=True)
class _Layout:
    batch: TokenBatch
    starts: tuple[int, ...]
    """First row of each item (dpo/npo items take two rows: chosen, rejected)."""


def _layout(model, items: Sequence[TrainItem], max_length: int) -> _Layout:
    texts, starts = [], []
    for it in items:
        starts.append(len(texts))
        texts.append((it.pair.prompt.text, it.pair.chosen))
        if it.kind != "kl":
            texts.append((it.pair.prompt.text, it.pair.rejected))
    return _Layout(encode_responses(model, texts, max_length), tuple(starts))


def _lsm_dtype(model) -> torch.dtype:
    return torch.promote_types(next(model.hf.parameters()).dtype, torch.float32)


def reference_for(model, items: Sequence[TrainItem], config: RealignConfig) -> list[ItemReference]:
    """Reference quantities of every item at the model's current weights (θ_ref), in batches."""
    out: list[ItemReference] = []
    was_training = model.hf.training
    model.hf.eval()
    with torch.no_grad():
        for lo in range(0, len(items), config.batch_size):
            chunk = items[lo: lo + config.batch_size]
            lay = _layout(model, chunk, config.max_length)
            logits = forward_logits(model, lay.batch)
            lp = response_logprobs(logits, lay.batch).detach()
            n_tok = response_mask(lay.batch).sum(-1).tolist()
            for it, s in zip(chunk, lay.starts, strict=True):
                two = it.kind != "kl"
                lsm = None if two else response_log_softmax(logits, lay.batch, [s], _lsm_dtype(model)).detach()
                out.append(ItemReference(lp[s], lp[s + 1] if two else None, int(n_tok[s]),
                                         int(n_tok[s + 1]) if two else 0, lsm))
    model.hf.train(was_training)
    return out


def item_losses(
    model, items: Sequence[TrainItem], refs: Sequence[ItemReference], config: RealignConfig,
) -> Float[Tensor, " n"]:
    """Unweighted loss of every item (float64, differentiable in the model's trainable weights)."""
    if len(items) != len(refs):
        raise InterpError(f"{len(items)} items but {len(refs)} references")
    lay = _layout(model, items, config.max_length)
    logits = forward_logits(model, lay.batch)
    lp = response_logprobs(logits, lay.batch)
    losses = []
    for it, ref, s in zip(items, refs, lay.starts, strict=True):
        if it.kind == "dpo":
            args = (lp[s:s + 1], lp[s + 1:s + 2], ref.chosen[None], ref.rejected[None])
            if config.loss == "ipo":
                n = torch.tensor([ref.n_chosen], device=lp.device), torch.tensor([ref.n_rejected], device=lp.device)
                losses.append(ipo_loss(*args, *n, config.beta))
            else:
                losses.append(dpo_loss(*args, config.beta))
        elif it.kind == "npo":
            losses.append(npo_loss(lp[s:s + 1], ref.chosen[None], config.beta)
                          + npo_loss(lp[s + 1:s + 2], ref.rejected[None], config.beta))
        else:
            cur = response_log_softmax(logits, lay.batch, [s], ref.log_softmax.dtype)
            if cur.shape != ref.log_softmax.shape:
                raise InterpError(f"retain reply of item {it.index} has {cur.shape[0]} response positions now "
                                  f"but {ref.log_softmax.shape[0]} in the reference: tokenisation changed")
            losses.append(token_kl(ref.log_softmax, cur).to(torch.float64).mean().reshape(1))
    return torch.cat(losses)


def hybrid_loss(
    model, items: Sequence[TrainItem], refs: Sequence[ItemReference], config: RealignConfig,
) -> Float[Tensor, ""]:
    """``(1/|B|) Σ w_i ℓ_i`` over the batch."""
    w = torch.tensor([it.weight for it in items], dtype=torch.float64, device=model.device)
    return (w * item_losses(model, items, refs, config)).mean()
