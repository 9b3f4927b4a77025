"""Per-head scores (layer x head) with the provenance of how they were computed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from interp.io import write_json

Head = tuple[int, int]
"""An attention head as ``(layer, head)``."""

Method = Literal["attribution", "activation_patching", "mean_ablation", "probe", "custom"]

RankBy = Literal["signed", "magnitude"]
"""How heads are ranked: by score (``signed``: the heads that most promote the behaviour) or by
``|score|`` (``magnitude``: the heads with the largest causal effect, either sign)."""


def rank_by(absolute: bool = False, by: RankBy | None = None) -> RankBy:
    """The ranking mode of ``by``, or of the older ``absolute`` flag when ``by`` is not given."""
    if by is None:
        return "magnitude" if absolute else "signed"
    if by not in ("signed", "magnitude"):
        raise ValueError(f"by must be 'signed' or 'magnitude', got {by!r}")
    if absolute and by == "signed":
        raise ValueError("absolute=True contradicts by='signed'")
    return by


@dataclass(frozen=True)
class HeadScores:
    """One score per attention head; larger means the head does more of the behaviour.

    For patching methods the score is ``metric(clean) - metric(patched)``: how much of the metric the
    head's clean activation carries (positive: the head promotes the behaviour). For probes it is the
    held-out probe accuracy.
    """

    scores: Float[Tensor, "layer head"]
    """The score of every head."""
    metric: str
    """Name of the behaviour metric (``refusal_score``, ``truth_margin``, ``probe_accuracy``, ...)."""
    method: Method
    """How the scores were computed."""
    provenance: dict = field(default_factory=dict)
    """Model, data, settings."""

    def __post_init__(self) -> None:
        if self.scores.ndim != 2:
            raise ValueError(f"scores must be [layer, head], got shape {tuple(self.scores.shape)}")
        if not torch.isfinite(self.scores).all():
            raise ValueError(f"head scores for {self.metric!r} contain NaN or inf")
        object.__setattr__(self, "scores", self.scores.detach().to("cpu", torch.float32))

    @property
    def n_layers(self) -> int:
        return self.scores.shape[0]

    @property
    def n_heads(self) -> int:
        return self.scores.shape[1]

    def key(self, absolute: bool = False, *, by: RankBy | None = None) -> Float[Tensor, "layer head"]:
        """What the ranking sorts: the scores (``signed``) or their magnitudes (``magnitude``)."""
        return self.scores.abs() if rank_by(absolute, by) == "magnitude" else self.scores

    def ranking(self, absolute: bool = False, *, by: RankBy | None = None) -> list[Head]:
        """All heads, best first; ties by index.

        ``by="signed"`` (default) ranks by score; ``by="magnitude"`` by ``|score|``, so a head that
        strongly suppresses the behaviour ranks as high as one that strongly promotes it. ``absolute=True``
        is the older spelling of ``by="magnitude"``.
        """
        order = torch.argsort(self.key(absolute, by=by).flatten(), descending=True, stable=True)
        return [divmod(int(i), self.n_heads) for i in order]

    def top_k(self, k: int, absolute: bool = False, *, by: RankBy | None = None) -> list[Head]:
        """The ``k`` best heads as ``(layer, head)`` pairs."""
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        return self.ranking(absolute, by=by)[:k]

    def ranks(self, absolute: bool = False, *, by: RankBy | None = None) -> Float[Tensor, "layer head"]:
        """Rank of every head (0 = best), laid out like :attr:`scores`."""
        out = torch.empty(self.scores.numel())
        for r, (layer, head) in enumerate(self.ranking(absolute, by=by)):
            out[layer * self.n_heads + head] = r
        return out.view_as(self.scores)

    def __getitem__(self, head: Head) -> float:
        return float(self.scores[head[0], head[1]])

    # ---- persistence -----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"metric": self.metric, "method": self.method, "provenance": self.provenance,
                "scores": self.scores.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> HeadScores:
        return cls(torch.tensor(data["scores"], dtype=torch.float32), data["metric"], data["method"],
                   dict(data.get("provenance", {})))

    def to_json(self, path: str | Path) -> Path:
        """Write atomically as JSON."""
        return write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | Path) -> HeadScores:
        return cls.from_dict(json.loads(Path(path).read_text()))
