"""Does the contrastive stage separate the two classes, and does it keep the model working?

On held-out prompts of the two classes (seemingly harmful ``a``, harmful ``b``) it measures the geometry
the Circle loss acts on (within- and cross-class cosine of the pooled layer-``l`` states), whether a
linear probe can tell the classes apart (cross-validated AUC), the behaviour that matters downstream
(first-token refusal probability per class), and the language-model loss on general text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from scipy.stats import mannwhitneyu
from torch import Tensor

from interp.data.prompts import PromptSet
from interp.errors import EmptyPromptClassError, NonFiniteError
from interp.evaluate.batching import sorted_batches
from interp.train.contrastive import Pooling, pooled, truncated


@dataclass(frozen=True)
class SeparationStats:
    """Separation of two prompt classes at one layer, with the model's refusal and language-model loss."""

    within_cos: float
    """Mean cosine of pooled states over distinct same-class pairs (both classes' pairs together)."""
    within_cos_a: float
    """The same over class ``a``'s pairs only."""
    within_cos_b: float
    """The same over class ``b``'s pairs only."""
    cross_cos: float
    """Mean cosine over all (a, b) pairs."""
    cos_gap: float
    """``within_cos - cross_cos``: positive when classes are tighter than their mixture."""
    probe_auc: float
    """Out-of-fold AUC of a logistic-regression probe scoring ``b`` above ``a`` (0.5: no separation)."""
    refusal_prob_a: float
    """Mean first-token refusal probability on class ``a``."""
    refusal_prob_b: float
    """Mean first-token refusal probability on class ``b``."""
    lm_loss: float
    """Token-weighted next-token loss on the general texts (nats per token)."""
    provenance: dict = field(default_factory=dict)
    """Model, layer, pooling, class sizes and probe settings."""


@torch.no_grad()
def pooled_states(
    model, prompts: Sequence[str], layer: int, pooling: Pooling, batch_size: int = 16
) -> Float[Tensor, "n d_model"]:
    """Pooled block-``layer`` states of ``prompts`` in their order (float64, CPU), length-sorted batches."""
    lengths = [len(model.tokenizer.encode(model.chat(p), add_special_tokens=False)) for p in prompts]
    out = torch.empty(len(prompts), model.spec.d_model, dtype=torch.float64)
    with truncated(model, layer):
        for idx in sorted_batches(lengths, batch_size):
            out[idx] = pooled(model, [prompts[i] for i in idx], layer, pooling).double().cpu()
    if not torch.isfinite(out).all():
        raise NonFiniteError(f"pooled layer-{layer} states are not finite")
    return out


def cosine_summary(x_a: Float[Tensor, "na d"], x_b: Float[Tensor, "nb d"]) -> dict[str, float]:
    """Mean within-class (distinct pairs) and cross-class cosines, and their gap."""
    a, b = (torch.nn.functional.normalize(x.double(), dim=-1) for x in (x_a, x_b))
    na, nb = len(a), len(b)
    sum_aa, sum_bb = (a @ a.T).sum() - na, (b @ b.T).sum() - nb  # drop the unit diagonal
    pairs_a, pairs_b = na * (na - 1), nb * (nb - 1)
    within = float((sum_aa + sum_bb) / (pairs_a + pairs_b))
    cross = float((a @ b.T).mean())
    return {"within_cos": within, "within_cos_a": float(sum_aa / pairs_a), "within_cos_b": float(sum_bb / pairs_b),
            "cross_cos": cross, "cos_gap": within - cross}


def stratified_folds(n_a: int, n_b: int, folds: int, seed: int) -> Int[Tensor, " n"]:
    """Fold of every row of ``[a; b]``: each class is permuted (same seed) and dealt round-robin.

    With equal class sizes the i-th prompts of the two classes share a fold, so two identical classes
    give exactly chance (the probe then sees each training prompt under both labels).
    """
    if min(n_a, n_b) < folds:
        raise EmptyPromptClassError(f"{folds}-fold probe needs >= {folds} prompts per class, got {n_a} and {n_b}")
    parts = []
    for n in (n_a, n_b):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        fold = torch.empty(n, dtype=torch.long)
        fold[perm] = torch.arange(n) % folds
        parts.append(fold)
    return torch.cat(parts)


def probe_auc(
    x: Float[Tensor, "n d"], y: Int[Tensor, " n"], folds: int = 5, seed: int = 0, l2: float = 1e-2
) -> float:
    """Cross-validated AUC of a logistic-regression probe (out-of-fold scores pooled over folds)."""
    from interp.heads.probes import fit_probes

    n_a, n_b = int((y == 0).sum()), int((y == 1).sum())
    if n_a + n_b != len(y) or not (y[:n_a] == 0).all():
        raise ValueError("labels must be 0 for the first rows (class a) and 1 for the rest (class b)")
    fold_N = stratified_folds(n_a, n_b, folds, seed)
    score_N = torch.empty(len(y), dtype=torch.float64)
    for k in range(folds):
        test = fold_N == k
        w, b, mu, sd = fit_probes(x[~test][:, None], y[~test], l2)
        score_N[test] = (((x[test].double() - mu) / sd) @ w[0] + b[0]).cpu()
    if not torch.isfinite(score_N).all():
        raise NonFiniteError("probe scores are not finite")
    # AUC = U / (n_a n_b): the probability a b-prompt outscores an a-prompt, ties counting half.
    u = mannwhitneyu(score_N[y == 1].numpy(), score_N[y == 0].numpy(), alternative="two-sided").statistic
    return float(u) / (n_a * n_b)


def _texts(prompts: Sequence[str] | PromptSet) -> list[str]:
    return list(prompts.texts) if isinstance(prompts, PromptSet) else list(prompts)


def separation(
    model, a_prompts: Sequence[str] | PromptSet, b_prompts: Sequence[str] | PromptSet,
    general_texts: Sequence[str], layer: int, pooling: Pooling = "user", folds: int = 5, seed: int = 0,
    l2: float = 1e-2, refusal_ids: Sequence[int] | None = None, batch_size: int = 16,
) -> SeparationStats:
    """Separation statistics of classes ``a`` and ``b`` at block ``layer`` (the model is left unchanged).

    ``refusal_ids``: first tokens counted as refusals (default: those of the built-in refusals, as the
    training trackers use).
    """
    from interp.data.builtin import builtin_refusals
    from interp.evaluate.capability import cross_entropy
    from interp.evaluate.refusal import first_token_refusal_prob, refusal_token_ids

    for name, ps in (("a", a_prompts), ("b", b_prompts)):
        if isinstance(ps, str):
            raise TypeError(f"{name}_prompts must be a sequence of strings, not one string")
        if len(ps) < 2:
            raise EmptyPromptClassError(f"class {name} needs >= 2 prompts, got {len(ps)}")
    a_texts, b_texts = _texts(a_prompts), _texts(b_prompts)
    ids = list(refusal_ids) if refusal_ids is not None else refusal_token_ids(model.tokenizer, builtin_refusals())
    was_training = model.hf.training
    model.hf.eval()
    try:
        x_a, x_b = (pooled_states(model, t, layer, pooling, batch_size) for t in (a_texts, b_texts))
        y = torch.tensor([0] * len(x_a) + [1] * len(x_b))
        auc = probe_auc(torch.cat([x_a, x_b]), y, folds, seed, l2)
        p_a, p_b = (first_token_refusal_prob(model, t, ids, batch_size) for t in (a_texts, b_texts))
        loss = cross_entropy(model, list(general_texts), batch_size=batch_size)
    finally:
        model.hf.train(was_training)
    prov = {"model": model.name, "layer": layer, "pooling": pooling, "n_a": len(a_texts), "n_b": len(b_texts),
            "n_general": len(general_texts), "folds": folds, "seed": seed, "l2": l2, "refusal_ids": ids,
            "a_name": getattr(a_prompts, "name", None), "b_name": getattr(b_prompts, "name", None)}
    return SeparationStats(**cosine_summary(x_a, x_b), probe_auc=auc, refusal_prob_a=float(p_a.mean()),
                           refusal_prob_b=float(p_b.mean()), lm_loss=loss, provenance=prov)


def heldout_classes(data_dir=None, per_class: int = 32, seed: int = 0) -> tuple[PromptSet, PromptSet]:
    """Seemingly harmful and harmful prompts from the suites' held-out halves (``PromptSet.split().test``),
    ``per_class`` of each (seeded), for diagnosing the contrastive stage on prompts it never trains on."""
    from interp.data.prompts import concat
    from interp.data.suites import load_suite

    out = []
    for label in ("seemingly_harmful", "harmful"):
        test = concat(f"{label}:heldout", list(load_suite(label, data_dir).test().values())).dedupe()
        out.append(test.sample(per_class, seed))
    return out[0], out[1]


SEPARATION_FIELDS = ("within_cos", "within_cos_a", "within_cos_b", "cross_cos", "cos_gap", "probe_auc",
                     "refusal_prob_a", "refusal_prob_b", "lm_loss")
"""The :class:`SeparationStats` numbers a :class:`SeparationCallback` records (metric ``dcr/FIELD``)."""


@dataclass
class SeparationCallback:
    """Training callback: :func:`separation` of two held-out classes at every ``every_n_steps``-th call.

    Records ``{step, metric: "dcr/FIELD", label, value}`` for every field of :data:`SEPARATION_FIELDS`
    (label ``layer L``), so the contrastive stage's history (``contrastive.json``, and the negative steps
    of a DCR run's ``train.json``) shows the geometry, the probe, refusal and language-model loss side
    by side. The model is left as found (``separation`` takes no gradient).
    """

    a: PromptSet
    """Class ``a``: held-out seemingly harmful prompts."""
    b: PromptSet
    """Class ``b``: held-out harmful prompts."""
    general_texts: Sequence[str]
    """General text for the language-model loss (e.g. ``REFERENCE_PARAGRAPHS``)."""
    layer: int
    """Block whose pooled output is measured (the contrastive stage's ``l``)."""
    pooling: Pooling = "user"
    """Pooling of the block's states, as in :class:`~interp.train.contrastive.ContrastiveConfig`."""
    every_n_steps: int = 1
    """Measure when ``step % every_n_steps == 0`` (the stage itself calls every ``callback_every`` steps)."""
    folds: int = 5
    """Cross-validation folds of the probe."""
    stats: list[tuple[int, SeparationStats]] = field(default_factory=list)
    """Every measurement so far, as (step, stats)."""

    def __post_init__(self) -> None:
        if self.every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {self.every_n_steps}")
        for name, ps in (("a", self.a), ("b", self.b)):
            if len(ps) < self.folds:
                raise EmptyPromptClassError(f"class {name} ({ps.name!r}) has {len(ps)} prompts; the "
                                            f"{self.folds}-fold probe needs >= {self.folds}")

    def __call__(self, model, step: int) -> list[dict]:
        if step % self.every_n_steps:
            return []
        s = separation(model, self.a, self.b, self.general_texts, self.layer, self.pooling, folds=self.folds)
        self.stats.append((step, s))
        return [{"step": step, "metric": f"dcr/{name}", "label": f"layer {self.layer}",
                 "value": float(getattr(s, name))} for name in SEPARATION_FIELDS]
