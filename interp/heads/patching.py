"""Exact per-head patching: replace one head's z at the final positions and measure the metric.

With a baseline that is the mean over *other* prompts (e.g. harmless ones) this is activation patching
of clean -> corrupted; with the mean over a reference set of the same kind it is mean-ablation. The
score is ``metric(clean) - metric(patched)``, the quantity :mod:`interp.heads.attribution` estimates.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.heads.activations import baseline_rows, batches, check_positions, collect_z, z_baseline
from interp.heads.metrics import Metric
from interp.heads.scores import Head, HeadScores
from interp.hooks import Site
from interp.models import Encoding, Model


def _patch_copies(copies: Sequence[tuple[int, int, Tensor]], batch: int, positions: int):
    """Hook patching, in copy ``j`` of a batch repeated along dim 0, head ``h`` to ``source``."""
    def hook(act: Tensor, *, hook) -> Tensor:
        act = act.clone()
        for j, head, source in copies:
            act[j * batch:(j + 1) * batch, -positions:, head] = source.to(act.device, act.dtype)
        return act

    return hook


def _repeat(enc: Encoding, k: int) -> Encoding:
    return Encoding(enc.input_ids.repeat(k, 1), enc.attention_mask.repeat(k, 1))


@torch.no_grad()
def patch_heads(
    model: Model, prompts: Sequence[str], metric: Metric,
    baseline: Float[Tensor, "b pos layer head d_head"], heads: Sequence[Head] | None = None,
    batch_size: int = 8, method: str = "activation_patching", provenance: dict | None = None,
    heads_per_forward: int = 8,
) -> HeadScores:
    """``metric(clean) - metric(head patched to baseline)`` per head, averaged over prompts.

    ``heads`` defaults to all heads; heads not evaluated score 0 (listed in the provenance).
    ``heads_per_forward``: heads patched in one forward pass, each in its own copy of the batch (the
    batch is repeated along dim 0), so a forward holds ``batch_size * heads_per_forward`` rows; the
    scores equal those of one forward per head up to float rounding (matmuls of another batch shape).
    """
    if heads_per_forward < 1:
        raise ValueError(f"heads_per_forward must be >= 1, got {heads_per_forward}")
    spec = model.spec
    all_heads = [(la, h) for la in range(spec.n_layers) for h in range(spec.n_heads)]
    heads = list(heads) if heads is not None else all_heads
    positions = baseline.shape[1]
    total = torch.zeros(spec.n_layers, spec.n_heads, dtype=torch.float64)
    chunks = list(batches(prompts, batch_size))
    groups = [heads[i:i + heads_per_forward] for i in range(0, len(heads), heads_per_forward)]
    bar = tqdm(total=len(chunks) * len(heads), desc=method.replace("_", " "), leave=False)
    for rows, chunk in chunks:
        enc = model.encode_chat(chunk)
        check_positions(enc, positions)
        clean = metric(model.next_token_logits(enc), rows)
        base = baseline_rows(baseline, rows)
        n = len(rows)
        for group in groups:
            by_layer: dict[int, list] = {}
            for j, (layer, head) in enumerate(group):
                by_layer.setdefault(layer, []).append((j, head, base[:, :, layer, head]))
            hooks = [(Site("z", la), _patch_copies(cp, n, positions)) for la, cp in by_layer.items()]
            with model.hooks(fwd=hooks):
                logits = model.next_token_logits(_repeat(enc, len(group)))
            for j, (layer, head) in enumerate(group):
                patched = metric(logits[j * n:(j + 1) * n], rows)
                total[layer, head] += float((clean - patched).double().sum())
            bar.update(len(group))
    bar.close()
    prov = {"model": model.name, "n_prompts": len(prompts), "positions": positions,
            "baseline": "paired" if baseline.shape[0] > 1 else "mean", "n_heads_evaluated": len(heads),
            **({"heads": heads} if len(heads) < spec.n_total_heads else {}), **(provenance or {})}
    return HeadScores((total / len(prompts)).float(), metric.name, method, prov)  # type: ignore[arg-type]


def mean_ablation(
    model: Model, prompts: Sequence[str], metric: Metric, positions: int,
    reference: Sequence[str] | None = None, heads: Sequence[Head] | None = None, batch_size: int = 8,
) -> HeadScores:
    """Replace each head's z at the final positions by its mean over ``reference`` (default: ``prompts``)."""
    baseline = z_baseline(model, list(reference or prompts), positions, batch_size)
    return patch_heads(model, prompts, metric, baseline, heads, batch_size, "mean_ablation",
                       {"reference": "prompts" if reference is None else f"{len(reference)} prompts"})


def head_means(
    model: Model, prompts: Sequence[str], batch_size: int = 8
) -> Float[Tensor, "layer head d_head"]:
    """Mean z of every head at the last position (input of :func:`interp.interventions.mean_ablate_heads`)."""
    return collect_z(model, prompts, 1, batch_size, desc="head means").double().mean((0, 1)).float()
