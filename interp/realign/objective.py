"""The per-item losses of TRACE's hybrid objective, on summed response log-probabilities.

All are written so that at the reference model (θ = θ_ref, every log-ratio 0) DPO and NPO equal
``log 2`` and the KL is 0 with zero gradient, which the tests check.

* DPO (Rafailov et al.), as trl computes it: ``-log σ(β h)``, ``h = (log π_c - log π_ref,c) -
  (log π_r - log π_ref,r)``.
* IPO (Azar et al.), as trl computes it: ``(h - 1/(2β))²`` with *length-averaged* log-probabilities.
* NPO (Zhang et al.): ``-log σ(-β (log π - log π_ref)) = log(1 + (π/π_ref)^β)``. The paper scales it by
  ``2/β``; that factor is left out so NPO and DPO share a scale (both ``log 2`` at θ_ref, gradients of
  size ``β σ(·)``), and the impact weights, not a constant, set their balance.
* KL(π_ref ‖ π_θ) at each response position over the whole vocabulary, averaged over the response's
  tokens (so long replies do not outweigh short ones).
"""

from __future__ import annotations

import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor


def log_ratio_margin(
    pi_c: Float[Tensor, " n"], pi_r: Float[Tensor, " n"], ref_c: Float[Tensor, " n"], ref_r: Float[Tensor, " n"],
) -> Float[Tensor, " n"]:
    """``h``: how much more the policy than the reference prefers chosen over rejected."""
    return (pi_c - ref_c) - (pi_r - ref_r)


def dpo_loss(
    pi_c: Float[Tensor, " n"], pi_r: Float[Tensor, " n"], ref_c: Float[Tensor, " n"], ref_r: Float[Tensor, " n"],
    beta: float,
) -> Float[Tensor, " n"]:
    return -F.logsigmoid(beta * log_ratio_margin(pi_c, pi_r, ref_c, ref_r))


def ipo_loss(
    pi_c: Float[Tensor, " n"], pi_r: Float[Tensor, " n"], ref_c: Float[Tensor, " n"], ref_r: Float[Tensor, " n"],
    n_c: Int[Tensor, " n"], n_r: Int[Tensor, " n"], beta: float,
) -> Float[Tensor, " n"]:
    """IPO on log-probabilities averaged over each response's ``n`` tokens (trl's convention)."""
    h = log_ratio_margin(pi_c / n_c, pi_r / n_r, ref_c / n_c, ref_r / n_r)
    return (h - 1.0 / (2.0 * beta)) ** 2


def npo_loss(pi: Float[Tensor, " n"], ref: Float[Tensor, " n"], beta: float) -> Float[Tensor, " n"]:
    return -F.logsigmoid(-beta * (pi - ref))


def token_kl(ref_lsm_NV: Float[Tensor, "n vocab"], cur_lsm_NV: Float[Tensor, "n vocab"]) -> Float[Tensor, " n"]:
    """KL(ref ‖ cur) of each row's next-token distribution, from log-softmaxes."""
    return (ref_lsm_NV.exp() * (ref_lsm_NV - cur_lsm_NV)).sum(-1)

