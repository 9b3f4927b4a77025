"""Whole-model refusal-preserving updates: every residual-stream writer, every layer, no freezing.

``ResidualWriterConstraint(model, subspaces)`` takes a :class:`ResidualSubspaces` (one refusal basis per
residual stream) and constrains every weight that writes into the residual stream: the embeddings
(stream 0), and at every block l the attention output projection and the MLP output projection (and
their biases, where the family has them), which write into stream l + 1. Nothing is frozen: every
other weight (q/k/v, gate/up, norms) trains freely.

``reach`` says which streams' subspaces a writer is kept off:

* ``"own"``: the stream it writes into (stream l + 1 for block l's projections);
* ``"downstream"`` (default): the union of that stream's and every later stream's subspaces, since a
  residual write persists in every later stream.

Guarantee (exact, to float rounding, whatever the optimizer): for every constrained weight W, every
input x and every protected stream s in its reach, ``Q_s (W + ΔW) x = Q_s W x``; the update is
replaced by ``(I - QᵀQ) ΔW`` after the step (so Adam's update, not the gradient, is projected). Hence
the *direct* contribution of every writer to each refusal component of the residual stream is
unchanged by training. The components themselves can still move, through the writers' inputs, which
the unconstrained read-side weights (attention patterns, values, MLP inputs, norms) change: the
guarantee is per writing weight, not on the activations.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch

from interp.train.constraints import _Embed, _Row
from interp.train.residual_subspaces import ResidualSubspaces

log = logging.getLogger(__name__)

Reach = Literal["own", "downstream"]


class ResidualWriterConstraint:
    """Projects the updates of every residual-stream writer off the refusal subspaces it writes into."""

    def __init__(self, model, subspaces: ResidualSubspaces, reach: Reach = "downstream"):
        if reach not in ("own", "downstream"):
            raise ValueError(f"reach must be 'own' or 'downstream', got {reach!r}")
        subspaces.check(model)
        self.subspaces, self.reach = subspaces, reach
        n_layers, arch, hf = model.spec.n_layers, model.arch, model.hf
        self._terms: list = []
        q0 = self._basis(0, n_layers, model.device)
        for name, weight in arch.residual_embeddings(hf):
            self._terms.append(_Embed(name.split(".", 1)[1], weight, q0))
        for layer in range(n_layers):
            q = self._basis(layer + 1, n_layers, model.device)
            for w in (arch.attn_out_projection(hf, layer), arch.mlp_out_projection(hf, layer)):
                n_out = w.out_in().shape[0]
                self._terms.append(_Row(f"{w.short}.weight", w.weight, q, 0, n_out, conv1d=w.conv1d))
                if w.bias is not None:
                    self._terms.append(_Row(f"{w.short}.bias", w.bias, q, 0, n_out))
        log.info("residual writer constraint (%s): %d weight blocks, subspace ranks %s", reach, len(self._terms),
                 [len(b) for b in subspaces.bases])

    def _basis(self, stream: int, n_layers: int, device) -> torch.Tensor:
        streams = [stream] if self.reach == "own" else list(range(stream, n_layers + 1))
        return self.subspaces.span(streams).to(device, torch.float32)

    @property
    def constrained(self) -> list[str]:
        return [t.name for t in self._terms]

    def _active(self) -> list:
        # Frozen writers (the tied embedding, by default) cannot move: skip their snapshots.
        return [t for t in self._terms if t.param.requires_grad]

    def before_step(self, model) -> None:
        """Snapshot the protected components of the trainable writers."""
        with torch.no_grad():
            for t in self._active():
                t.take()

    def after_step(self, model) -> None:
        """Remove the protected component of each trainable writer's update."""
        with torch.no_grad():
            for t in self._active():
                t.restore()

    def violation(self) -> float:
        """Largest change of a writer's protected component since ``before_step``."""
        return max((t.violation() for t in self._active()), default=0.0)
