"""ITI-style linear probes: how well each head's output separates true from false answers.

Following Li et al. (2023, Inference-Time Intervention), each factual item yields one true and one
false example: the chat prompt followed by a correct (label 1) or an incorrect (label 0) answer as the
start of the assistant reply. A head's feature is its z at the answer's last token. One logistic
regression per head is fitted (all heads at once, full-batch L-BFGS on standardised features with an L2
penalty), and its accuracy on held-out *items* (both answers of an item on the same side) is the score.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.data.prompts import PromptSet
from interp.errors import EmptyPromptClassError
from interp.heads.activations import collect_z
from interp.heads.scores import HeadScores
from interp.models import Model


@dataclass(frozen=True)
class AnswerActivations:
    """Per-head z at the answer's last token for true and false answers to factual items."""

    z: Float[Tensor, "example layer head d_head"]
    """Features."""
    labels: Int[Tensor, " example"]
    """1 for a correct answer, 0 for an incorrect one."""
    items: Int[Tensor, " example"]
    """Index of the factual item each example came from (for item-level splits)."""


def answer_texts(
    model: Model, prompts: PromptSet, per_item: int = 1
) -> tuple[list[str], list[int], list[int]]:
    """Chat prompt + answer texts with labels and item indices (``per_item`` answers of each kind)."""
    texts, labels, items = [], [], []
    for i, p in enumerate(prompts):
        for label, answers in ((1, p.correct), (0, p.incorrect)):
            for a in answers[:per_item]:
                texts.append(model.chat(p.text) + a.strip())
                labels.append(label)
                items.append(i)
    return texts, labels, items


def answer_activations(
    model: Model, prompts: PromptSet, batch_size: int = 8, per_item: int = 1
) -> AnswerActivations:
    """Collect :class:`AnswerActivations` for the items that have both correct and incorrect answers."""
    usable = prompts.filter(lambda p: bool(p.correct) and bool(p.incorrect))
    if len(usable) < 2:
        raise EmptyPromptClassError(
            f"prompt set {prompts.name!r} needs at least 2 factual items with correct and incorrect answers"
        )
    texts, labels, items = answer_texts(model, usable, per_item)
    z = collect_z(model, texts, 1, batch_size, desc="answer z", chat=False)[:, 0]
    # Labels live beside the features (the model's device), so masks and targets never cross devices.
    return AnswerActivations(z, torch.tensor(labels, device=z.device), torch.tensor(items, device=z.device))


def fit_probes(
    x: Float[Tensor, "n probe d"], y: Int[Tensor, " n"], l2: float = 1e-2, steps: int = 100
) -> tuple[
    Float[Tensor, "probe d"], Float[Tensor, " probe"], Float[Tensor, "probe d"], Float[Tensor, "probe d"]
]:
    """Independent logistic regressions, one per probe: weights, biases, feature means and stds.

    Fitted in float64 on the features' device, whatever their dtype (bf16 features are upcast first:
    L-BFGS line searches need more than bf16's 8 bits).
    """
    x = x.double()
    mu, sd = x.mean(0), x.std(0).clamp(min=1e-6)
    xs = (x - mu) / sd
    n_probe, d = x.shape[1], x.shape[2]
    w = torch.zeros(n_probe, d, dtype=torch.float64, device=x.device, requires_grad=True)
    b = torch.zeros(n_probe, dtype=torch.float64, device=x.device, requires_grad=True)
    target = y.to(x.device, torch.float64)[:, None].expand(-1, n_probe)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = torch.einsum("npd,pd->np", xs, w) + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(0)
        total = loss.sum() + l2 * (w**2).sum()
        total.backward()
        return total

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach(), mu, sd


def probe_accuracy(
    x: Float[Tensor, "n probe d"], y: Int[Tensor, " n"], w: Float[Tensor, "probe d"],
    b: Float[Tensor, " probe"],
    mu: Float[Tensor, "probe d"], sd: Float[Tensor, "probe d"],
) -> Float[Tensor, " probe"]:
    logits = torch.einsum("npd,pd->np", (x.double() - mu) / sd, w) + b
    return ((logits > 0).long() == y.to(logits.device)[:, None]).double().mean(0)


def probe_heads(
    model: Model, prompts: PromptSet, test_fraction: float = 0.3, seed: int = 0, batch_size: int = 8,
    l2: float = 1e-2, acts: AnswerActivations | None = None,
) -> HeadScores:
    """Held-out accuracy of a true-vs-false probe on every head's z (chance is 0.5)."""
    acts = acts or answer_activations(model, prompts, batch_size)
    n_items = int(acts.items.max()) + 1
    gen = torch.Generator().manual_seed(seed)
    # The split is drawn on the CPU (same items on every device), then moved beside the features.
    test_items = torch.randperm(n_items, generator=gen)[: max(1, round(test_fraction * n_items))]
    test = torch.isin(acts.items, test_items.to(acts.items.device))
    if test.all() or not test.any():
        raise ValueError(f"test_fraction={test_fraction} leaves an empty train or test split")
    spec = model.spec
    x = acts.z.reshape(len(acts.z), spec.n_total_heads, spec.d_head)
    test, labels = test.to(x.device), acts.labels.to(x.device)  # precomputed acts may mix devices
    w, b, mu, sd = fit_probes(x[~test], labels[~test], l2)
    acc = probe_accuracy(x[test], labels[test], w, b, mu, sd)
    prov = {"model": model.name, "data": prompts.name, "n_items": n_items, "n_test_items": len(test_items),
            "test_fraction": test_fraction, "seed": seed, "l2": l2, "feature": "z at the answer's last token"}
    return HeadScores(acc.float().view(spec.n_layers, spec.n_heads), "probe_accuracy", "probe", prov)
