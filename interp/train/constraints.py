"""Refusal-preserving weight updates: project every optimizer update off an exported subspace.

``SubspaceConstraint(model, subspace)`` is called by the SFT loop as ``before_step(model)`` right before
``optimizer.step()`` and ``after_step(model)`` right after. It constrains the weights that *write* into
the space the subspace lives in:

* ``hook_z`` subspace of layer L (heads H): the value projection ``v_proj`` of layer L. Under grouped
  query attention each KV head g feeds several query heads; for g we take the span Q_g of the basis
  blocks B_h of every selected query head h that reads g (h // (n_heads / n_kv_heads) == g).
* residual subspace (``resid_pre/mid/post``, ``attn_out``, ``mlp_out``): the token embedding (rows)
  and every ``o_proj`` / ``down_proj`` that writes into the residual stream before that site.

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

    def block(self) -> Tensor:
        return self.param.data[self.start : self.stop]

    def take(self) -> None:
        self.snap = self.q @ self.block()

    def restore(self) -> None:
        blk = self.block()
        blk.sub_(self.q.T @ (self.q @ blk - self.snap))

    def violation(self) -> float:
        return float((self.q @ self.block() - self.snap).abs().max())


@dataclass
class _Embed:
    """Keep E @ Bᵀ fixed for an embedding matrix E [vocab, d]."""

    name: str
    param: Tensor
    q: Tensor
    snap: Tensor | None = None

    def take(self) -> None:
        self.snap = self.param.data @ self.q.T

    def restore(self) -> None:
        self.param.data.sub_((self.param.data @ self.q.T - self.snap) @ self.q)

    def violation(self) -> float:
        return float((self.param.data @ self.q.T - self.snap).abs().max())


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
        attn = model.hf.model.layers[self.subspace.layer].self_attn
        terms = []
        for g in sorted({h // per_kv for h in heads}):
            rows = torch.cat([blocks[:, i] for i, h in enumerate(heads) if h // per_kv == g])
            q = orthonormalize(rows)
            sl = (g * spec.d_head, (g + 1) * spec.d_head)
            name = f"layers.{self.subspace.layer}.v_proj"
            terms.append(_Row(f"{name}.weight[kv{g}]", attn.v_proj.weight, q, *sl))
            if getattr(attn.v_proj, "bias", None) is not None:
                terms.append(_Row(f"{name}.bias[kv{g}]", attn.v_proj.bias, q, *sl))
        return terms

    def _resid_terms(self, model, basis: Tensor) -> list:
        kind, layer = self.subspace.site.site.kind, self.subspace.layer
        layers = model.hf.model.layers
        writers: list[tuple[str, torch.nn.Module]] = []
        if kind in ("resid_pre", "resid_mid", "resid_post"):
            for i in range(layer):
                writers += [(f"layers.{i}.o_proj", layers[i].self_attn.o_proj),
                            (f"layers.{i}.down_proj", layers[i].mlp.down_proj)]
        if kind in ("resid_mid", "resid_post", "attn_out"):
            writers.append((f"layers.{layer}.o_proj", layers[layer].self_attn.o_proj))
        if kind in ("resid_post", "mlp_out"):
            writers.append((f"layers.{layer}.down_proj", layers[layer].mlp.down_proj))
        terms: list = []
        if kind.startswith("resid"):
            terms.append(_Embed("embed_tokens.weight", model.hf.model.embed_tokens.weight, basis))
        for name, mod in writers:
            terms.append(_Row(f"{name}.weight", mod.weight, basis, 0, mod.weight.shape[0]))
            if getattr(mod, "bias", None) is not None:
                terms.append(_Row(f"{name}.bias", mod.bias, basis, 0, mod.bias.shape[0]))
        return terms

    def _freeze(self, model) -> list[Tensor]:
        if self.subspace.site.site.kind != "z":
            raise ValueError("freeze_upstream is only defined for hook_z subspaces")
        prefixes = upstream_prefixes(self.subspace.layer)
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


def upstream_prefixes(layer: int) -> tuple[str, ...]:
    """Parameter-name prefixes of everything upstream of layer ``layer``'s ``hook_z``.

    The embedding, every earlier block, and the block's own input norm, ``q_proj`` and ``k_proj``: with
    them fixed, the inputs of ``v_proj`` and the attention pattern at that layer cannot change. Usable as
    ``SFTConfig.frozen`` to freeze the same weights without any projection (a control for the constraint).
    """
    blk = f"model.layers.{layer}."
    return ("model.embed_tokens", *(f"model.layers.{i}." for i in range(layer)),
            blk + "input_layernorm", blk + "self_attn.q_proj", blk + "self_attn.k_proj")
