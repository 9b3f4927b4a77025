"""Exact empirical NTK of the first-token logits, from full Jacobians (tiny models only).

J(x) = dz(x)/dtheta is formed row by row (one backward pass per output token), so memory is
vocab x n_params per prompt; K(x', x) = J(x') J(x)^T is accumulated in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.errors import NonFiniteError
from interp.models import Model
from interp.ntk.config import NTKConfig
from interp.ntk.params import (
    ParamSelection,
    differentiable,
    encode_prompt,
    first_token_state,
    head_logits,
    select_parameters,
    token_index,
)


def _flat_grads(grads: Sequence[Tensor | None], params: Sequence[Tensor]) -> Tensor:
    return torch.cat([
        (g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params, strict=True)
    ])


def jacobian(model: Model, text: str, config: NTKConfig, selection: ParamSelection | None = None
             ) -> Float[Tensor, "vocab_sel n_params"]:
    """Full Jacobian of the first-token logits with respect to the selected parameters (float64)."""
    selection = selection or select_parameters(model, config)
    tokens = token_index(model, config)
    with differentiable(model, selection):
        u = first_token_state(model, encode_prompt(model, text, config))
        z = head_logits(model, u, tokens, detach_head=False)[0]
        rows = []
        for v in range(z.shape[0]):
            grads = torch.autograd.grad(z[v], selection.params, retain_graph=v < z.shape[0] - 1,
                                        allow_unused=True)
            rows.append(_flat_grads(grads, selection.params).double())
    return torch.stack(rows)


def kernel(j_a: Float[Tensor, "vocab n_params"], j_b: Float[Tensor, "vocab n_params"]
           ) -> Float[Tensor, "vocab vocab"]:
    """K(x_a, x_b) = J(x_a) J(x_b)^T."""
    return j_a.double() @ j_b.double().T


def exact_frobenius(model: Model, texts: Sequence[str], config: NTKConfig, progress: bool = True
                    ) -> Float[Tensor, "n n"]:
    """F[a, b] = ||K(x_a, x_b)||_F for every pair, from exact Jacobians (float64, symmetric)."""
    selection = select_parameters(model, config)
    jacs = [jacobian(model, t, config, selection)
            for t in tqdm(texts, desc="exact NTK jacobians", disable=not progress)]
    n = len(jacs)
    out = torch.zeros(n, n, dtype=torch.float64)
    for a in range(n):
        for b in range(a, n):
            out[a, b] = out[b, a] = torch.linalg.matrix_norm(kernel(jacs[a], jacs[b])).cpu()
    if not torch.isfinite(out).all():
        a, b = torch.nonzero(~torch.isfinite(out))[0].tolist()
        raise NonFiniteError(f"exact kernel norm is not finite for {int((~torch.isfinite(out)).sum())} of "
                             f"{n * n} prompt pairs (first: {texts[a]!r} x {texts[b]!r})")
    return out
