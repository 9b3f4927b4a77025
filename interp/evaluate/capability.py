"""Capability checks: first-token KL to a reference model, and language-model loss on plain text.

The reference model's first-token log-probabilities are stored in :class:`ReferenceStats`, so the
reference model need not stay loaded (or even be loadable) when an edited model is evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from interp.data.prompts import PromptSet
from interp.errors import DataFormatError, NonFiniteError, ShapeMismatchError
from interp.evaluate.batching import sorted_batches
from interp.evaluate.first_token import first_token_logits
from interp.evaluate.logprobs import CHUNK_ROWS, log_softmax_rows, next_token_mask, sequence_logprobs
from interp.evaluate.reference_text import REFERENCE_PARAGRAPHS
from interp.io import atomic_dir


@dataclass(frozen=True)
class ReferenceStats:
    """First-token distributions of a reference model on fixed prompts (plus its reference-text loss)."""

    model_name: str
    """Name of the reference model."""
    prompts: tuple[str, ...]
    """User prompts the distributions belong to."""
    logprobs: Float[Tensor, "n vocab"]
    """First-token log-probabilities, float32 on CPU, one row per prompt."""
    system: str | None = None
    """System prompt used with the chat template."""
    reference_ce: float | None = None
    """Reference model's next-token loss on the built-in text (mean of per-paragraph means)."""
    provenance: dict = field(default_factory=dict)
    """The reference model's provenance."""

    def __post_init__(self) -> None:
        if self.logprobs.shape[0] != len(self.prompts):
            raise ShapeMismatchError(
                f"reference has {len(self.prompts)} prompts but {self.logprobs.shape[0]} log-prob rows")

    def save(self, path: str | Path) -> Path:
        """Write ``logprobs.safetensors`` and ``reference.json`` into a folder (atomically)."""
        from safetensors.torch import save_file

        path = Path(path)
        meta = {"model_name": self.model_name, "prompts": list(self.prompts), "system": self.system,
                "reference_ce": self.reference_ce, "provenance": self.provenance}
        with atomic_dir(path) as tmp:
            save_file({"logprobs": self.logprobs.contiguous()}, str(tmp / "logprobs.safetensors"))
            (tmp / "reference.json").write_text(json.dumps(meta, indent=2, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReferenceStats:
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / "reference.json").exists() or not (path / "logprobs.safetensors").exists():
            raise DataFormatError(f"'{path}' is not a saved ReferenceStats folder "
                                  "(expected reference.json and logprobs.safetensors)")
        meta = json.loads((path / "reference.json").read_text())
        logprobs = load_file(str(path / "logprobs.safetensors"))["logprobs"]
        return cls(meta["model_name"], tuple(meta["prompts"]), logprobs, meta.get("system"),
                   meta.get("reference_ce"), meta.get("provenance", {}))


def reference_stats(
    model, prompts: Sequence[str] | PromptSet, batch_size: int = 16, system: str | None = None,
    with_ce: bool = True,
) -> ReferenceStats:
    """Record a (reference) model's first-token log-probabilities on ``prompts`` (harmless ones, usually)."""
    texts = prompts.texts if isinstance(prompts, PromptSet) else list(prompts)
    logits_NV = first_token_logits(model, texts, batch_size=batch_size, system=system)
    logprobs = log_softmax_rows(logits_NV, torch.float64, out_dtype=torch.float32)
    ce = float(text_losses(model, batch_size=batch_size).mean()) if with_ce else None
    return ReferenceStats(model.name, tuple(texts), logprobs, system, ce, dict(model.provenance))


def first_token_kl(model, reference: ReferenceStats, batch_size: int = 16) -> Float[Tensor, " n"]:
    """KL(reference || model) of the first reply token, per reference prompt (float64, CPU)."""
    logits_NV = first_token_logits(model, reference.prompts, batch_size=batch_size, system=reference.system)
    if logits_NV.shape != reference.logprobs.shape:
        raise ShapeMismatchError(
            f"model {model.name!r} gives first-token logits of shape {tuple(logits_NV.shape)} but the "
            f"reference from {reference.model_name!r} has {tuple(reference.logprobs.shape)} "
            "(vocabularies differ?)")
    kl_N = kl_rows(reference.logprobs, logits_NV)
    if not torch.isfinite(kl_N).all():
        bad = torch.nonzero(~torch.isfinite(kl_N)).flatten().tolist()
        raise NonFiniteError(f"first-token KL is not finite for {len(bad)} of {len(kl_N)} prompts "
                             f"(first: {reference.prompts[bad[0]]!r})")
    return kl_N.clamp(min=0.0)


@torch.no_grad()
def kl_rows(
    log_p_NV: Float[Tensor, "n vocab"], logits_NV: Float[Tensor, "n vocab"], chunk_rows: int = CHUNK_ROWS
) -> Float[Tensor, " n"]:
    """KL(p || softmax(logits)) per row in float64, ``chunk_rows`` rows at a time (bounded memory)."""
    out = []
    for i in range(0, log_p_NV.shape[0], chunk_rows):
        log_p = log_p_NV[i:i + chunk_rows].double()
        log_q = torch.log_softmax(logits_NV[i:i + chunk_rows].double(), dim=-1)
        # 0 * log 0 = 0: tokens the reference never emits contribute nothing.
        out.append(torch.where(log_p > float("-inf"), log_p.exp() * (log_p - log_q), 0.0).sum(-1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def _loss_sums(model, texts: Sequence[str], batch_size: int, max_length: int) -> tuple[Tensor, Tensor]:
    tok = model.tokenizer
    lengths = [min(len(tok.encode(t, add_special_tokens=False)), max_length) for t in texts]
    sums, counts = torch.zeros(len(texts), dtype=torch.float64), torch.zeros(len(texts), dtype=torch.long)
    for idx in sorted_batches(lengths, batch_size):
        enc = model.encode([texts[i] for i in idx], max_length=max_length)
        # Left padding: a target counts when it and the token predicting it are both real.
        target_BS = next_token_mask(enc.attention_mask)
        sums[idx] = -sequence_logprobs(model.logits(enc), enc.input_ids, target_BS).cpu()
        counts[idx] = target_BS.sum(-1).cpu()
    return sums, counts


def text_losses(
    model, texts: Sequence[str] = REFERENCE_PARAGRAPHS, batch_size: int = 8, max_length: int = 512
) -> Float[Tensor, " n"]:
    """Mean next-token loss (nats per token) of each text, without special tokens (float64, CPU)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    sums, counts = _loss_sums(model, texts, batch_size, max_length)
    if (counts == 0).any():
        raise ValueError("every text needs at least two tokens to have a next-token loss")
    return sums / counts


def cross_entropy(
    model, texts: Sequence[str] = REFERENCE_PARAGRAPHS, batch_size: int = 8, max_length: int = 512
) -> float:
    """Token-weighted mean next-token loss (nats per token) over ``texts`` (the built-in text by default)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    sums, counts = _loss_sums(model, texts, batch_size, max_length)
    if int(counts.sum()) == 0:
        raise ValueError("texts contain no next-token targets")
    return float(sums.sum() / counts.sum())
