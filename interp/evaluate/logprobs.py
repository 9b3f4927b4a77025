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
so a short answer after a long prompt costs ``n_answer x vocab``, not ``seq x vocab``.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.errors import InterpError


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
    logits_NV = logits_BSV[rows_N, cols_N].to(dtype)
    target_N = ids_BS.to(device)[rows_N, cols_N + 1]
    lp_N = torch.log_softmax(logits_NV, dim=-1).gather(-1, target_N[:, None])[:, 0]
    return torch.zeros(batch, seq - 1, dtype=dtype, device=device).index_put((rows_N, cols_N), lp_N)


def sequence_logprobs(
    logits_BSV: Float[Tensor, "batch seq vocab"],
    ids_BS: Int[Tensor, "batch seq"],
    mask_BS: Bool[Tensor, "batch seq"],
    dtype: torch.dtype = torch.float64,
) -> Float[Tensor, " batch"]:
    """Summed log-probability of each row's wanted targets (0 for a row without any), in ``dtype``."""
    return token_logprobs(logits_BSV, ids_BS, mask_BS, dtype).sum(-1)
