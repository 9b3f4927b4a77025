"""Per-head activations (``hook_z``) at the final, template-aligned positions of chat prompts.

Prompts of different lengths are left-padded, so the last ``P`` positions of every row hold the same
chat-template tokens (``<|im_end|>\\n<|im_start|>assistant\\n``). Those are the positions where the
model decides how to answer (Arditi et al. 2024), and the only ones where activations of two different
prompts can be swapped position by position. Patching and attribution therefore act on them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.hooks import Site
from interp.models import Encoding, Model

_MARK = "\u2063XQZ\u2063"


def suffix_positions(model: Model) -> int:
    """Number of chat-template tokens after the user's text (the aligned final positions)."""
    text = model.chat(_MARK)
    suffix = text[text.index(_MARK) + len(_MARK):]
    n = len(model.tokenizer(suffix, add_special_tokens=False)["input_ids"])
    if n < 1:
        raise ValueError(f"model {model.name!r}: the chat template leaves no token after the prompt")
    return n


def batches(texts: Sequence[str], batch_size: int) -> Iterator[tuple[list[int], list[str]]]:
    """``(row indices, texts)`` chunks of at most ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(texts), batch_size):
        rows = list(range(start, min(start + batch_size, len(texts))))
        yield rows, [texts[i] for i in rows]


def z_sites(model: Model) -> list[Site]:
    return [Site("z", layer) for layer in range(model.spec.n_layers)]


def check_positions(enc: Encoding, positions: int) -> None:
    shortest = int(enc.attention_mask.sum(-1).min())
    if positions > shortest:
        raise ValueError(f"cannot use the last {positions} positions: the shortest prompt has {shortest} "
                         "tokens")


@torch.no_grad()
def collect_z(
    model: Model, prompts: Sequence[str], positions: int, batch_size: int = 8, desc: str = "collect z",
    chat: bool = True,
) -> Float[Tensor, "batch pos layer head d_head"]:
    """Every head's z at the last ``positions`` tokens of each prompt (float32).

    ``chat``: format each prompt as a user turn first; else the texts are used as given.
    """
    sites = z_sites(model)
    out = []
    for _, chunk in tqdm(list(batches(prompts, batch_size)), desc=desc, leave=False):
        enc = model.encode_chat(chunk) if chat else model.encode(chunk)
        check_positions(enc, positions)
        store: dict = {}
        hooks = [(s, _keep_tail(store, s.layer, positions)) for s in sites]
        with model.hooks(fwd=hooks):
            model.run_hooks(enc, stop_after=sites[-1])  # no unembedding: only z is wanted
        out.append(torch.stack([store[s.layer] for s in sites], dim=2).float())
    return torch.cat(out)


def _keep_tail(store: dict, key: int, positions: int):
    def hook(act: Tensor, *, hook) -> None:
        store[key] = act[:, -positions:].detach()

    return hook


def z_baseline(
    model: Model, prompts: Sequence[str], positions: int, batch_size: int = 8, paired: bool = False
) -> Float[Tensor, "batch pos layer head d_head"]:
    """Patching source: per-position mean z over ``prompts`` (batch 1), or every prompt's own z (paired)."""
    z = collect_z(model, prompts, positions, batch_size, desc="baseline z")
    if paired:
        return z
    mean = z.double().mean(0, keepdim=True)
    if not torch.isfinite(mean).all():
        raise ValueError("baseline z has NaN or inf")
    return mean.float()


def baseline_rows(baseline: Tensor, rows: Sequence[int]) -> Tensor:
    """The baseline rows for a batch: the shared mean, or the paired prompts' own rows."""
    if baseline.shape[0] == 1:
        return baseline
    return baseline[list(rows)]


@torch.no_grad()
def head_patterns(
    model: Model, prompt: str, heads: Sequence[tuple[int, int]]
) -> tuple[list[str], Float[Tensor, "head query key"]]:
    """Tokens of one chat-formatted prompt and the attention patterns of the chosen heads."""
    enc = model.encode_chat([prompt])
    layers = sorted({la for la, _ in heads})
    store: dict = {}
    hooks = [(Site("pattern", la), _keep_tail(store, la, enc.input_ids.shape[1])) for la in layers]
    with model.hooks(fwd=hooks):
        model.run_hooks(enc, stop_after=Site("pattern", layers[-1]))
    pats = torch.stack([store[la][0, h] for la, h in heads]).float().cpu()
    tokens = [model.tokenizer.decode([t]) for t in enc.input_ids[0].tolist()]
    return tokens, pats
