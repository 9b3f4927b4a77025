"""First-order null-space projection (orthogonal-gradient-descent style) of the trainable weights' updates.

The protected quantities are the refusal components ``c = Q_s · pool(a_s(x))`` of harmful prompts x at
the chosen residual streams s (:func:`interp.train.residual_subspaces.refusal_components`): m scalars.
Their Jacobian J [m, N] with respect to the N trainable parameters (the LoRA adapters under peft, where
N is small enough; any trainable set works) is computed with one forward per prompt (``batch_size``) and
m / ``rows_per_backward`` vmapped backward passes, and its row space gets an orthonormal basis B (from
the eigendecomposition of the m x m Gram matrix J Jᵀ).
Each optimizer update Δθ is then replaced by ``(I - BᵀB) Δθ`` after the step (exact for Adam: the
update, not the gradient, is projected).

Guarantee (first order): at a step whose basis was computed at the current parameters (always with
``refresh_every=1``), ``c(θ + PΔ) - c(θ) = J P Δ + O(|Δ|²) = O(|Δ|²)``, since J P = 0 when no
direction of J was dropped (``max_rank`` not binding, ``tol`` below J's smallest kept singular value).
So halving the learning rate divides the change of the protected components by ~4, not ~2. With
``refresh_every = k > 1`` (or 0: the basis of the first step only, as OGD keeps the gradients of the
old task) the Jacobian is up to k-1 steps stale and the first-order term is O(|θ - θ_ref| |Δ|).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from interp.train.residual_subspaces import ResidualSubspaces, refusal_components

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NullSpaceConfig:
    """Which components are protected and how often their gradient span is recomputed."""

    streams: tuple[int, ...] | None = None
    """Residual streams whose refusal components are protected (None: every stream)."""
    refresh_every: int = 0
    """Recompute the basis every this many steps (1: every step, exact first order; 0: once, at step 0)."""
    max_rank: int | None = None
    """Keep at most this many basis directions (the largest singular values of J); None: all."""
    tol: float = 1e-6
    """Relative singular-value cut: directions of J below ``tol * s_max`` are treated as absent."""
    batch_size: int = 1
    """Prompts per forward pass of the Jacobian. 1 is cheapest: a prompt's components depend only on its own
    forward, yet every backward row traverses the whole batch's graph, so a batch of b multiplies the
    backward work by b (b = 8 took > 7 min for 16 prompts x 30 streams x rank 2 on 2 CPU cores)."""
    rows_per_backward: int = 64
    """Jacobian rows per (vmapped) backward pass: more is faster on an accelerator, and takes memory
    (64 covers one prompt's 30 streams x rank 2 in one pass)."""

    def __post_init__(self) -> None:
        if self.refresh_every < 0 or self.batch_size < 1 or self.rows_per_backward < 1 or not 0 < self.tol < 1:
            raise ValueError(f"invalid NullSpaceConfig: {self}")
        if self.max_rank is not None and self.max_rank < 1:
            raise ValueError(f"max_rank must be >= 1 or None, got {self.max_rank}")


def trainable(model) -> list[Tensor]:
    """The parameters the optimizer steps (train_sft leaves requires_grad on exactly those)."""
    return [p for p in model.hf.parameters() if p.requires_grad]


def jacobian_basis(model, subspaces: ResidualSubspaces, prompts: Sequence[str], params: Sequence[Tensor],
                   config: NullSpaceConfig = NullSpaceConfig()) -> list[Tensor]:
    """Orthonormal basis of the row space of d c / d params, as per-parameter blocks [k, *p.shape]."""
    rows: list[Tensor] = []
    for i in range(0, len(prompts), config.batch_size):
        with torch.enable_grad():
            c = refusal_components(model, subspaces, prompts[i:i + config.batch_size], config.streams, grad=True)
            for j in range(0, len(c), config.rows_per_backward):
                rows.append(_jacobian_rows(c, j, min(j + config.rows_per_backward, len(c)), params))
    jac = torch.cat(rows)
    gram = (jac.double() @ jac.double().T)
    evals, evecs = torch.linalg.eigh(gram)
    order = torch.argsort(evals, descending=True)
    evals, evecs = evals[order], evecs[:, order]
    keep = evals > (config.tol ** 2) * max(float(evals[0]), 1e-300)
    if config.max_rank is not None:
        keep[config.max_rank:] = False
    if not bool(keep.any()):
        raise ValueError("the protected components do not depend on the trainable parameters (zero Jacobian)")
    basis = ((evecs[:, keep] / evals[keep].sqrt()).T @ jac.double()).float()  # [k, N] orthonormal rows
    out, start = [], 0
    for p in params:
        out.append(basis[:, start:start + p.numel()].reshape(-1, *p.shape).to(p.dtype))
        start += p.numel()
    log.info("null-space basis: %d protected components span %d directions", len(rows), int(keep.sum()))
    return out


def _jacobian_rows(c: Tensor, start: int, stop: int, params: Sequence[Tensor]) -> Tensor:
    """d c[start:stop] / d params as [stop - start, N] rows: one vmapped backward (``is_grads_batched``)."""
    eye = torch.eye(len(c), dtype=c.dtype, device=c.device)[start:stop]
    grads = torch.autograd.grad(c, params, grad_outputs=eye, is_grads_batched=True, retain_graph=stop < len(c),
                                allow_unused=True)
    return torch.cat([(torch.zeros(stop - start, p.numel(), device=c.device) if g is None
                       else g.reshape(stop - start, -1).float()) for g, p in zip(grads, params, strict=True)], dim=1)


class NullSpaceConstraint:
    """Projects every update of the trainable parameters off the protected components' gradient span.

    The basis is computed lazily at the first ``before_step`` (after LoRA adapters exist), with
    ``torch.autograd.grad``, so the training gradients in ``.grad`` are untouched.
    """

    supports_lora = True
    """Works on whatever train_sft trains, LoRA adapters included."""

    def __init__(self, model, subspaces: ResidualSubspaces, harmful: Sequence[str],
                 config: NullSpaceConfig = NullSpaceConfig()):
        subspaces.check(model)
        if not harmful:
            raise ValueError("NullSpaceConstraint needs harmful prompts to protect")
        self.subspaces, self.prompts, self.config = subspaces, list(harmful), config
        self._params: list[Tensor] = []
        self._basis: list[Tensor] | None = None
        self._snap: list[Tensor] = []
        self._step = 0
        self.ranks: list[tuple[int, int]] = []
        """(step, basis rank) of every basis computation."""

    def before_step(self, model) -> None:
        """(Re)compute the basis when due; snapshot the trainable parameters."""
        every = self.config.refresh_every
        if self._basis is None or (every and self._step % every == 0):
            self._params = trainable(model)
            self._basis = jacobian_basis(model, self.subspaces, self.prompts, self._params, self.config)
            self.ranks.append((self._step, len(self._basis[0])))
        with torch.no_grad():
            self._snap = [p.detach().clone() for p in self._params]

    def after_step(self, model) -> None:
        """Remove the basis component of the step's update."""
        assert self._basis is not None, "after_step before before_step"
        with torch.no_grad():
            deltas = [p - s for p, s in zip(self._params, self._snap, strict=True)]
            coef = sum(torch.einsum("k...,...->k", b.float(), d.float()) for b, d in zip(self._basis, deltas,
                                                                                          strict=True))
            for p, b in zip(self._params, self._basis, strict=True):
                p.sub_(torch.einsum("k,k...->...", coef, b.float()).to(p.dtype))
        self._snap = []
        self._step += 1

