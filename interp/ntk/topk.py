r"""The DCR paper code's kernel: first-token gradients of each prompt's own top-k logits.

For a prompt x let T(x) be its k most likely first tokens under the current weights and J(x) the
k x P Jacobian of those k logits with respect to the selected parameters (by default in the paper's
code: the last layers, or LoRA weights). Then

    K(x', x) = J(x') J(x)^T   (k x k),   F[a, b] = ||K(x_a, x_b)||_F,

and the block matrix G[(a, i), (b, j)] = <J_i(x_a), J_j(x_b)> over all prompts and rows is a Gram
matrix (symmetric, positive semi-definite). Each row is one backward pass, so a prompt costs one
forward and k backward passes, whatever the vocabulary.

Two representations of the rows: ``exact`` keeps them whole (float32; N k P floats, so only for
small parameter selections such as LoRA weights or one block of a small model), ``sketch`` keeps a
CountSketch of each (s floats, :class:`~interp.ntk.sketch.CountSketch`). The sketched squared inner
product is biased up by its variance (||x||^2 ||y||^2 + <x, y>^2 - 2 sum_k x_k^2 y_k^2) / s; the first
two terms, estimated from the sketches, are subtracted, so ||K||_F^2 is unbiased up to O(1/s^2) and
the sum_k term (small for dense gradients).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.errors import InterpError, NonFiniteError
from interp.models import Model
from interp.ntk.config import NTKConfig
from interp.ntk.params import (
    ParamSelection,
    differentiable,
    encode_prompt,
    first_token_state,
    head_logits,
    select_parameters,
)
from interp.ntk.sketch import CountSketch

MAX_EXACT_BYTES = 4 * 2**30
"""Largest N k P float32 row store the exact representation builds (else: use the sketch)."""


def topk_rows(model: Model, text: str, config: NTKConfig, selection: ParamSelection,
              sketch: CountSketch | None = None) -> tuple[Int[Tensor, " k"], Float[Tensor, "k dim"]]:
    """The prompt's top-k first-token ids and the gradients of those logits (rows; whole or sketched)."""
    if config.top_k is None:
        raise ValueError("topk_rows needs NTKConfig.top_k")
    with differentiable(model, selection):
        u = first_token_state(model, encode_prompt(model, text, config))
        z = head_logits(model, u, None, detach_head=False)[0]
        k = min(config.top_k, z.shape[0])
        ids = torch.topk(z.detach(), k).indices  # the ranking is read off, not differentiated
        rows = []
        for i in range(k):
            grads = torch.autograd.grad(z[ids[i]], selection.params, retain_graph=i < k - 1, allow_unused=True)
            if sketch is not None:
                rows.append(sketch(list(grads)))
            else:
                rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float()
                                       for g, p in zip(grads, selection.params, strict=True)]))
    return ids.cpu(), torch.stack(rows)


def _check_exact_size(n: int, k: int, n_params: int) -> None:
    need = n * k * n_params * 4
    if need > MAX_EXACT_BYTES:
        raise InterpError(f"the exact top-{k} kernel of {n} prompts over {n_params:,} parameters would hold "
                          f"{need / 2**30:.1f} GiB of gradient rows (limit {MAX_EXACT_BYTES / 2**30:.0f} GiB); "
                          "use estimator='sketch', fewer parameters (last_layers, param_filter) or fewer prompts")


def topk_gram(model: Model, texts: Sequence[str], config: NTKConfig, progress: bool = True
              ) -> tuple[Float[Tensor, "n k n k"], Int[Tensor, "n k"]]:
    """The block Gram matrix G[a, i, b, j] = <J_i(x_a), J_j(x_b)> (float64, CPU) and each prompt's top-k ids.

    ``exact`` rows give the true Gram matrix; ``sketch`` rows give an unbiased estimate of each entry
    (whose square is biased, see :func:`topk_frobenius`).
    """
    selection = select_parameters(model, config)
    sketch = None
    if config.estimator == "sketch":
        sketch = CountSketch(selection.params, config.sketch_dim, config.seed, model.device)
    else:
        _check_exact_size(len(texts), config.top_k or 0, selection.n_params)
    ids, rows = [], []
    for t in tqdm(texts, desc=f"top-{config.top_k} NTK rows", disable=not progress):
        i, r = topk_rows(model, t, config, selection, sketch)
        ids.append(i)
        rows.append(r)
    k = min(len(i) for i in ids)
    flat = torch.cat([r[:k] for r in rows])  # (n k) x dim
    gram = torch.zeros(flat.shape[0], flat.shape[0], dtype=torch.float64)
    step = max(1, 2**25 // flat.shape[0])  # float64 column blocks of <= 256 MiB, not a float64 copy of every row
    for c in range(0, flat.shape[1], step):
        block = flat[:, c:c + step].double()
        gram += (block @ block.T).cpu()
    n = len(texts)
    return gram.reshape(n, k, n, k), torch.stack([i[:k] for i in ids])


def topk_frobenius(model: Model, texts: Sequence[str], config: NTKConfig, progress: bool = True
                   ) -> Float[Tensor, "n n"]:
    """F[a, b] = ||K(x_a, x_b)||_F on each prompt's top-k logits (float64, symmetric)."""
    gram, _ = topk_gram(model, texts, config, progress)
    sq = gram**2
    if config.estimator == "sketch":
        # E[G_hat^2] = G^2 + (||x||^2 ||y||^2 + G^2 - 2 sum x_k^2 y_k^2) / s; subtract the estimable part
        norms = torch.einsum("aiai->ai", gram)  # ||Phi J_i(x_a)||^2
        s = config.sketch_dim
        sq = sq - (norms[:, :, None, None] * norms[None, None, :, :] + sq) / s
    out = sq.sum((1, 3)).clamp(min=0).sqrt()
    out = (out + out.T) / 2  # symmetric already; this only removes rounding
    if not torch.isfinite(out).all():
        a, b = torch.nonzero(~torch.isfinite(out))[0].tolist()
        raise NonFiniteError(f"top-k kernel norm is not finite for prompts {a} x {b} ({texts[a]!r} x {texts[b]!r})")
    return out
