r"""Scalable, unbiased estimator of ||K(x', x)||_F for the empirical NTK of the first-token logits.

Design (no V x P Jacobian is ever formed):

* **Output probes.** m Rademacher vectors r_1..r_m in {-1, +1}^V (shared by all prompts, seeded). One
  forward and m backward passes per prompt give the probe gradients g_i(x) = J(x)^T r_i.
  For i != j the probes are independent with E[r r^T] = I, so with A = K(x', x) = J(x') J(x)^T

      E[(r_i^T A r_j)^2] = ||A||_F^2,   T = 1/(m(m-1)) sum_{i != j} <g_i(x'), g_j(x)>^2

  is an unbiased U-statistic of ||K||_F^2 (the i = j terms are biased by tr(A)^2 + tr(A^2) and dropped).
* **Head role handled exactly.** z = W_U u + b. The head part of g_i is r_i (x) u (on W_U) and r_i (on b):
  its inner products (r_i . r_j)(u' . u + 1) are exact, and so are the cross terms with the rest, via
  C(x)[i, j] = r_i^T B_j(x) (B_j: the W_U block of the rest of g_j; nonzero only on the prompt's token
  rows when embeddings are tied). The head-head term of T is replaced by its exact expectation
  V (u' . u + 1)^2 (a control variate: it removes the probe noise of the isotropic part of K).
  A generic parameter sketch could not do this: probes are nearly orthogonal (r_i . r_j ~ sqrt(V)),
  so resolving their inner product would need a sketch wider than V.
* **Parameter sketch.** The rest b_i(x) (all other parameters; P ~ 1e8) is CountSketched to s floats
  (seeded hash h: [P] -> [s], signs sigma, generated per tile from a shared table, see
  :class:`CountSketch`, so its memory does not grow with P): <Phi b, Phi b'> is unbiased for <b, b'> with variance
  (||b||^2 ||b'||^2 + <b, b'>^2 - 2 sum_k b_k^2 b'_k^2) / s. The ||Phi b||^2 ||Phi b'||^2 / s part is
  subtracted from every squared inner product (first-order bias correction).

Each prompt is stored as an m x s matrix (plus u and C); all N^2 pairs are then matrix products.

**What it converges to and how fast.** For fixed probes, the estimate converges to T as s -> inf
(remaining bias <= mean_{i!=j} <b_i, b_j>^2 / s, i.e. relative O(1/s)). Over the probes, T is unbiased
for ||K||_F^2 with

    Var(T) / ||K||_F^4 <= 8 rho / m + 18 / (m (m - 1)),   rho = ||K K^T||_F^2 / ||K||_F^4 in [1/rank K, 1]

(Hoeffding decomposition of the U-statistic; Gaussian/Rademacher fourth moments <= 3). So the relative
error of ||K||_F = sqrt(T) is about half that of T; by Chebyshev, P(|T - ||K||^2| > t ||K||^2) <= Var/t^2.
The normalised similarity S = ||K(x',x)||_F / ||K(x',x')||_F is a ratio of two estimates from the same
probes, whose errors are positively correlated, so it is usually more accurate than either norm. The
estimator is consistent: S_hat -> S as m, s -> inf, and exact in expectation for ||K||_F^2 at any m >= 2
up to the O(1/s) term. Tests check it against :mod:`interp.ntk.exact` on tiny models.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import NonFiniteError
from interp.models import Model
from interp.ntk.config import NTKConfig
from interp.ntk.params import (
    ParamSelection,
    differentiable,
    encode_prompt,
    first_token_state,
    head_logits,
    output_head,
    token_index,
)

TILE = 2**20
"""Length of the CountSketch hash table (4 MB of int32) that is reused, shifted, for every tile."""


class CountSketch:
    """Phi^T g for a list of parameter-shaped gradients: a seeded (bucket, sign) per coordinate.

    The sign is folded into the bucket (a 2s-wide buffer, ``out = buf[:s] - buf[s:]``), so a gradient
    is sketched with one ``index_add_`` per tile. Memory does not grow with the parameter count: the
    coordinates are cut into tiles of ``tile`` entries (per tensor), and coordinate ``k`` at offset ``t``
    of tile ``c`` gets the folded bucket ``H_k = (T[(t + r_c) mod tile] + o_c) mod 2s`` from one seeded
    table ``T`` (uniform on [0, 2s)) and a seeded uniform shift ``r_c`` and offset ``o_c`` per tile.

    **Still unbiased.** ``<Phi b, Phi b'>`` is unbiased when, for every pair k != l, the difference
    ``H_k - H_l mod 2s`` is uniform (then a same-sign and an opposite-sign collision are equally
    likely). Within a tile, k and l read distinct, independent entries of ``T``; in different tiles the
    independent offsets ``o_c - o_d`` make the difference uniform. Pairs are hashed independently, but
    quadruples across two tiles are not (two pairs with the same in-tile distance can share ``T`` entries);
    the random shifts ``r_c`` make such coincidences happen with probability 1/tile, so the variance is
    the classic CountSketch variance up to a term of relative order 1/tile. A full hash table would cost
    4 bytes per parameter (28 GB at 7B); this costs the table plus two integers per tile.

    The tables are drawn on the CPU from ``seed`` (the same hashes on every device); the sums run in
    float32 whatever the gradient dtype (a bf16 buffer would round every addition).
    """

    def __init__(self, params: Sequence[Tensor], dim: int, seed: int, device: torch.device,
                 tile: int = TILE) -> None:
        if tile < 1:
            raise ValueError(f"tile must be >= 1, got {tile}")
        gen = torch.Generator().manual_seed(seed)
        self.dim, self.tile, self.device = dim, tile, torch.device(device)
        self.numels = [p.numel() for p in params]
        tiles = [-(-n // tile) for n in self.numels]
        self.first_tile = [sum(tiles[:i]) for i in range(len(tiles))]
        n_tiles = sum(tiles)
        self.table = torch.randint(0, 2 * dim, (tile,), generator=gen, dtype=torch.int32).to(self.device)
        self.shifts = torch.randint(0, tile, (n_tiles,), generator=gen).tolist()
        self.offsets = torch.randint(0, 2 * dim, (n_tiles,), generator=gen).tolist()

    def buckets(self, tile_index: int, n: int) -> Tensor:
        """Folded buckets (in [0, 2s)) of the first ``n`` coordinates of tile number ``tile_index``."""
        r, table = self.shifts[tile_index], self.table
        part = table[r:r + n] if r + n <= self.tile else torch.cat([table[r:], table[: r + n - self.tile]])
        return (part + self.offsets[tile_index]).remainder_(2 * self.dim)

    def buffer(self) -> Float[Tensor, " two_s"]:
        """An empty accumulator for :meth:`add` (bucket and sign folded: 2s floats)."""
        return torch.zeros(2 * self.dim, dtype=torch.float32, device=self.device)

    def add(self, buf: Float[Tensor, " two_s"], index: int, grad: Tensor) -> None:
        """Sketch the gradient of tensor number ``index`` into ``buf`` (in place)."""
        numel = self.numels[index]
        if grad.numel() != numel:
            raise ValueError(f"gradient of tensor {index} has {grad.numel()} entries, its parameter {numel}")
        flat = grad.reshape(-1)
        for k in range(-(-numel // self.tile)):
            chunk = flat[k * self.tile:(k + 1) * self.tile]
            buf.index_add_(0, self.buckets(self.first_tile[index] + k, chunk.shape[0]), chunk.float())

    def result(self, buf: Float[Tensor, " two_s"]) -> Float[Tensor, " s"]:
        return buf[: self.dim] - buf[self.dim:]

    def __call__(self, grads: Sequence[Tensor | None]) -> Float[Tensor, " s"]:
        if len(grads) != len(self.numels):
            raise ValueError(f"sketch built for {len(self.numels)} tensors, got {len(grads)} gradients")
        buf = self.buffer()
        for i, g in enumerate(grads):
            if g is not None:
                self.add(buf, i, g)
        return self.result(buf)


def rademacher_probes(m: int, vocab: int, seed: int, device: torch.device) -> Float[Tensor, "m vocab"]:
    """m seeded Rademacher probe vectors over the (selected) vocabulary."""
    gen = torch.Generator().manual_seed(seed + 1_000_003)
    return (torch.randint(0, 2, (m, vocab), generator=gen).float() * 2 - 1).to(device)


@dataclass
class PromptSketch:
    """One prompt's sketch: the per-probe gradients of everything but the head role, and u."""

    body: Float[Tensor, "m s"]
    """CountSketch of b_i = J_rest^T r_i for each probe i."""
    u: Float[Tensor, " d_model"]
    """Final normed hidden state at the last position (the head role's Jacobian factor)."""
    cross: Float[Tensor, "m m d_model"] | None
    """cross[i, j] = r_i^T B_j (B_j: W_U block of b_j); None when W_U is not selected."""


class NTKSketcher:
    """Turns prompts into :class:`PromptSketch` es with shared probes and hashes."""

    def __init__(self, model: Model, config: NTKConfig, selection: ParamSelection) -> None:
        self.model, self.config, self.selection = model, config, selection
        self.tokens = token_index(model, config)
        vocab = model.spec.d_vocab if self.tokens is None else len(self.tokens)
        self.probes = rademacher_probes(config.n_probes, vocab, config.seed, model.device)
        weight, bias = output_head(model)
        body = [p for p in selection.params if p is not bias]  # b's gradient is purely the head role
        self.body_params = tuple(body)
        self.weight_pos = next((i for i, p in enumerate(body) if p is weight), None)
        self.sketch = CountSketch(body, config.sketch_dim, config.seed, model.device)
        full = torch.zeros(config.n_probes, model.spec.d_vocab, device=model.device)
        full[:, self.tokens if self.tokens is not None else slice(None)] = self.probes
        self.probes_full = full

    def __call__(self, text: str) -> PromptSketch:
        m = self.config.n_probes
        with differentiable(self.model, self.selection), self._streamed_grads() as state:
            u = first_token_state(self.model, encode_prompt(self.model, text, self.config))
            z = head_logits(self.model, u, self.tokens, detach_head=True)[0]
            rows, cross = [], []
            for i in range(m):
                state["buf"], state["cross"] = self.sketch.buffer(), None
                torch.autograd.backward(z, grad_tensors=self.probes[i], retain_graph=i < m - 1,
                                        inputs=list(self.body_params))
                rows.append(self.sketch.result(state["buf"]))
                if self.weight_pos is not None:
                    cross.append(state["cross"] if state["cross"] is not None
                                 else torch.zeros(m, u.shape[-1], device=u.device))
        return PromptSketch(
            body=torch.stack(rows),
            u=u[0].detach().float(),
            cross=torch.stack(cross, dim=1).detach().float() if cross else None,
        )


    @contextmanager
    def _streamed_grads(self) -> Iterator[dict]:
        """Sketch each parameter's gradient as soon as backward has produced it, then drop it.

        So a probe's backward pass never holds all P gradient entries at once (P x 4 bytes: 30 GB at
        7B), only the tensors being computed. Gradients already in ``.grad`` (a training step's, when
        the kernel is taken from a callback) are set aside and put back untouched.
        """
        state: dict = {"buf": None, "cross": None}
        params = self.body_params
        saved = [p.grad for p in params]

        def hook_for(index: int):
            def hook(p: Tensor) -> None:
                self.sketch.add(state["buf"], index, p.grad)
                if index == self.weight_pos:
                    state["cross"] = (self.probes_full @ p.grad.float()).detach()
                p.grad = None

            return hook

        for p in params:
            p.grad = None
        handles = [p.register_post_accumulate_grad_hook(hook_for(i)) for i, p in enumerate(params)]
        try:
            yield state
        finally:
            for h in handles:
                h.remove()
            for p, g in zip(params, saved, strict=True):
                p.grad = g


def probe_inner_products(sketches: Sequence[PromptSketch], probes: Float[Tensor, "m vocab"],
                         head_weight: bool, head_bias: bool) -> tuple[Tensor, Tensor, Tensor]:
    """P[a, b, i, j] ~ <g_i(x_a), g_j(x_b)>, its sketch-noise variance, and the head scale u_a.u_b (+1)."""
    n, m = len(sketches), probes.shape[0]
    body = torch.stack([s.body for s in sketches]).double()  # N m s
    s_dim = body.shape[-1]
    flat = body.reshape(n * m, s_dim)
    inner = (flat @ flat.T).reshape(n, m, n, m).permute(0, 2, 1, 3)  # a b i j
    sq = (body**2).sum(-1)  # N m
    noise = sq[:, None, :, None] * sq[None, :, None, :] / s_dim
    u = torch.stack([s.u for s in sketches]).double()
    scale = (u @ u.T) * float(head_weight) + float(head_bias)  # N N
    rr = (probes.double() @ probes.double().T)  # m m
    inner = inner + scale[:, :, None, None] * rr
    if head_weight and sketches[0].cross is not None:
        c = torch.stack([s.cross for s in sketches]).double()  # N m m d
        inner = inner + torch.einsum("bijd,ad->abij", c, u) + torch.einsum("ajid,bd->abij", c, u)
    return inner, noise, scale


def frobenius_from_sketches(sketches: Sequence[PromptSketch], probes: Float[Tensor, "m vocab"],
                            head_weight: bool, head_bias: bool) -> Float[Tensor, "n n"]:
    """F[a, b] ~ ||K(x_a, x_b)||_F for all pairs (float64, symmetric), see the module docstring."""
    inner, noise, scale = probe_inner_products(sketches, probes, head_weight, head_bias)
    m, vocab = probes.shape
    off = ~torch.eye(m, dtype=torch.bool, device=inner.device)
    t = ((inner**2 - noise) * off).sum((-1, -2)) / (m * (m - 1))
    # Control variate: swap the head-head term's probe average for its exact expectation V (u'.u + 1)^2.
    rr2 = ((probes.double() @ probes.double().T) ** 2 * off).sum() / (m * (m - 1))
    t = t + scale**2 * (vocab - rr2)
    t = (t + t.T) / 2  # symmetric already (P[b, a, j, i] = P[a, b, i, j]); this only removes rounding
    if not torch.isfinite(t).all():
        a, b = torch.nonzero(~torch.isfinite(t))[0].tolist()
        raise NonFiniteError(f"sketched kernel estimate is not finite for {int((~torch.isfinite(t)).sum())} "
                             f"of {t.numel()} prompt pairs (first: prompts {a} x {b}; non-finite sketches?)")
    return t.clamp(min=0).sqrt().cpu()
