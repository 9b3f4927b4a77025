"""Per-sample mixing of LoRA experts: base + sum_e w[b, e] * Delta W_e x, inside any forward or ``generate``.

peft's ``LoraLayer`` adds ``lora_B[e](lora_A[e](dropout(x))) * scaling[e]`` for every active adapter
``e``. Two implementations scale that per batch row by ``w[:, e]`` (broadcast over positions), so one
batch can route every row differently:

* ``fused`` (default): peft's loop is switched off (``_disable_adapters``) and a forward hook on each
  LoRA layer adds ``((x A^T) * w) (B * scaling)^T`` with every expert's A and B stacked, two matmuls per
  layer whatever the number of experts. No weights (``None``) skips it: bitwise the base model; zero
  weights add exactly ``+0``; a one-hot row equals the single adapter to float rounding (~1e-7).
* ``loop``: peft's own loop, with a forward hook on each ``lora_B[e]`` multiplying its output; a one-hot
  row equals that single adapter bitwise (multiplication by 1.0 and additions of 0 are exact), but each
  expert costs its own matmuls, hooks and additions at every layer and token.

Two ways to set the weights:

* :func:`fixed_weights`: given ``[batch, experts]`` weights (or one ``[experts]`` row for every
  sample), for teacher-forced losses and router training (gradients flow into the weights);
* :func:`routed`: a router computes the weights once per prompt, at the prefill of every forward
  without a KV cache, from the *base* model's residual stream at the last position (the experts are
  off during that partial forward). Decode steps (KV cache) and any uncached forward over the same
  rows extended (the generation guard's check of prompt + reply) keep those weights, so
  ``interp.evaluate.generate.generate`` routes each prompt by the prompt alone, with batching and
  left padding. Hooks attached with ``model.hooks`` fire in the feature pass too (one extra partial
  forward per batch). An uncached forward over *new* rows routes by their last token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import InterpError


@dataclass
class RoutingState:
    """The weights the expert branches read; ``weights`` None means every expert off."""

    experts: tuple[str, ...]
    """Adapter names, in the order of the weight columns."""
    weights: Float[Tensor, "batch experts"] | None = None
    """Current per-row weights."""
    prefix: Int[Tensor, "batch seq"] | None = None
    """Token ids of the prefill the weights were computed for (automatic routing only)."""

    def scale(self, index: int, out: Tensor) -> Tensor:
        if self.weights is None:
            return out * 0.0
        w = self.weights[:, index].to(out.dtype)
        if w.shape[0] == 1:  # one row of weights for every sample
            return out * w[0]
        if w.shape[0] != out.shape[0]:
            raise InterpError(f"routing weights are for {w.shape[0]} rows but the forward has {out.shape[0]}; "
                              "set weights for this batch (fixed_weights) or route it (routed)")
        return out * w.view(-1, *([1] * (out.dim() - 1)))


def _lora_layers(hf: torch.nn.Module):
    from peft.tuners.lora import LoraLayer

    return [m for m in hf.modules() if isinstance(m, LoraLayer)]


def _check_experts(hf: torch.nn.Module, experts: Sequence[str]) -> list:
    layers = _lora_layers(hf)
    if not layers:
        raise InterpError("the model has no LoRA adapters to route (load experts first)")
    if isinstance(experts, str) or not experts:
        raise InterpError(f"experts must be a non-empty sequence of adapter names, got {experts!r}")
    have = set(layers[0].lora_A.keys())
    missing = [e for e in experts if e not in have]
    if missing:
        raise InterpError(f"adapters {missing} are not on the model; it has {sorted(have)}")
    return layers


Impl = Literal["fused", "loop"]
"""How the expert branches run: ``fused`` (one stacked matmul pair per layer, fast) or ``loop``
(peft's own per-adapter loop with a scaling hook per adapter: one-hot rows equal the single adapter
bitwise, but every expert costs its own small matmuls)."""


@contextmanager
def expert_scaling(model, experts: Sequence[str], impl: Impl = "fused") -> Iterator[RoutingState]:
    """Activate exactly ``experts`` and scale each one's branch by the state's weights (all off at first).

    The previously active adapters and every hook are restored on exit, even on an exception.
    """
    if impl not in ("fused", "loop"):
        raise InterpError(f"routing impl must be 'fused' or 'loop', got {impl!r}")
    layers = _check_experts(model.hf, experts)
    state = RoutingState(tuple(experts))
    before = [(list(m.active_adapters), m._disable_adapters) for m in layers]
    handles = []
    try:
        for m in layers:
            m.set_adapter(list(experts))
            if impl == "loop":
                for i, e in enumerate(experts):
                    handles.append(m.lora_B[e].register_forward_hook(
                        lambda mod, args, out, i=i: state.scale(i, out)))
            else:
                m._disable_adapters = True  # peft runs the base layer only; the hook adds every expert at once
                handles.append(m.register_forward_hook(_fused_hook(m, experts, state)))
        _freeze_adapters(layers)
        yield state
    finally:
        for h in handles:
            h.remove()
        for m, (active, disabled) in zip(layers, before, strict=True):
            m.set_adapter(active)
            m._disable_adapters = disabled
        _freeze_adapters(layers)


def _fused_hook(layer, experts: Sequence[str], state: RoutingState):
    """``out + ((x A^T) * w per expert's rank block) (B * scaling)^T`` with the experts stacked."""
    for e in experts:
        if not isinstance(layer.lora_dropout[e], torch.nn.Identity):
            raise InterpError(f"fused routing needs adapters without dropout; {e!r} has "
                              f"{layer.lora_dropout[e]} (use impl='loop')")
        if e in layer.lora_variant:
            raise InterpError(f"fused routing supports plain LoRA only; {e!r} is a {type(layer.lora_variant[e])}")
    A = torch.cat([layer.lora_A[e].weight for e in experts]).detach()
    B = torch.cat([layer.lora_B[e].weight * layer.scaling[e] for e in experts], dim=1).detach()
    ranks = torch.tensor([layer.lora_A[e].weight.shape[0] for e in experts], device=A.device)

    def hook(module, args, out):
        if state.weights is None:
            return out
        w = state.weights.to(A.dtype)
        if w.shape[0] not in (1, out.shape[0]):
            raise InterpError(f"routing weights are for {w.shape[0]} rows but the forward has {out.shape[0]}; "
                              "set weights for this batch (fixed_weights) or route it (routed)")
        w_rep = torch.repeat_interleave(w, ranks, dim=1)
        h = args[0].to(A.dtype) @ A.T
        h = h * w_rep.view(w_rep.shape[0], *([1] * (h.dim() - 2)), -1)
        return out + (h @ B.T).to(out.dtype)

    return hook


def _freeze_adapters(layers) -> None:
    # peft's set_adapter marks the active adapters trainable; routing never trains them.
    for m in layers:
        for p in m.parameters():
            p.requires_grad_(False)


def _as_rows(weights: Tensor, n_experts: int) -> Tensor:
    w = weights if weights.dim() == 2 else weights.view(1, -1)
    if w.shape[-1] != n_experts:
        raise InterpError(f"weights have {w.shape[-1]} columns but there are {n_experts} experts")
    return w


@contextmanager
def fixed_weights(model, experts: Sequence[str],
                  weights: Float[Tensor, "batch experts"] | Float[Tensor, " experts"],
                  impl: Impl = "fused") -> Iterator[RoutingState]:
    """Route with given weights: ``[batch, experts]`` per row, or one ``[experts]`` row for any batch."""
    with expert_scaling(model, experts, impl) as state:
        state.weights = _as_rows(weights, len(experts))
        yield state


Features = Callable[[Tensor, Tensor], Float[Tensor, "batch d_model"]]


@contextmanager
def routed(model, experts: Sequence[str], router: Callable[[Tensor], Tensor],
           features: Features, impl: Impl = "fused") -> Iterator[RoutingState]:
    """Automatic routing: ``router(features(input_ids, attention_mask))`` at each new prefill (see module doc).

    ``features`` computes the router's input from the base model (e.g. :func:`interp.safemoe.router.
    residual_features`); it runs with every expert off.
    """
    with expert_scaling(model, experts, impl) as state:

        def pre_hook(module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None:
                raise InterpError("routed forward needs input_ids (inputs_embeds cannot be routed)")
            cache = kwargs.get("past_key_values")
            cached = cache is not None and cache.get_seq_length() > 0
            if cached or _extends(state.prefix, ids):
                if state.weights is None or state.weights.shape[0] != ids.shape[0]:
                    raise InterpError("a cached forward arrived before any prefill was routed")
                return None
            mask = kwargs.get("attention_mask")
            mask = torch.ones_like(ids) if mask is None else mask
            state.weights = None  # the feature pass runs on the base model
            with torch.no_grad():
                w = router(features(ids, mask))
            state.weights, state.prefix = _as_rows(w, len(experts)).detach(), ids.detach().clone()
            return None

        handle = model.hf.register_forward_pre_hook(pre_hook, with_kwargs=True)
        try:
            yield state
        finally:
            handle.remove()


def _extends(prefix: Tensor | None, ids: Tensor) -> bool:
    """``ids`` are the routed prefill's rows, possibly extended (the generation guard's re-check)."""
    if prefix is None or ids.shape[0] != prefix.shape[0] or ids.shape[1] < prefix.shape[1]:
        return False
    return bool(torch.equal(ids[:, : prefix.shape[1]], prefix.to(ids.device)))
