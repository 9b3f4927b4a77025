"""Per-token log-probabilities of given tokens under a model's logits: the one place they are gathered.

Every loss, reply likelihood and answer score in the workbench is a sum of
``log p(ids[:, t] | ids[:, :t])`` over some wanted target tokens. :func:`token_logprobs` computes
them; masks say which targets are wanted:

* :func:`next_token_mask`: every real token whose predecessor is real too (plain language-model loss
  under left padding: a row's first real token follows a pad, so it has no prefix to condition on);
* :func:`suffix_mask`: each row's last ``n`` tokens (an answer or reply at the end of a left-padded row).

Precision: the log-softmax runs in ``dtype``, float64 by default. The log-sum-exp over a vocabulary
of ~50k logits in float32 is only good to ~1e-6 relative, and callers sum hundreds of such terms or
take differences of close totals (MC margins, KLs, losses of nearly equal models), so float64 keeps
those results independent of batch composition. Pass float32 where memory or speed rule and a
rounding of ~1e-6 does not matter: gradient attribution on an accelerator (float64 is slow there) and
whole-text losses that only compare splices. Only the wanted positions are converted and normalised,
so a short answer after a long prompt costs ``n_answer x vocab``, not ``seq x vocab``; and they are
normalised ``chunk_rows`` at a time (:func:`log_softmax_rows`), so the ``dtype`` copy never exceeds
``chunk_rows x vocab`` (64 x 152k float64 = 78 MB) however many targets there are. Under autograd each
chunk is checkpointed: its float64 copy is rebuilt in the backward pass instead of being kept.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from interp.errors import InterpError

CHUNK_ROWS = 64
"""Rows of logits normalised at once: bounds the float64 working copy to ``CHUNK_ROWS x vocab``."""


def next_token_mask(attention_mask: Int[Tensor, "batch seq"] | Bool[Tensor, "batch seq"]) -> Bool[Tensor, "batch seq"]:
    """True at tokens that are real and follow a real token (column 0 is always False)."""
    real_BS = attention_mask.bool()
    out_BS = torch.zeros_like(real_BS)
    out_BS[:, 1:] = real_BS[:, 1:] & real_BS[:, :-1]
    return out_BS


def suffix_mask(n: Int[Tensor, " batch"], seq: int) -> Bool[Tensor, "batch seq"]:
    """True at each row's last ``n[b]`` of ``seq`` positions (what follows the prompt under left padding)."""
    if seq < 1:
        raise InterpError(f"need seq >= 1, got {seq}")
    if (n < 0).any() or (n >= seq).any():
        raise InterpError(f"suffix lengths must lie in [0, {seq - 1}] so that each target has a prefix; "
                          f"got {n.tolist()}")
    pos_S = torch.arange(seq, device=n.device)
    return pos_S[None, :] >= (seq - n)[:, None]


def token_logprobs(
    logits_BSV: Float[Tensor, "batch seq vocab"],
    ids_BS: Int[Tensor, "batch seq"],
    mask_BS: Bool[Tensor, "batch seq"],
    dtype: torch.dtype = torch.float64,
    chunk_rows: int = CHUNK_ROWS,
) -> Float[Tensor, "batch seq-1"]:
    """``out[b, t] = log p(ids[b, t+1] | ids[b, :t+1])`` where ``mask_BS[b, t+1]``, else exactly 0.

    ``mask_BS`` marks the wanted *targets* at their own positions; column 0 has no prefix and must be
    False. The result is in ``dtype`` on the logits' device and keeps the autograd graph of the logits
    (so gradients flow to the wanted positions only). See the module docstring on the choice of dtype.
    """
    if not dtype.is_floating_point:
        raise InterpError(f"dtype must be a floating-point type, got {dtype}")
    if mask_BS[:, 0].any():
        raise InterpError("mask_BS marks position 0 as a target, but the first token has no prefix to "
                          "condition on (use next_token_mask or suffix_mask)")
    batch, seq, _ = logits_BSV.shape
    device = logits_BSV.device
    want_BT = mask_BS[:, 1:].to(device)  # T = seq - 1: position t predicts token t + 1
    rows_N, cols_N = want_BT.nonzero(as_tuple=True)
    target_N = ids_BS.to(device)[rows_N, cols_N + 1]
    lp_N = target_logprobs(logits_BSV, rows_N, cols_N, target_N, dtype, chunk_rows)
    return torch.zeros(batch, seq - 1, dtype=dtype, device=device).index_put((rows_N, cols_N), lp_N)


def sequence_logprobs(
    logits_BSV: Float[Tensor, "batch seq vocab"],
    ids_BS: Int[Tensor, "batch seq"],
    mask_BS: Bool[Tensor, "batch seq"],
    dtype: torch.dtype = torch.float64,
    chunk_rows: int = CHUNK_ROWS,
) -> Float[Tensor, " batch"]:
    """Summed log-probability of each row's wanted targets (0 for a row without any), in ``dtype``."""
    return token_logprobs(logits_BSV, ids_BS, mask_BS, dtype, chunk_rows).sum(-1)


def _gathered_logprobs(logits_BSV: Tensor, rows_N: Tensor, cols_N: Tensor, target_N: Tensor,
                       dtype: torch.dtype) -> Tensor:
    logits_NV = logits_BSV[rows_N, cols_N].to(dtype)
    return torch.log_softmax(logits_NV, dim=-1).gather(-1, target_N[:, None])[:, 0]


def target_logprobs(
    logits_BSV: Float[Tensor, "batch seq vocab"], rows_N: Int[Tensor, " n"], cols_N: Int[Tensor, " n"],
    target_N: Int[Tensor, " n"], dtype: torch.dtype = torch.float64, chunk_rows: int = CHUNK_ROWS,
) -> Float[Tensor, " n"]:
    """``log_softmax(logits_BSV[rows_N, cols_N])[target_N]`` in ``dtype``, ``chunk_rows`` rows at a time."""
    if chunk_rows < 1:
        raise InterpError(f"chunk_rows must be >= 1, got {chunk_rows}")
    grad = torch.is_grad_enabled() and logits_BSV.requires_grad
    parts = []
    for i in range(0, rows_N.shape[0], chunk_rows):
        args = (logits_BSV, rows_N[i:i + chunk_rows], cols_N[i:i + chunk_rows], target_N[i:i + chunk_rows])
        # Checkpointing keeps only the (shared) logits for backward, not each chunk's dtype copy.
        parts.append(checkpoint(_gathered_logprobs, *args, dtype, use_reentrant=False) if grad
                     else _gathered_logprobs(*args, dtype))
    if not parts:
        return torch.zeros(0, dtype=dtype, device=logits_BSV.device)
    return torch.cat(parts)


def log_softmax_rows(
    logits_NV: Float[Tensor, "n vocab"], dtype: torch.dtype = torch.float64,
    out_dtype: torch.dtype | None = None, chunk_rows: int = CHUNK_ROWS,
) -> Float[Tensor, "n vocab"]:
    """Row-wise log-softmax computed in ``dtype`` ``chunk_rows`` rows at a time, stored in ``out_dtype``.

    With ``out_dtype=float32`` (what a stored distribution needs) no [n, vocab] float64 tensor exists;
    ``out_dtype`` defaults to ``dtype``. No autograd through it (evaluation only).
    """
    if chunk_rows < 1:
        raise InterpError(f"chunk_rows must be >= 1, got {chunk_rows}")
    out_dtype = out_dtype or dtype
    out = torch.empty(logits_NV.shape, dtype=out_dtype, device=logits_NV.device)
    with torch.no_grad():
        for i in range(0, logits_NV.shape[0], chunk_rows):
            out[i:i + chunk_rows] = torch.log_softmax(logits_NV[i:i + chunk_rows].to(dtype), dim=-1)
    return out
