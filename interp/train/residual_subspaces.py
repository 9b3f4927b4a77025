"""A refusal subspace of the residual stream at every layer, and the refusal components it measures.

The residual stream is read at ``S = n_layers + 1`` points, the *streams*: stream 0 is ``resid_pre``
of block 0 (what the embeddings write), stream ``l + 1`` is ``resid_post`` of block ``l`` (what block
``l``'s attention and MLP output projections write into). At each stream the basis is built from
harmful and harmless training prompts, pooling each prompt's activations over its *user* tokens only
(:func:`interp.models.chat_spans.user_token_mask`): the template tokens every prompt shares would
otherwise dominate the mean. Row 0 is the difference of means (harmful - harmless); rows 1..r-1 are the
top principal directions of the harmful prompts' offsets from the harmless mean after the difference
of means is removed (what else separates the harmful prompts), so r = 1 is the classic direction.

:func:`refusal_components` measures ``Q_s · pool(a_s(x))`` for every stream on a batch, with gradients
when asked: the quantity the null-space projection and the anchor loss protect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interp.hooks import Site, capture, orthonormalize
from interp.models.chat_spans import user_token_mask


def stream_site(stream: int) -> Site:
    """Hook site of stream ``stream``: 0 is ``resid_pre`` of block 0, ``l + 1`` is ``resid_post`` of block l."""
    if stream < 0:
        raise ValueError(f"stream must be >= 0, got {stream}")
    return Site("resid_pre", 0) if stream == 0 else Site("resid_post", stream - 1)


@dataclass(frozen=True)
class ResidualSubspaceConfig:
    """How the per-stream refusal bases are built."""

    rank: int = 2
    """Directions per stream (row 0 the difference of means, the rest principal offsets)."""
    batch_size: int = 8
    """Prompts per forward pass."""
    eps: float = 1e-6
    """Relative singular-value cut below which a direction counts as absent (dropped)."""

    def __post_init__(self) -> None:
        if self.rank < 1 or self.batch_size < 1 or not 0 < self.eps < 1:
            raise ValueError(f"invalid ResidualSubspaceConfig: {self}")


@dataclass
class ResidualSubspaces:
    """One orthonormal refusal basis per residual stream (see the module docstring for the streams)."""

    bases: list[Float[Tensor, "_r d"]]
    """``bases[s]``: orthonormal rows at stream s (float32, CPU); S = n_layers + 1 entries."""
    provenance: dict = field(default_factory=dict)
    """Model, prompt counts, settings, per-stream separation of the two classes."""

    def __post_init__(self) -> None:
        if not self.bases:
            raise ValueError("ResidualSubspaces needs at least one stream")
        d = self.bases[0].shape[-1]
        for s, b in enumerate(self.bases):
            if b.ndim != 2 or b.shape[1] != d or not len(b):
                raise ValueError(f"stream {s}: basis must be a non-empty [r, {d}] matrix, got {tuple(b.shape)}")
            gram = b.double() @ b.double().T
            if not torch.allclose(gram, torch.eye(len(b), dtype=gram.dtype), atol=1e-4):
                raise ValueError(f"stream {s}: basis rows are not orthonormal")

    @property
    def n_streams(self) -> int:
        return len(self.bases)

    @property
    def d(self) -> int:
        return int(self.bases[0].shape[1])

    def span(self, streams: Sequence[int]) -> Float[Tensor, "k d"]:
        """Orthonormal basis of the union of the given streams' subspaces."""
        if not streams:
            raise ValueError("span of no streams")
        return orthonormalize(torch.cat([self.bases[s] for s in streams]).double()).float()

    def check(self, model) -> None:
        if self.n_streams != model.spec.n_layers + 1 or self.d != model.spec.d_model:
            raise ValueError(f"residual subspaces for {self.n_streams} streams of width {self.d} do not fit model "
                             f"{model.name!r} ({model.spec.n_layers + 1} streams of width {model.spec.d_model})")


def pooled_streams(model, prompts: Sequence[str], streams: Sequence[int], grad: bool = False,
                   ) -> Float[Tensor, "batch n_streams d"]:
    """Mean activation over each prompt's user tokens at each stream (one forward, stopped after the last)."""
    enc = model.encode_chat(list(prompts))
    mask_BS: Bool[Tensor, "batch seq"] = user_token_mask(model, list(prompts))
    got: dict = {}
    sites = [stream_site(s) for s in streams]
    with torch.set_grad_enabled(grad), model.hooks(fwd=[(site, capture(got, i, detach=not grad))
                                                        for i, site in enumerate(sites)]):
        model.run_hooks(enc, stop_after=max(sites, key=_order))
    w_BS = mask_BS.to(got[0].dtype) / mask_BS.sum(1, keepdim=True).to(got[0].dtype)
    return torch.stack([torch.einsum("bs,bsd->bd", w_BS, got[i]) for i in range(len(sites))], dim=1)


def _order(site: Site) -> tuple[int, int]:
    return (-1, 0) if site.kind == "resid_pre" else (site.layer, 1)


@torch.no_grad()
def _pooled_all(model, prompts: Sequence[str], batch_size: int) -> Float[Tensor, "n n_streams d"]:
    streams = list(range(model.spec.n_layers + 1))
    rows = [pooled_streams(model, prompts[i:i + batch_size], streams).double().cpu()
            for i in range(0, len(prompts), batch_size)]
    return torch.cat(rows)


def residual_refusal_subspaces(model, harmful: Sequence[str], harmless: Sequence[str],
                               config: ResidualSubspaceConfig = ResidualSubspaceConfig()) -> ResidualSubspaces:
    """Per-stream refusal bases from harmful and harmless (training) prompts; see the module docstring."""
    if len(harmful) < 2 or len(harmless) < 1:
        raise ValueError(f"need >= 2 harmful and >= 1 harmless prompts, got {len(harmful)} and {len(harmless)}")
    xh = _pooled_all(model, harmful, config.batch_size)
    xn = _pooled_all(model, harmless, config.batch_size)
    bases, separation = [], []
    for s in range(xh.shape[1]):
        offsets = xh[:, s] - xn[:, s].mean(0)
        dom = offsets.mean(0)
        if not torch.isfinite(offsets).all() or float(dom.norm()) == 0:
            raise ValueError(f"stream {s}: harmful and harmless means coincide or are not finite")
        u = dom / dom.norm()
        rest = offsets - (offsets @ u)[:, None] * u
        # rest ⊥ u, so u and rest's right singular vectors are already orthonormal; keep u as row 0.
        _, sv, vh = torch.linalg.svd(rest, full_matrices=False)
        extra = vh[: config.rank - 1][sv[: config.rank - 1] > config.eps * float(dom.norm()) * len(offsets) ** 0.5]
        bases.append(torch.cat([u[None], extra]).float())
        spread = xn[:, s].std(0).norm() if len(xn) > 1 else torch.tensor(float("nan"))
        separation.append(float(dom.norm() / spread))
    prov = {"model": model.name, "n_harmful": len(harmful), "n_harmless": len(harmless), "rank": config.rank,
            "pooling": "user tokens", "streams": "0: resid_pre 0; l+1: resid_post l",
            "separation": separation}
    return ResidualSubspaces(bases, prov)


def refusal_components(model, subspaces: ResidualSubspaces, prompts: Sequence[str],
                       streams: Sequence[int] | None = None, grad: bool = False) -> Float[Tensor, " m"]:
    """``Q_s · pool(a_s(x))`` for every prompt x and stream s, flattened [prompt, stream, row] (float32, or
    the model's dtype where wider).

    ``grad=True`` keeps the graph to the weights (for the null-space Jacobian and the anchor loss).
    """
    streams = list(range(subspaces.n_streams)) if streams is None else list(streams)
    pooled = pooled_streams(model, prompts, streams, grad=grad)
    pooled = pooled.to(torch.promote_types(pooled.dtype, torch.float32))  # bf16 weights: project in float32
    parts = [pooled[:, i] @ subspaces.bases[s].to(pooled.device, pooled.dtype).T for i, s in enumerate(streams)]
    return torch.cat(parts, dim=1).flatten()
