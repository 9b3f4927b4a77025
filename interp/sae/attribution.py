"""Attribute the refusal and truthfulness metrics to SAE features (activation x gradient), and check it.

The SAE is spliced in at its site with the error term kept (``feature_hook``), so the model's forward
pass is unchanged while the feature activations ``f`` become leaves of the graph. For a scalar metric
``M``, a feature's score is ``sum over prompts and positions of f * dM/df``: the first-order estimate of
how much ``M`` would drop if the feature were switched off. Scores are validated by actually switching
off the top features (and random active ones) and measuring the metric.

Classification (on scores normalised by each metric's largest absolute score): a feature is
``refusal`` if |refusal| >= ``hi`` and |truthfulness| < ``lo``, ``hallucination`` for the mirror case,
``shared`` if both are >= ``hi``, and ``neither`` otherwise. Defaults hi = 0.2, lo = 0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import InterpError, NonFiniteError
from interp.evaluate.logprobs import suffix_mask, token_logprobs
from interp.sae.site import ActSite
from interp.sae.splice import feature_hook

MetricFn = Callable[[Tensor, object], Tensor]
"""``fn(logits [batch, seq, vocab], encoding) -> scalar`` (sum over the batch)."""


@dataclass
class MetricBatch:
    """One forward pass' contribution ``weight * fn(logits, enc)`` to a metric."""

    enc: object
    """The :class:`interp.models.model.Encoding` to run."""
    fn: MetricFn
    """Scalar metric of the logits (summed over the batch)."""
    weight: float = 1.0
    """Multiplier (e.g. 1/n for a mean, negative for a contrast)."""


@dataclass(frozen=True)
class ClassifyConfig:
    """Thresholds on max-normalised |score| for classifying features."""

    hi: float = 0.2
    """A metric counts a feature as important at or above this normalised |score|."""
    lo: float = 0.1
    """... and as unimportant below this one (between lo and hi: neither class)."""

    def __post_init__(self) -> None:
        if not 0 <= self.lo <= self.hi <= 1:
            raise ValueError(f"need 0 <= lo <= hi <= 1, got lo={self.lo}, hi={self.hi}")


@dataclass
class FeatureAttribution:
    """Per-feature attribution scores of the two metrics, and each feature's class."""

    refusal: Float[Tensor, " d_sae"]
    """Score for the refusal metric (harmful minus harmless mean refusal score)."""
    truthfulness: Float[Tensor, " d_sae"]
    """Score for the truthfulness metric (mean log-prob margin of correct over incorrect answers)."""
    classes: list[str]
    """refusal / hallucination / shared / neither, per feature."""
    config: ClassifyConfig = field(default_factory=ClassifyConfig)
    """Thresholds used."""
    provenance: dict = field(default_factory=dict)
    """Model, SAE, site, data, settings."""

    def features(self, cls: str) -> list[int]:
        """Indices of one class, strongest first (by the class' own normalised score)."""
        idx = [i for i, c in enumerate(self.classes) if c == cls]
        r, t = _normalise(self.refusal), _normalise(self.truthfulness)
        key = {"refusal": r, "hallucination": t}.get(cls, torch.maximum(r, t))
        return sorted(idx, key=lambda i: -float(key[i]))

    def to_records(self) -> list[dict]:
        r, t = _normalise(self.refusal), _normalise(self.truthfulness)
        return [{"feature": i, "refusal": float(self.refusal[i]), "truthfulness": float(self.truthfulness[i]),
                 "refusal_norm": float(r[i]), "truthfulness_norm": float(t[i]), "class": c}
                for i, c in enumerate(self.classes)]


def _normalise(scores: Tensor) -> Tensor:
    return scores.abs() / scores.abs().max().clamp(min=1e-30)


def classify_features(
    refusal: Float[Tensor, " d_sae"],
    truthfulness: Float[Tensor, " d_sae"],
    cfg: ClassifyConfig = ClassifyConfig(),
) -> list[str]:
    """Class of each feature from the two score vectors (see module docstring)."""
    r, t = _normalise(refusal), _normalise(truthfulness)
    out = []
    for ri, ti in zip(r.tolist(), t.tolist(), strict=True):
        if ri >= cfg.hi and ti >= cfg.hi:
            out.append("shared")
        elif ri >= cfg.hi and ti < cfg.lo:
            out.append("refusal")
        elif ti >= cfg.hi and ri < cfg.lo:
            out.append("hallucination")
        else:
            out.append("neither")
    return out


def feature_scores(model, sae, site: ActSite, batches: Iterable[MetricBatch]) -> Float[Tensor, " d_sae"]:
    """Activation x gradient score of every SAE feature for the metric the batches sum to."""
    total = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    for b in batches:
        store: dict = {}
        hook = feature_hook(sae, site, store, track_grad=True)
        with torch.enable_grad(), model.hooks(fwd=[(site.site, hook)]):
            metric = b.weight * b.fn(model.logits(b.enc), b.enc)
            (grad,) = torch.autograd.grad(metric, [store["features"]], allow_unused=True)
        if grad is None:
            continue
        mask = b.enc.attention_mask.bool()[..., None]
        total += (store["features"].detach() * grad * mask).sum((0, 1)).double().cpu()
    if not torch.isfinite(total).all():
        bad = torch.nonzero(~torch.isfinite(total)).flatten().tolist()
        raise NonFiniteError(f"attribution scores are not finite for {len(bad)} of {len(total)} SAE features "
                             f"(first: feature {bad[0]})")
    return total.float()


@torch.no_grad()
def metric_value(
    model, sae, site: ActSite, batches: Iterable[MetricBatch], ablate: Sequence[int] = ()
) -> float:
    """The metric with the SAE spliced in (error kept) and the ``ablate`` features switched off."""
    total = 0.0
    for b in batches:
        store: dict = {}
        with model.hooks(fwd=[(site.site, feature_hook(sae, site, store, ablate=list(ablate)))]):
            total += float(b.weight * b.fn(model.logits(b.enc), b.enc))
    return total


@dataclass(frozen=True)
class AblationCheck:
    """Does switching off the top-scored features move the metric more than switching off random ones?"""

    base: float
    """Metric with nothing ablated."""
    top_features: tuple[int, ...]
    """The ablated top features (largest |score|)."""
    top_delta: float
    """Metric change when they are ablated."""
    random_deltas: tuple[float, ...]
    """Metric change for each random draw of as many active features."""
    predicted_delta: float
    """First-order prediction: minus the sum of the top features' scores."""

    @property
    def passed(self) -> bool:
        rand = sum(abs(d) for d in self.random_deltas) / max(len(self.random_deltas), 1)
        return abs(self.top_delta) > rand


def ablation_check(
    model, sae, site: ActSite, batches: Sequence[MetricBatch], scores: Float[Tensor, " d_sae"],
    k: int = 5, n_random: int = 5, seed: int = 0,
) -> AblationCheck:
    """Ablate the ``k`` features with the largest |score|, and ``n_random`` random sets of ``k`` features
    drawn from those with a non-zero score (active on these prompts)."""
    batches = list(batches)
    top = torch.topk(scores.abs(), k).indices.tolist()
    base = metric_value(model, sae, site, batches)
    top_delta = metric_value(model, sae, site, batches, top) - base
    pool = torch.nonzero(scores != 0).flatten()
    gen = torch.Generator().manual_seed(seed)
    rand = []
    for _ in range(n_random):
        pick = pool[torch.randperm(len(pool), generator=gen)[:k]].tolist()
        rand.append(metric_value(model, sae, site, batches, pick) - base)
    return AblationCheck(base, tuple(top), top_delta, tuple(rand), -float(scores[top].sum()))


@dataclass(frozen=True)
class FeatureValidation:
    """The ablation check run on exactly the features that form a subspace, against random controls."""

    features: tuple[int, ...]
    """The checked features (those the subspace is built from)."""
    base: float
    """Metric with nothing ablated."""
    set_delta: float
    """Metric change when all of ``features`` are ablated together."""
    feature_deltas: tuple[float, ...]
    """Metric change when each feature alone is ablated (same order as ``features``)."""
    random_deltas: tuple[float, ...]
    """Metric change for each random set of as many active features (drawn from the others)."""
    predicted_delta: float | None = None
    """First-order prediction: minus the sum of the features' attribution scores (None without scores)."""

    @property
    def random_mean_abs(self) -> float:
        return sum(abs(d) for d in self.random_deltas) / max(len(self.random_deltas), 1)

    @property
    def passed(self) -> bool:
        """Ablating the set moves the metric more than every random set of the same size does."""
        return abs(self.set_delta) > max((abs(d) for d in self.random_deltas), default=0.0)

    def to_dict(self) -> dict:
        return {"features": list(self.features), "base": self.base, "set_delta": self.set_delta,
                "feature_deltas": dict(zip(map(str, self.features), self.feature_deltas, strict=True)),
                "random_deltas": list(self.random_deltas), "random_mean_abs": self.random_mean_abs,
                "predicted_delta": self.predicted_delta, "passed": self.passed}


def validate_features(
    model, sae, site: ActSite, batches: Sequence[MetricBatch], features: Sequence[int],
    scores: Float[Tensor, " d_sae"] | None = None, n_random: int = 10, seed: int = 0,
) -> FeatureValidation:
    """Ablate ``features`` together and one by one, and ``n_random`` random sets of as many features.

    Controls are drawn from the active features (non-zero ``scores``; every feature without scores)
    outside ``features``, so a subspace's features are compared with features the prompts also use.
    """
    features = [int(f) for f in features]
    if not features or len(set(features)) != len(features):
        raise ValueError(f"features must be distinct SAE feature indices, got {features}")
    if max(features) >= sae.cfg.d_sae or min(features) < 0:
        raise ValueError(f"features {features} out of range for an SAE with {sae.cfg.d_sae} features")
    batches = list(batches)
    base = metric_value(model, sae, site, batches)
    set_delta = metric_value(model, sae, site, batches, features) - base
    single = tuple(metric_value(model, sae, site, batches, [f]) - base for f in features)
    active = torch.ones(sae.cfg.d_sae, dtype=torch.bool) if scores is None else scores.cpu() != 0
    active[features] = False
    pool = torch.nonzero(active).flatten()
    if len(pool) < len(features):
        raise ValueError(f"only {len(pool)} other active features for random sets of {len(features)}")
    gen = torch.Generator().manual_seed(seed)
    rand = tuple(metric_value(model, sae, site, batches,
                              pool[torch.randperm(len(pool), generator=gen)[:len(features)]].tolist()) - base
                 for _ in range(n_random))
    predicted = None if scores is None else -float(scores[features].sum())
    return FeatureValidation(tuple(features), base, set_delta, single, rand, predicted)


# ---- the two metrics ------------------------------------------------------------------------------


def refusal_batches(
    model, harmful: Sequence[str], harmless: Sequence[str], batch_size: int = 8
) -> list[MetricBatch]:
    """Mean refusal score (first generated token) on harmful prompts minus that on harmless ones."""
    from interp.evaluate.refusal import refusal_score, refusal_token_ids

    if not harmful or not harmless:
        raise InterpError("the refusal metric needs harmful and harmless prompts")
    ids = refusal_token_ids(model.tokenizer)

    def fn(logits: Tensor, enc) -> Tensor:
        return refusal_score(logits[:, -1, :], ids).sum()

    out = []
    for texts, sign in ((harmful, 1.0), (harmless, -1.0)):
        for i in range(0, len(texts), batch_size):
            out.append(MetricBatch(model.encode_chat(list(texts[i : i + batch_size])), fn, sign / len(texts)))
    return out


def truthfulness_batches(
    model, prompts: Sequence, mode: Literal["first", "full"] = "full", batch_size: int = 8
) -> list[MetricBatch]:
    """Mean log-prob margin of the first correct over the first incorrect answer on factual prompts.

    ``first``: logit difference of the answers' first tokens at the first generated position (prompts
    whose two answers share a first token are skipped); ``full``: summed log-probs of the whole answers.
    """
    items = [p for p in prompts if p.correct and p.incorrect]
    if not items:
        raise InterpError("the truthfulness metric needs factual prompts with correct and incorrect answers")
    tok = model.tokenizer
    if mode == "first":
        first = [(tok(p.correct[0], add_special_tokens=False)["input_ids"][0],
                  tok(p.incorrect[0], add_special_tokens=False)["input_ids"][0]) for p in items]
        keep = [(p, ab) for p, ab in zip(items, first, strict=True) if ab[0] != ab[1]]
        if not keep:
            raise InterpError("every factual item's answers share their first token; use mode='full'")
        out = []
        for i in range(0, len(keep), batch_size):
            chunk = keep[i : i + batch_size]
            ids = torch.tensor([ab for _, ab in chunk])

            def fn(logits: Tensor, enc, ids=ids) -> Tensor:
                last = logits[:, -1, :].float()
                ids = ids.to(last.device)
                return (last.gather(1, ids[:, :1]) - last.gather(1, ids[:, 1:])).sum()

            out.append(MetricBatch(model.encode_chat([p.text for p, _ in chunk]), fn, 1.0 / len(keep)))
        return out
    out = []
    for answers, sign in ((lambda p: p.correct[0], 1.0), (lambda p: p.incorrect[0], -1.0)):
        for i in range(0, len(items), batch_size):
            chunk = items[i : i + batch_size]
            prefix = [model.chat(p.text) for p in chunk]
            n_ans = torch.tensor([len(tok(answers(p), add_special_tokens=False)["input_ids"]) for p in chunk])
            enc = model.encode([pre + answers(p) for pre, p in zip(prefix, chunk, strict=True)])
            out.append(MetricBatch(enc, _answer_logprob(n_ans), sign / len(items)))
    return out


def _answer_logprob(n_ans: Tensor) -> MetricFn:
    """Summed log-prob of each row's last ``n_ans`` tokens (answers sit at the end under left padding)."""

    def fn(logits: Tensor, enc) -> Tensor:
        # float32: this runs under autograd on the accelerator, where float64 is slow.
        target_BS = suffix_mask(n_ans, enc.input_ids.shape[1])
        return token_logprobs(logits, enc.input_ids, target_BS, dtype=torch.float32).sum()

    return fn


def attribute_features(
    model, sae, site: ActSite, refusal: Sequence[MetricBatch], truth: Sequence[MetricBatch],
    cfg: ClassifyConfig = ClassifyConfig(), provenance: dict | None = None,
) -> FeatureAttribution:
    """Scores of both metrics and the resulting classes."""
    r = feature_scores(model, sae, site, refusal)
    t = feature_scores(model, sae, site, truth)
    return FeatureAttribution(r, t, classify_features(r, t, cfg), cfg, dict(provenance or {}))


@torch.no_grad()
def top_activations(sae, store, features: Sequence[int], k: int = 5, key: str | None = None,
                    max_rows: int | None = 200_000, batch_size: int = 4096) -> dict[int, list[dict]]:
    """For each feature, the ``k`` store rows where it fires hardest, with their prompt and token."""
    data = store.read_with_meta(key, max_rows)
    acts = data["acts"]
    device = next(sae.parameters()).device
    feats = torch.as_tensor(list(features), dtype=torch.long)
    vals = torch.cat([sae.encode(acts[i : i + batch_size].to(device))[:, feats.to(device)].cpu()
                      for i in range(0, acts.shape[0], batch_size)])
    prompts = store.prompts()
    out: dict[int, list[dict]] = {}
    for j, f in enumerate(feats.tolist()):
        top = torch.topk(vals[:, j], min(k, vals.shape[0]))
        out[f] = [{"activation": float(v), "prompt_index": int(data["prompt_index"][r]),
                   "position": int(data["position"][r]), "token_id": int(data["token_id"][r]),
                   "text": prompts[int(data["prompt_index"][r])]["text"],
                   "label": prompts[int(data["prompt_index"][r])]["label"]}
                  for v, r in zip(top.values.tolist(), top.indices.tolist(), strict=True) if v > 0]
    return out
