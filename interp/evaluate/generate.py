"""Batched greedy generation through the chat template (KV cache, left padding, hooks apply)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import torch
from tqdm.auto import tqdm

from interp.distributed import map_batches, world
from interp.evaluate.batching import sorted_batches
from interp.evaluate.verify import check_greedy

Verify = Literal["first", "every", "off"]
"""Which batches :func:`generate_token_ids` checks against an uncached forward pass."""

log = logging.getLogger(__name__)

CHAT_END_TOKEN = "<|im_end|>"


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end the assistant's turn: the chat end token and the tokenizer's EOS."""
    ids = []
    vocab = tokenizer.get_vocab()
    if CHAT_END_TOKEN in vocab:
        ids.append(int(vocab[CHAT_END_TOKEN]))
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(int(tokenizer.eos_token_id))
    if not ids:
        raise ValueError(f"tokenizer has neither {CHAT_END_TOKEN!r} nor an EOS token to stop generation")
    return ids


@torch.no_grad()
def generate_token_ids(
    model,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 16,
    system: str | None = None,
    progress: bool = True,
    verify: Verify = "first",
) -> list[list[int]]:
    """Greedy continuations as token ids (stop tokens and padding removed), in the order of ``prompts``.

    ``verify``: check the first batch (default), every batch or none against one uncached forward
    pass (:mod:`interp.evaluate.verify`); a broken cache path raises ``GenerationMismatchError``
    instead of returning wrong replies. The check runs under the same hooks as the generation, so a
    hook that records activations sees one extra forward per checked batch.

    Under ``accelerate launch`` every process must call this with the same prompts: each generates
    every N-th batch and all get every reply, bitwise as one process would (same batches, same padding).
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, not one string")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if verify not in ("first", "every", "off"):
        raise ValueError(f"verify must be 'first', 'every' or 'off', got {verify!r}")
    texts = [model.chat(p, system=system) for p in prompts]
    tok = model.tokenizer
    lengths = [len(tok.encode(t, add_special_tokens=False)) for t in texts]
    stops = stop_token_ids(tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
    bar = tqdm(total=len(texts), desc="generate", unit="prompt", disable=not progress or not world().is_main)

    def run(b: int, idx: list[int]) -> list[list[int]]:
        enc = model.encode([texts[i] for i in idx])
        seq = model.hf.generate(
            input_ids=enc.input_ids,
            attention_mask=enc.attention_mask,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=pad,
            eos_token_id=stops,
            # Greedy decoding: neutralise sampling settings a checkpoint's generation_config may carry.
            temperature=None,
            top_p=None,
            top_k=None,
        )
        new_BT = seq[:, enc.input_ids.shape[1] :]
        if verify == "every" or (verify == "first" and b == 0):
            check_greedy(model, enc.input_ids, enc.attention_mask, new_BT, stops)
        bar.update(len(idx))
        return [_until_stop(row, stops) for row in new_BT.tolist()]

    batches = sorted_batches(lengths, batch_size)
    out: list[list[int]] = [[] for _ in texts]
    for idx, rows in zip(batches, map_batches(batches, run), strict=True):
        for i, row in zip(idx, rows, strict=True):
            out[i] = row
    bar.close()
    return out


def _until_stop(ids: list[int], stops: list[int]) -> list[int]:
    for j, t in enumerate(ids):
        if t in stops:
            return ids[:j]
    return ids


def generate(
    model,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 16,
    system: str | None = None,
    progress: bool = True,
    verify: Verify = "first",
) -> list[str]:
    """Greedy replies to ``prompts`` (user turns), decoded without special tokens, in input order.

    Prompts are batched by length (left-padded, KV cache on); hooks attached with ``model.hooks``
    fire inside generation, so interventions apply to every generated token.
    """
    ids = generate_token_ids(model, prompts, max_new_tokens, batch_size, system, progress, verify)
    return [model.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]
