"""Difference-of-means directions in the residual stream, per-head ITI directions, and their selection.

The refusal direction is ``mean(harmful) - mean(harmless)`` of ``resid_pre`` at the last prompt token
(Arditi et al. 2024), one candidate per layer; the truthfulness direction is ``mean(correct answer) -
mean(incorrect answer)`` at the answer's last token, so *adding* it moves towards truthful answers and
its negative is the "hallucination direction". Means are accumulated in float64. The candidate layer is
chosen by its effect on a validation split (:func:`select_refusal_direction`,
:func:`select_truth_direction`). Per-head ITI directions (Li et al. 2023) are mass-mean shifts of each
head's z between true and false answers, with the std of activations along them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from interp.data.prompts import PromptSet
from interp.heads.activations import batches
from interp.heads.metrics import Metric
from interp.heads.probes import AnswerActivations, answer_activations, answer_texts
from interp.hooks import Site, SiteKind
from interp.io import atomic_dir
from interp.models import Model

log = logging.getLogger(__name__)


# ---- typed results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Direction:
    """A direction in an activation space (unnormalised: its norm is the mean difference it came from)."""

    vector: Float[Tensor, " d"]
    """The direction (float32, on CPU)."""
    site: Site
    """Where it was read (kind and layer)."""
    provenance: dict = field(default_factory=dict)
    """Model, data, position, how it was selected."""

    def __post_init__(self) -> None:
        if self.vector.ndim != 1 or not torch.isfinite(self.vector).all() or float(self.vector.norm()) == 0:
            raise ValueError("a Direction needs a finite, non-zero 1-d vector")
        object.__setattr__(self, "vector", self.vector.detach().to("cpu", torch.float32))

    @property
    def layer(self) -> int:
        return self.site.layer

    def unit(self) -> Float[Tensor, " d"]:
        return self.vector / self.vector.norm()

    def orthogonalized_to(self, other: Direction) -> Direction:
        """This direction minus its component along ``other`` (e.g. Surgical's false-refusal vector)."""
        u = other.unit().double()
        v = self.vector.double()
        prov = {**self.provenance, "orthogonal_to": other.provenance}
        return Direction((v - (v @ u) * u).float(), self.site, prov)

    def save(self, path: str | Path) -> Path:
        """Write ``direction.safetensors`` and ``direction.json`` into the folder ``path`` (atomically)."""
        with atomic_dir(path) as tmp:
            save_file({"vector": self.vector.contiguous()}, str(tmp / "direction.safetensors"))
            meta = {"site": {"kind": self.site.kind, "layer": self.site.layer}, "provenance": self.provenance}
            (tmp / "direction.json").write_text(json.dumps(meta, indent=2, default=str))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Direction:
        path = Path(path)
        meta = json.loads((path / "direction.json").read_text())
        vec = load_file(str(path / "direction.safetensors"))["vector"]
        return cls(vec, Site(meta["site"]["kind"], meta["site"]["layer"]), meta.get("provenance", {}))


@dataclass(frozen=True)
class LayerDirections:
    """One candidate direction per layer (e.g. difference of means of resid_pre at every layer)."""

    vectors: Float[Tensor, "layer d"]
    """Unnormalised candidate directions."""
    kind: SiteKind
    """Site kind they were read at."""
    provenance: dict = field(default_factory=dict)
    """Model, data, position."""

    def at(self, layer: int) -> Direction:
        return Direction(self.vectors[layer], Site(self.kind, layer), {**self.provenance, "layer": layer})

    @property
    def n_layers(self) -> int:
        return self.vectors.shape[0]


@dataclass(frozen=True)
class LayerSelection:
    """The chosen candidate and the validation effect of every candidate evaluated."""

    direction: Direction
    """The selected direction."""
    table: list[dict]
    """Per candidate layer: the validation numbers the choice was based on."""
    criterion: str
    """How the layer was chosen."""


@dataclass(frozen=True)
class HeadDirections:
    """Per-head ITI directions: unit mass-mean shift theta and the activations' std along it."""

    theta: Float[Tensor, "layer head d_head"]
    """Unit direction per head, from false towards true answers."""
    sigma: Float[Tensor, "layer head"]
    """Std of the head's z projected on theta (the ITI step unit)."""
    provenance: dict = field(default_factory=dict)
    """Model, data."""

    def save(self, path: str | Path) -> Path:
        with atomic_dir(path) as tmp:
            save_file({"theta": self.theta.contiguous(), "sigma": self.sigma.contiguous()},
                      str(tmp / "head_directions.safetensors"))
            (tmp / "head_directions.json").write_text(json.dumps(self.provenance, indent=2, default=str))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> HeadDirections:
        path = Path(path)
        t = load_file(str(path / "head_directions.safetensors"))
        return cls(t["theta"], t["sigma"], json.loads((path / "head_directions.json").read_text()))


# ---- computation -----------------------------------------------------------------------------------


@torch.no_grad()
def mean_activations(
    model: Model, texts: Sequence[str], kind: SiteKind = "resid_pre", position: int = -1,
    batch_size: int = 8, chat: bool = True,
) -> Float[Tensor, "layer d"]:
    """Float64 mean of the activation at ``kind`` of every layer, at one position (default: last token)."""
    if not texts:
        raise ValueError("mean_activations needs at least one text")
    sites = [Site(kind, la) for la in range(model.spec.n_layers)]
    total = None
    for _, chunk in tqdm(list(batches(texts, batch_size)), desc=f"mean {kind}", leave=False):
        enc = model.encode_chat(chunk) if chat else model.encode(chunk)
        store: dict = {}
        with model.hooks(fwd=[(s, _keep_pos(store, s.layer, position)) for s in sites]):
            model.run_hooks(enc, stop_after=sites[-1])  # no unembedding: only activations are wanted
        batch_sum = torch.stack([store[s.layer] for s in sites]).double().sum(1).cpu()
        total = batch_sum if total is None else total + batch_sum
    mean = total / len(texts)
    if not torch.isfinite(mean).all():
        raise ValueError(f"mean {kind} activations contain NaN or inf")
    return mean


def _keep_pos(store: dict, key: int, position: int):
    def hook(act: Tensor, *, hook) -> None:
        store[key] = act[:, position].detach()

    return hook


def mean_difference(
    model: Model, positive: Sequence[str], negative: Sequence[str], kind: SiteKind = "resid_pre",
    position: int = -1, batch_size: int = 8, chat: bool = True, provenance: dict | None = None,
) -> LayerDirections:
    """``mean(positive) - mean(negative)`` at every layer (float64 accumulation, float32 result)."""
    diff = mean_activations(model, positive, kind, position, batch_size, chat) - mean_activations(
        model, negative, kind, position, batch_size, chat)
    prov = {"model": model.name, "n_positive": len(positive), "n_negative": len(negative),
            "position": position, **(provenance or {})}
    return LayerDirections(diff.float(), kind, prov)


def refusal_directions(
    model: Model, harmful: Sequence[str], harmless: Sequence[str], batch_size: int = 8
) -> LayerDirections:
    """Refusal direction candidates: harmful minus harmless resid_pre at the last prompt token."""
    return mean_difference(model, harmful, harmless, "resid_pre", -1, batch_size,
                           provenance={"name": "refusal", "positive": "harmful", "negative": "harmless"})


def truth_directions(model: Model, factual: PromptSet, batch_size: int = 8) -> LayerDirections:
    """Truthfulness candidates: correct minus incorrect answer, resid_pre at the answer's last token.

    The negative of a candidate is the hallucination direction; adding the candidate steers towards truth.
    """
    texts, labels, _ = answer_texts(model, factual.filter(lambda p: bool(p.correct) and bool(p.incorrect)))
    pos = [t for t, y in zip(texts, labels, strict=True) if y == 1]
    neg = [t for t, y in zip(texts, labels, strict=True) if y == 0]
    return mean_difference(model, pos, neg, "resid_pre", -1, batch_size, chat=False,
                           provenance={"name": "truthfulness", "data": factual.name,
                                       "positive": "correct answer", "negative": "incorrect answer"})


def head_directions(
    model: Model, factual: PromptSet | None = None, acts: AnswerActivations | None = None, batch_size: int = 8
) -> HeadDirections:
    """ITI mass-mean-shift directions for every head from true vs false answers."""
    if acts is None:
        if factual is None:
            raise ValueError("head_directions needs factual prompts or precomputed AnswerActivations")
        acts = answer_activations(model, factual, batch_size)
    z = acts.z.double()
    true, false = acts.labels == 1, acts.labels == 0
    shift = z[true].mean(0) - z[false].mean(0)
    theta = shift / shift.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    sigma = torch.einsum("nlhd,lhd->nlh", z, theta).std(0)
    prov = {"model": model.name, "data": getattr(factual, "name", None), "n_examples": len(z)}
    return HeadDirections(theta.float(), sigma.float(), prov)


# ---- selection on a validation split ---------------------------------------------------------------


def _candidate_layers(candidates: LayerDirections, max_layer_fraction: float) -> list[int]:
    """Layers in the first ``max_layer_fraction`` of the model whose candidate is not zero.

    A zero candidate is legitimate (e.g. resid_pre of layer 0 is the token embedding, identical when the
    two classes end in the same token) but has no direction to evaluate.
    """
    if not 0.0 < max_layer_fraction <= 1.0:
        raise ValueError(f"max_layer_fraction must be in (0, 1], got {max_layer_fraction}")
    n = max(1, math.ceil(max_layer_fraction * candidates.n_layers))
    norms = candidates.vectors[:n].norm(dim=-1)
    layers = [la for la in range(n) if float(norms[la]) > 1e-8 * max(float(norms.max()), 1e-30)]
    if not layers:
        raise ValueError("every candidate direction is zero: the two classes do not differ at this site")
    return layers


@torch.no_grad()
def _metric_mean(model: Model, prompts: Sequence[str], metric: Metric, batch_size: int) -> float:
    vals = [metric(model.next_token_logits(model.encode_chat(chunk)), rows) for rows, chunk in
            batches(prompts, batch_size)]
    return float(torch.cat(vals).mean())


@torch.no_grad()
def _logprobs(model: Model, prompts: Sequence[str], batch_size: int) -> Tensor:
    return torch.cat([torch.log_softmax(model.next_token_logits(model.encode_chat(c)).float(), -1)
                      for _, c in batches(prompts, batch_size)])


def select_refusal_direction(
    model: Model, candidates: LayerDirections, harmful_val: Sequence[str], harmless_val: Sequence[str],
    metric: Metric, kl_max: float = 0.1, max_layer_fraction: float = 0.8, batch_size: int = 8,
    bypass_max: float = 0.0, induce_min: float = 0.0, layer_stride: int = 1,
) -> LayerSelection:
    """Arditi et al.'s selection: the candidate that removes refusal with the least collateral change.

    For every candidate layer in the first ``max_layer_fraction`` of the model (later ones tend to act on
    the unembedding directly) it measures, on validation prompts: the mean refusal score of harmful
    prompts with the direction ablated everywhere (*bypass*), the mean refusal score of harmless prompts
    with it added at its layer (*induce*), and the first-token KL of harmless prompts under ablation.
    The choice among them is :func:`choose_refusal_candidate`. ``layer_stride`` > 1 evaluates every
    ``layer_stride``-th candidate layer only (each costs three passes over the validation prompts).
    """
    from interp.interventions import ablate_direction, add_direction

    if layer_stride < 1:
        raise ValueError(f"layer_stride must be >= 1, got {layer_stride}")
    base_lp = _logprobs(model, harmless_val, batch_size)
    table = []
    for layer in tqdm(_candidate_layers(candidates, max_layer_fraction)[::layer_stride], desc="select refusal layer",
                      leave=False):
        d = candidates.at(layer)
        with ablate_direction(model, d):
            score = _metric_mean(model, harmful_val, metric, batch_size)
            lp = _logprobs(model, harmless_val, batch_size)
        with add_direction(model, d):
            induced = _metric_mean(model, harmless_val, metric, batch_size)
        kl = float((base_lp.exp() * (base_lp - lp)).sum(-1).mean())
        table.append({"layer": layer, "ablated_refusal_score": score, "induced_refusal_score": induced,
                      "harmless_kl": kl})
    best, criterion = choose_refusal_candidate(table, kl_max, bypass_max, induce_min)
    chosen = candidates.at(best["layer"])
    chosen = Direction(chosen.vector, chosen.site, {**chosen.provenance, "selection": best})
    return LayerSelection(chosen, table, criterion)


def choose_refusal_candidate(
    table: Sequence[dict], kl_max: float = 0.1, bypass_max: float = 0.0, induce_min: float = 0.0
) -> tuple[dict, str]:
    """Pick a row of :func:`select_refusal_direction`'s table; returns it with the criterion that held.

    Filters, as in Arditi et al.: ablation bypasses refusal (mean ablated refusal score <= ``bypass_max``;
    scores are log-odds, so 0 means refusal is no longer the likelier first token), adding the direction
    induces it (mean induced score >= ``induce_min``), and harmless KL <= ``kl_max``; the lowest ablated
    score among rows passing all three wins. Small models rarely meet the KL bound (on SmolLM2-135M every
    layer that removes refusal had KL >= 0.4), so the bound then relaxes to the smallest KL among rows
    passing the other filters: the least collateral damage, not the weakest effect. If no row bypasses,
    the lowest ablated score wins. Each fallback is named in the returned criterion and logged.
    """
    if not table:
        raise ValueError("no candidate layers to choose from")
    bypass = [r for r in table if r["ablated_refusal_score"] <= bypass_max]
    both = [r for r in bypass if r.get("induced_refusal_score", induce_min) >= induce_min]
    pool, what = (both, "bypass and induce") if both else (bypass, "bypass (no candidate induces)")
    if not pool:
        log.warning("no refusal candidate lowers the score below %g; choosing the lowest score", bypass_max)
        return min(table, key=lambda r: r["ablated_refusal_score"]), "lowest ablated refusal score (none bypass)"
    within = [r for r in pool if r["harmless_kl"] <= kl_max]
    if within:
        return (min(within, key=lambda r: r["ablated_refusal_score"]),
                f"lowest ablated refusal score among {what} with harmless KL <= {kl_max}")
    log.warning("no refusal candidate keeps harmless KL <= %g; choosing the smallest KL among %s", kl_max, what)
    return min(pool, key=lambda r: r["harmless_kl"]), f"smallest harmless KL among {what} (none within {kl_max})"


def select_truth_direction(
    model: Model, candidates: LayerDirections, factual_val: PromptSet, metric: Metric,
    scale: float = 1.0, max_layer_fraction: float = 0.8, batch_size: int = 8,
) -> LayerSelection:
    """The candidate whose addition (at its layer, ``scale`` times) raises the validation truth margin most.

    ``metric`` must index ``factual_val`` (e.g. ``truth_metric(tokenizer, factual_val)``; use its
    ``.prompts``).
    """
    from interp.interventions import add_direction

    prompts = [p.text for p in getattr(metric, "prompts", factual_val)]
    base = _metric_mean(model, prompts, metric, batch_size)
    table = []
    for layer in tqdm(_candidate_layers(candidates, max_layer_fraction), desc="select truth layer",
                      leave=False):
        with add_direction(model, candidates.at(layer), scale):
            margin = _metric_mean(model, prompts, metric, batch_size)
        table.append({"layer": layer, "steered_truth_margin": margin, "gain": margin - base})
    best = max(table, key=lambda r: r["steered_truth_margin"])
    chosen = candidates.at(best["layer"])
    chosen = Direction(chosen.vector, chosen.site, {**chosen.provenance, "selection": best})
    return LayerSelection(chosen, table, f"max truth margin when added with scale {scale}")
