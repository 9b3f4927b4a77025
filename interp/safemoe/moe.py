"""The assembled SafeMoE model: one base model carrying every expert, control and merge as peft adapters.

:meth:`SafeMoE.variant` is a scope in which the model behaves as one system of the comparison table:

* ``base``: every expert off (bitwise the untrained model);
* ``expert:<domain>``: that one expert at weight 1;
* ``merge_uniform`` / ``merge_negation``: peft ``add_weighted_adapter`` merges of the experts;
* ``safe_data_lora``: the single LoRA trained on the same safe data without experts (the no-expert control);
* ``router:<key>``: a trained router over its experts (``main``, ``zeroshot``, ``random``), routing
  each prompt once at prefill (:func:`interp.safemoe.routing.routed`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import InterpError
from interp.safemoe.router import RouterResult, prompt_features, residual_features
from interp.safemoe.routing import Impl, fixed_weights, routed


@dataclass
class SafeMoE:
    """A model with experts (and optional controls) loaded, plus the routers over them."""

    model: object
    """The interp Model (its ``hf`` carries the adapters)."""
    tuner: object
    """peft ``LoraModel`` holding every adapter."""
    experts: tuple[str, ...]
    """Trained expert adapter names (domains), in router column order."""
    routers: dict[str, RouterResult] = field(default_factory=dict)
    """Router key -> trained router (its ``experts`` name its columns)."""
    adapters: tuple[str, ...] = ()
    """Other adapters usable alone as a variant (merges, ``safe_data_lora``)."""
    impl: Impl = "fused"
    """How expert branches run (:data:`interp.safemoe.routing.Impl`)."""

    def variants(self) -> list[str]:
        return (["base"] + [f"expert:{e}" for e in self.experts] + list(self.adapters)
                + [f"router:{k}" for k in self.routers])

    @contextmanager
    def variant(self, name: str) -> Iterator[None]:
        m = self.model
        if name == "base":
            with fixed_weights(m, self.experts, torch.zeros(len(self.experts)), self.impl):
                yield
        elif name.startswith("expert:"):
            e = name.split(":", 1)[1]
            if e not in self.experts:
                raise InterpError(f"no expert {e!r}; experts: {list(self.experts)}")
            w = torch.tensor([float(x == e) for x in self.experts])
            with fixed_weights(m, self.experts, w, self.impl):
                yield
        elif name in self.adapters:
            with fixed_weights(m, [name], torch.ones(1), self.impl):
                yield
        elif name.startswith("router:") and name.split(":", 1)[1] in self.routers:
            r = self.routers[name.split(":", 1)[1]]
            layer = r.router.config.layer
            with routed(m, r.experts, r.router, lambda ids, mask: residual_features(m, layer, ids, mask), self.impl):
                yield
        else:
            raise InterpError(f"unknown SafeMoE variant {name!r}; known: {self.variants()}")

    def routing_weights(self, key: str, prompts: list[str], batch_size: int = 16) -> Float[Tensor, "n experts"]:
        """The weights router ``key`` gives each prompt (as in generation: base features, last prompt token)."""
        r = self.routers[key]
        with fixed_weights(self.model, r.experts, torch.zeros(len(r.experts))), torch.no_grad():
            feats = prompt_features(self.model, r.router.config.layer, prompts, batch_size)
            return r.router(feats.to(self.model.device)).cpu()
