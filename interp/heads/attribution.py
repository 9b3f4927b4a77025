"""Attribution patching: a first-order estimate of every head's patching effect from one backward pass.

For a clean prompt and a baseline (corrupted) activation z', the effect of patching head h is
``metric(clean) - metric(z_h <- z'_h) ~= grad_z_h metric . (z_h - z'_h)``, summed over d_head and the
patched positions (Nanda 2023; Syed et al. 2023). One forward and one backward pass per batch give it
for all heads at once; exact patching needs one forward per head (:mod:`interp.heads.patching`).
"""

from __future__ import annotations

from collections.abc import Sequence

import einops
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.heads.activations import baseline_rows, batches, check_positions, z_sites
from interp.heads.metrics import Metric
from interp.heads.scores import HeadScores
from interp.models import Model
from interp.models.params import only_these_require_grad


def _keep_graph(store: dict, key: int):
    def hook(act: Tensor, *, hook) -> Tensor:
        if not act.requires_grad:
            # The first hooked z becomes the graph's leaf (the weights are frozen for the pass); every
            # later z depends on it through the residual stream, so its gradient keeps all paths.
            act = act.detach().requires_grad_(True)
        store[key] = act
        return act  # returned so the stored tensor is the one the forward pass goes on with

    return hook


def attribution_batch(
    model: Model, prompts: Sequence[str], rows: Sequence[int], metric: Metric,
    baseline: Float[Tensor, "b pos layer head d_head"], positions: int,
) -> tuple[Float[Tensor, "layer head"], Float[Tensor, " batch"]]:
    """Summed attribution of one batch, and the batch's clean metric values."""
    enc = model.encode_chat(prompts)
    check_positions(enc, positions)
    sites = z_sites(model)
    store: dict = {}
    # No weight in the graph: autograd then keeps no layer inputs for weight gradients nobody reads.
    with torch.enable_grad(), only_these_require_grad(model, {}), \
            model.hooks(fwd=[(s, _keep_graph(store, s.layer)) for s in sites]):
        values = metric(model.next_token_logits(enc), rows)
        zs = [store[s.layer] for s in sites]
        grads = torch.autograd.grad(values.sum(), zs)
    base = baseline_rows(baseline, rows).to(model.device)
    out = []
    for layer, (z, g) in enumerate(zip(zs, grads, strict=True)):
        diff = z.detach()[:, -positions:].float() - base[:, :, layer]
        out.append(einops.einsum(g[:, -positions:].float(), diff, "b p h d, b p h d -> h"))
    return torch.stack(out), values.detach()


def attribution_patching(
    model: Model, prompts: Sequence[str], metric: Metric,
    baseline: Float[Tensor, "b pos layer head d_head"], batch_size: int = 8, provenance: dict | None = None,
) -> HeadScores:
    """Estimated ``metric(clean) - metric(patched)`` for every head, averaged over ``prompts``.

    ``prompts`` are user prompts (chat-formatted here); ``baseline`` comes from
    :func:`interp.heads.activations.z_baseline` (a mean over corrupted prompts, or paired rows) and sets
    the number of patched final positions.
    """
    positions = baseline.shape[1]
    total = torch.zeros(model.spec.n_layers, model.spec.n_heads, dtype=torch.float64)
    clean = []
    for rows, chunk in tqdm(list(batches(prompts, batch_size)), desc="attribution", leave=False):
        attr, values = attribution_batch(model, chunk, rows, metric, baseline, positions)
        total += attr.double().cpu()
        clean.append(values.cpu())
    scores = (total / len(prompts)).float()
    prov = {"model": model.name, "n_prompts": len(prompts), "positions": positions,
            "baseline": "paired" if baseline.shape[0] > 1 else "mean",
            "clean_metric_mean": float(torch.cat(clean).mean()), **(provenance or {})}
    return HeadScores(scores, metric.name, "attribution", prov)
