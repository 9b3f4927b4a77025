"""Refusal-preserving weight updates: project every optimizer update off an exported subspace.

``SubspaceConstraint(model, subspace)`` is called by the SFT loop as ``before_step(model)`` right before
``optimizer.step()`` and ``after_step(model)`` right after. It constrains the weights that *write* into
the space the subspace lives in:

* ``hook_z`` subspace of layer L (heads H): the value projection (``v_proj``; GPT-2: the bridge's
  ``attn.v`` split off ``c_attn``) of layer L. Under grouped
  query attention each KV head g feeds several query heads; for g we take the span Q_g of the basis
  blocks B_h of every selected query head h that reads g (h // (n_heads / n_kv_heads) == g).
* residual subspace (``resid_pre/mid/post``, ``attn_out``, ``mlp_out``): the embeddings (rows: tokens,
  and positions where the family learns them, as GPT-2 does) and every attention and MLP output
  projection (``o_proj`` / ``down_proj``; GPT-2: ``attn.c_proj`` / ``mlp.c_proj``) that writes into the
  residual stream before that site.

Module access goes through the model's :class:`interp.models.arch.Architecture`, so the same code serves
Llama, Qwen2/3 and GPT-2 (whose Conv1D weights are [in, out]: their output axis is handled as such).

Each update ΔW (whatever the optimizer: SGD, Adam, weight decay) is replaced by (I - QᵀQ) ΔW, done
exactly as W <- W - Qᵀ(Q W - Q W_before) after the step, so it is exact for Adam too (the *update*,
not the gradient, is projected).

Guarantee: for every constrained weight and every input x to it, the subspace component of its output
is unchanged by the step: Q (W + ΔW) x = Q W x (to float rounding). For a ``hook_z`` subspace, the
subspace projection B·z of the site's activation is therefore unchanged for any prompt as long as the
inputs of ``v_proj`` and the attention pattern are unchanged; ``freeze_upstream=True`` makes that hold
by freezing everything upstream of the site (embedding - tied to the unembedding in SmolLM2 -, all
earlier layers, and layer L's input norm, q_proj and k_proj), so B·z(prompt) is then invariant for every
prompt. For a residual subspace the guarantee is per writing weight (their inputs may still change
through other, unconstrained weights). Nothing downstream of the site is constrained.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from interp.hooks import orthonormalize
from interp.models.arch import LLAMA, Architecture
from interp.subspace import Subspace

log = logging.getLogger(__name__)


@dataclass
class _Row:
    """Keep Q @ W[rows] fixed (W's rows are [.., d_in] vectors; Q acts on the output index)."""

    name: str
    param: Tensor
    q: Tensor
    """[r, n_out] orthonormal rows over the output slice."""
    start: int
    stop: int
    snap: Tensor | None = None
    conv1d: bool = False
    """The weight is stored [in, out] (GPT-2's Conv1D): its output index is the second axis."""

    def block(self) -> Tensor:
        w = self.param.data.T if self.conv1d and self.param.ndim == 2 else self.param.data
        return w[self.start : self.stop]  # a view: in-place writes reach the parameter

    # q and snap stay float32 whatever the weights' dtype (bf16 weights: products in float32, the
    # correction cast back once; the subspace component is then kept to the weights' own rounding).
    def take(self) -> None:
        self.snap = self.q @ self.block().to(self.q.dtype)

    def restore(self) -> None:
        blk = self.block()
        blk.sub_((self.q.T @ (self.q @ blk.to(self.q.dtype) - self.snap)).to(blk.dtype))

    def violation(self) -> float:
        return float((self.q @ self.block().to(self.q.dtype) - self.snap).abs().max())


@dataclass
class _Embed:
    """Keep E @ Bᵀ fixed for an embedding matrix E [vocab, d]."""

    name: str
    param: Tensor
    q: Tensor
    snap: Tensor | None = None

    def take(self) -> None:
        self.snap = self.param.data.to(self.q.dtype) @ self.q.T

    def restore(self) -> None:
        w = self.param.data
        w.sub_(((w.to(self.q.dtype) @ self.q.T - self.snap) @ self.q).to(w.dtype))

    def violation(self) -> float:
        return float((self.param.data.to(self.q.dtype) @ self.q.T - self.snap).abs().max())


class SubspaceConstraint:
    """Projects the updates of the weights writing into ``subspace`` onto its orthogonal complement."""

    def __init__(self, model, subspace: Subspace, freeze_upstream: bool = False):
        subspace.check(model)
        self.subspace = subspace
        self.freeze_upstream = freeze_upstream
        basis = subspace.basis.detach().to(model.device, torch.float32)
        is_z = subspace.site.site.kind == "z"
        self._terms = self._z_terms(model, basis) if is_z else self._resid_terms(model, basis)
        self._frozen = self._freeze(model) if freeze_upstream else []
        log.info("subspace constraint on %s: %d weight blocks, %d frozen upstream tensors",
                 subspace.hook_name, len(self._terms), len(self._frozen))

    @property
    def constrained(self) -> list[str]:
        return [t.name for t in self._terms]

    def _z_terms(self, model, basis: Tensor) -> list:
        spec = model.spec
        heads = self.subspace.site.head_list(spec)
        blocks = basis.reshape(basis.shape[0], len(heads), spec.d_head)
        per_kv = spec.n_heads // spec.n_kv_heads
        v = model.arch.value_projection(model.hf, self.subspace.layer)
        terms = []
        for g in sorted({h // per_kv for h in heads}):
            rows = torch.cat([blocks[:, i] for i, h in enumerate(heads) if h // per_kv == g])
            q = orthonormalize(rows)
            sl = (g * spec.d_head, (g + 1) * spec.d_head)
            terms.append(_Row(f"{v.short}.weight[kv{g}]", v.weight, q, *sl, conv1d=v.conv1d))
            if v.bias is not None:
                terms.append(_Row(f"{v.short}.bias[kv{g}]", v.bias, q, *sl))
        return terms

    def _resid_terms(self, model, basis: Tensor) -> list:
        kind, layer = self.subspace.site.site.kind, self.subspace.layer
        arch, hf = model.arch, model.hf
        writers = []
        if kind in ("resid_pre", "resid_mid", "resid_post"):
            for i in range(layer):
                writers += [arch.attn_out_projection(hf, i), arch.mlp_out_projection(hf, i)]
        if kind in ("resid_mid", "resid_post", "attn_out"):
            writers.append(arch.attn_out_projection(hf, layer))
        if kind in ("resid_post", "mlp_out"):
            writers.append(arch.mlp_out_projection(hf, layer))
        terms: list = []
        if kind.startswith("resid"):
            for name, weight in arch.residual_embeddings(hf):
                terms.append(_Embed(name.split(".", 1)[1], weight, basis))
        for w in writers:
            n_out = w.out_in().shape[0]
            terms.append(_Row(f"{w.short}.weight", w.weight, basis, 0, n_out, conv1d=w.conv1d))
            if w.bias is not None:
                terms.append(_Row(f"{w.short}.bias", w.bias, basis, 0, n_out))
        return terms

    def _freeze(self, model) -> list[Tensor]:
        if self.subspace.site.site.kind != "z":
            raise ValueError("freeze_upstream is only defined for hook_z subspaces")
        prefixes = upstream_prefixes(self.subspace.layer, model.arch)
        params = [p for n, p in model.named_parameters().items() if n.startswith(prefixes)]
        for p in params:
            p.requires_grad_(False)
        return params

    def before_step(self, model) -> None:
        """Snapshot the subspace components of the constrained weights (and drop frozen grads)."""
        for p in self._frozen:
            p.grad = None
        with torch.no_grad():
            for t in self._terms:
                t.take()

    def after_step(self, model) -> None:
        """Remove the subspace component of each constrained weight's update."""
        with torch.no_grad():
            for t in self._terms:
                t.restore()

    def violation(self) -> float:
        """Largest change of a constrained weight's subspace component since ``before_step``."""
        return max((t.violation() for t in self._terms), default=0.0)


def upstream_prefixes(layer: int, arch: Architecture = LLAMA) -> tuple[str, ...]:
    """Parameter-name prefixes of everything upstream of layer ``layer``'s ``hook_z``.

    The embeddings, every earlier block, and the block's own input norm and the projections (and norms)
    that set its attention pattern (Llama: ``q_proj``, ``k_proj``): with them fixed, the inputs of the
    value projection and the attention pattern at that layer cannot change. Usable as
    ``SFTConfig.frozen`` to freeze the same weights without any projection (a control for the
    constraint). ``arch`` is the model's family (``model.arch``); the default is the Llama layout.
    """
    return arch.upstream_prefixes(layer)
