"""Class-by-class NTK similarity of prompts: S(x', x) = ||K(x', x)||_F / ||K(x', x')||_F (DCR paper)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Literal

import numpy as np
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from interp.data import PromptSet
from interp.errors import DataFormatError, EmptyPromptClassError
from interp.io import atomic_dir
from interp.models import Model
from interp.ntk.config import NTKConfig
from interp.ntk.exact import exact_frobenius
from interp.ntk.params import select_parameters
from interp.ntk.sketch import NTKSketcher, frobenius_from_sketches

log = logging.getLogger(__name__)


def normalise(frobenius: Float[Tensor, "n n"]) -> Float[Tensor, "n n"]:
    """S[a, b] = F[a, b] / F[a, a]: row a is x' (the prompt whose behaviour changes), column b is x."""
    diag = frobenius.diagonal()
    if (diag <= 0).any():
        raise ValueError("a prompt has ||K(x, x)||_F = 0: no selected parameter influences its logits")
    return frobenius / diag[:, None]


def symmetric(frobenius: Float[Tensor, "n n"]) -> Float[Tensor, "n n"]:
    """C[a, b] = F[a, b] / sqrt(F[a, a] F[b, b]): symmetric, unit diagonal, blind to each prompt's own norm."""
    diag = frobenius.diagonal()
    bad = (diag <= 0).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"prompt(s) {bad} have ||K(x, x)||_F = 0: no selected parameter influences their "
                         "logits, so the symmetric similarity is undefined")
    root = diag.sqrt()
    return frobenius / (root[:, None] * root[None, :])


@dataclass(frozen=True)
class PairStat:
    """Mean similarity of one ordered class pair with its percentile-bootstrap CI over prompts."""

    classes: tuple[str, str]
    """(A, B): rows x' from class A, columns x from class B."""
    mean: float
    """Mean over prompt pairs (a == b excluded) on the full sample."""
    low: float
    """Lower end of the (1 - alpha) percentile bootstrap interval."""
    high: float
    """Upper end of the interval."""
    n: tuple[int, int]
    """Prompts in class A and class B."""


@dataclass(frozen=True, eq=False)
class ClassStats:
    """Class-pair similarity means with bootstrap CIs, from one set of resamples of the prompts."""

    normalisation: Literal["symmetric", "paper"]
    """Which normalised matrix the means are taken over."""
    pairs: dict[tuple[str, str], PairStat]
    """One entry per ordered class pair."""
    boot: dict[tuple[str, str], np.ndarray]
    """The n_boot resampled means of each pair (NaN where a resample left no pair), float64."""
    alpha: float
    """Intervals are (1 - alpha) percentile intervals."""

    def cross_within_ratio(self, a: str, b: str) -> PairStat:
        """cross / sqrt(within_A * within_B), the geometric mean of the two within-class means.

        ``cross`` is the mean of the (A, B) and (B, A) pair means (identical under the symmetric
        normalisation). Below 1: prompts resemble their own class more than the other. The CI comes from
        the same prompt resamples as the pair means, so the three means are resampled jointly.
        """
        for key in [(a, b), (b, a), (a, a), (b, b)]:
            if key not in self.pairs:
                raise EmptyPromptClassError(f"class pair {key} has no statistics (classes need >= 2 prompts "
                                            f"for a within-class mean); present: {sorted(self.pairs)}")

        def ratio(m):
            return 0.5 * (m[(a, b)] + m[(b, a)]) / np.sqrt(m[(a, a)] * m[(b, b)])

        point = ratio({k: v.mean for k, v in self.pairs.items()})
        low, high = _interval(ratio(self.boot), self.alpha)
        return PairStat(classes=(a, b), mean=float(point), low=low, high=high,
                        n=(self.pairs[(a, a)].n[0], self.pairs[(b, b)].n[0]))


def _interval(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.nanpercentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def _weighted_mean(m: np.ndarray, w_rows: np.ndarray, w_cols: np.ndarray, same: bool) -> np.ndarray:
    """Per resample, sum_ij w_i v_j M_ij / sum_ij w_i v_j; with ``same`` the i == j terms are dropped, so a
    prompt drawn twice never pairs with itself."""
    if same:
        m = m.copy()
        np.fill_diagonal(m, 0.0)
        denom = w_rows.sum(1) ** 2 - (w_rows ** 2).sum(1)
    else:
        denom = w_rows.sum(1) * w_cols.sum(1)
    num = np.einsum("bi,ij,bj->b", w_rows, m, w_cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), np.nan)


@dataclass
class KernelMatrix:
    """Normalised NTK similarities between N prompts, with the raw norms and how they were computed."""

    labels: list[str]
    """Class label of each prompt (row/column order)."""
    texts: list[str]
    """Prompt texts, same order."""
    similarity: Float[Tensor, "n n"]
    """S[a, b] = ||K(x_a, x_b)||_F / ||K(x_a, x_a)||_F (not symmetric)."""
    frobenius: Float[Tensor, "n n"]
    """F[a, b] = ||K(x_a, x_b)||_F (symmetric), exact or estimated."""
    config: NTKConfig
    """Estimator settings."""
    provenance: dict = field(default_factory=dict)
    """Model, data, parameter count, timings."""

    @property
    def symmetric(self) -> Float[Tensor, "n n"]:
        """C[a, b] = F[a, b] / sqrt(F[a, a] F[b, b]), computed from ``frobenius`` (so old saves load)."""
        return symmetric(self.frobenius.double())

    def class_stats(self, normalisation: Literal["symmetric", "paper"] = "symmetric", n_boot: int = 1000,
                    seed: int = 0, alpha: float = 0.05) -> ClassStats:
        """Mean similarity per ordered class pair, with percentile-bootstrap CIs over prompts.

        Each resample draws every class's prompts with replacement (numpy Generator seeded by ``seed``)
        and recomputes every pair mean on the drawn prompts, excluding pairs of a prompt with itself
        (the diagonal, and a prompt drawn twice). A class with one prompt has no within-class pair.
        """
        if normalisation not in ("symmetric", "paper"):
            raise ValueError(f"normalisation must be 'symmetric' or 'paper', got {normalisation!r}")
        if n_boot < 1 or not 0 < alpha < 1:
            raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got n_boot={n_boot}, alpha={alpha}")
        frob = self.frobenius.double()
        mat = (symmetric(frob) if normalisation == "symmetric" else normalise(frob)).numpy()
        present = list(dict.fromkeys(self.labels))
        index = {c: np.array([i for i, x in enumerate(self.labels) if x == c]) for c in present}
        rng = np.random.default_rng(seed)
        weights = {c: rng.multinomial(len(ix), np.full(len(ix), 1.0 / len(ix)), size=n_boot).astype(np.float64)
                   for c, ix in index.items()}
        full = {c: np.ones((1, len(ix))) for c, ix in index.items()}
        pairs, boot = {}, {}
        for a, b in product(present, present):
            if a == b and len(index[a]) < 2:
                continue
            block = mat[np.ix_(index[a], index[b])]
            mean = float(_weighted_mean(block, full[a], full[b], a == b)[0])
            boot[(a, b)] = _weighted_mean(block, weights[a], weights[b], a == b)
            low, high = _interval(boot[(a, b)], alpha)
            pairs[(a, b)] = PairStat(classes=(a, b), mean=mean, low=low, high=high,
                                     n=(len(index[a]), len(index[b])))
        return ClassStats(normalisation=normalisation, pairs=pairs, boot=boot, alpha=alpha)

    def class_means(self, pairs: list[tuple[str, str]] | None = None) -> dict[tuple[str, str], float]:
        """Mean S over x' in class A, x in class B (diagonal a == b excluded), per class pair (A, B).

        ``pairs=None`` means every ordered pair of classes present (a class with a single prompt has no
        pair with itself and is skipped there); an explicit pair without prompt pairs raises.
        """
        present = list(dict.fromkeys(self.labels))
        explicit = pairs is not None
        if not explicit:
            counts = {c: self.labels.count(c) for c in present}
            pairs = [(a, b) for a, b in product(present, present) if a != b or counts[a] > 1]
        lab = self.labels
        out = {}
        for a_cls, b_cls in pairs:
            rows = [i for i, x in enumerate(lab) if x == a_cls]
            cols = [j for j, x in enumerate(lab) if x == b_cls]
            vals = [float(self.similarity[i, j]) for i in rows for j in cols if i != j]
            if not vals:
                raise EmptyPromptClassError(f"no prompt pairs for class pair ({a_cls!r}, {b_cls!r}); "
                                            f"labels present: {present}")
            out[(a_cls, b_cls)] = sum(vals) / len(vals)
        return out

    def save(self, path: str | Path) -> Path:
        """Atomically write ``kernel.safetensors`` + ``kernel.json`` into directory ``path``."""
        path = Path(path)
        meta = {"labels": self.labels, "texts": self.texts, "config": self.config.to_dict(),
                "provenance": self.provenance,
                "class_means": [[a, b, v] for (a, b), v in self.class_means().items()]}
        with atomic_dir(path) as tmp:
            save_file({"similarity": self.similarity.contiguous(), "frobenius": self.frobenius.contiguous()},
                      str(tmp / "kernel.safetensors"))
            (tmp / "kernel.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> KernelMatrix:
        path = Path(path)
        try:
            meta = json.loads((path / "kernel.json").read_text())
            tensors = load_file(str(path / "kernel.safetensors"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataFormatError(f"{path} is not a saved KernelMatrix (kernel.json + kernel.safetensors): "
                                  f"{exc}") from exc
        return cls(labels=meta["labels"], texts=meta["texts"], similarity=tensors["similarity"],
                   frobenius=tensors["frobenius"], config=NTKConfig.from_dict(meta["config"]),
                   provenance=meta["provenance"])


def kernel_frobenius(model: Model, texts: list[str], config: NTKConfig, progress: bool = True
                     ) -> Float[Tensor, "n n"]:
    """||K(x_a, x_b)||_F for all pairs, by the estimator the config names (on each prompt's top-k logits
    when ``config.top_k`` is set, :mod:`interp.ntk.topk`)."""
    if config.top_k is not None:
        from interp.ntk.topk import topk_frobenius

        return topk_frobenius(model, texts, config, progress=progress)
    if config.estimator == "exact":
        return exact_frobenius(model, texts, config, progress=progress)
    selection = select_parameters(model, config)
    sketcher = NTKSketcher(model, config, selection)
    sketches = [sketcher(t) for t in tqdm(texts, desc="NTK sketches", disable=not progress)]
    return frobenius_from_sketches(sketches, sketcher.probes, selection.head_weight, selection.head_bias)


def kernel_similarity(model: Model, prompts: PromptSet, config: NTKConfig = NTKConfig(),
                      progress: bool = True) -> KernelMatrix:
    """Normalised NTK similarity matrix of ``prompts`` on the first-token logits."""
    if len(prompts) < 2:
        raise EmptyPromptClassError(f"prompt set {prompts.name!r} has {len(prompts)} prompts; need >= 2")
    selection = select_parameters(model, config)
    start = time.perf_counter()
    frob = kernel_frobenius(model, prompts.texts, config, progress=progress)
    seconds = time.perf_counter() - start
    log.info("NTK (%s) of %d prompts over %d parameters in %.1f s", config.estimator, len(prompts),
             selection.n_params, seconds)
    return KernelMatrix(
        labels=[p.label for p in prompts], texts=prompts.texts, similarity=normalise(frob).float(),
        frobenius=frob.float(), config=config,
        provenance={"model": model.name, "model_provenance": model.provenance, "data": prompts.name,
                    "n_params": selection.n_params, "head_weight": selection.head_weight,
                    "head_bias": selection.head_bias, "seconds": seconds},
    )
