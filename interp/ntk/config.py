"""Settings of an empirical-NTK computation: estimator, parameter subset, output tokens, sketch sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Estimator = Literal["exact", "sketch"]


@dataclass(frozen=True)
class NTKConfig:
    """How to compute K(x', x) = J(x') J(x)^T on the logits of the first generated token."""

    estimator: Estimator = "sketch"
    """``exact`` forms full Jacobians (tiny models only); ``sketch`` is the scalable unbiased estimator."""
    layers_upto: int | None = None
    """Keep only the input embedding and blocks 0..layers_upto (the DCR 'head' before tail freezing)."""
    param_filter: tuple[str, ...] | None = None
    """Keep only parameters whose clean name contains a substring (names follow the family:
    ``model.layers.3.mlp.up_proj.weight``, GPT-2 ``transformer.h.3.mlp.c_fc.weight``)."""
    token_ids: tuple[int, ...] | None = None
    """Restrict the logits z to these vocabulary ids (an approximation of the full-vocabulary kernel)."""
    top_k: int | None = None
    """Restrict each prompt's logits to its own ``top_k`` most likely first tokens under the current
    weights, so K(x', x) = J_top(x')(x') J_top(x)(x)^T is k x k (the DCR paper's released code: k = 10,
    see :mod:`interp.ntk.topk`); ``exact`` then holds every gradient row, ``sketch`` CountSketches them."""
    last_layers: int | None = None
    """Keep only the last L blocks and the final norm (the paper code's 'last layers'); with
    ``param_filter=("lora_",)`` instead, the kernel is over LoRA weights."""
    n_probes: int = 12
    """Sketch: number m of Rademacher output probes (m backward passes per prompt; m >= 2)."""
    sketch_dim: int = 2**15
    """Sketch: CountSketch width s of the parameter side (per-probe gradient stored as s floats)."""
    seed: int = 0
    """Seed of the probes and of the CountSketch hashes (same seed, same estimate)."""
    max_tokens: int | None = 256
    """Truncate chat-formatted prompts to this many tokens (``None``: no limit)."""
    system: str | None = None
    """Optional system prompt for the chat template."""

    def __post_init__(self) -> None:
        if self.estimator not in ("exact", "sketch"):
            raise ValueError(f"estimator must be 'exact' or 'sketch', got {self.estimator!r}")
        if self.n_probes < 2:
            raise ValueError(f"n_probes must be >= 2 (the estimator pairs probes), got {self.n_probes}")
        if self.sketch_dim < 16:
            raise ValueError(f"sketch_dim must be >= 16, got {self.sketch_dim}")
        if self.layers_upto is not None and self.layers_upto < 0:
            raise ValueError(f"layers_upto must be >= 0 or None, got {self.layers_upto}")
        if self.param_filter is not None:
            if isinstance(self.param_filter, str) or not self.param_filter:
                raise ValueError("param_filter must be a non-empty tuple of substrings (or None)")
            object.__setattr__(self, "param_filter", tuple(self.param_filter))
        if self.top_k is not None and (self.top_k < 1 or self.token_ids is not None):
            raise ValueError(f"top_k must be >= 1 and excludes token_ids, got top_k={self.top_k}, "
                             f"token_ids={self.token_ids}")
        if self.last_layers is not None and (self.last_layers < 1 or self.layers_upto is not None):
            raise ValueError(f"last_layers must be >= 1 and excludes layers_upto, got last_layers={self.last_layers}, "
                             f"layers_upto={self.layers_upto}")
        if self.token_ids is not None:
            if not self.token_ids or min(self.token_ids) < 0:
                raise ValueError("token_ids must be a non-empty tuple of vocabulary ids >= 0 (or None)")
            object.__setattr__(self, "token_ids", tuple(int(t) for t in self.token_ids))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NTKConfig:
        data = dict(data)
        for key in ("param_filter", "token_ids"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)
