"""Tokenisation and response log-probabilities shared by impact scoring and training.

Scores and training must see exactly the same tokens (a known defect of the public TRACE code is that
they differ), so both go through here: a (prompt, response) is encoded by the SFT trainer's
:func:`interp.train.examples.collate` (chat template for the prompt, response + EOS tokenized apart,
right padding) and a response's log-probability is :func:`interp.evaluate.logprobs.sequence_logprobs`
over the tokens the SFT loss would train on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.errors import InterpError
from interp.evaluate.logprobs import sequence_logprobs
from interp.train.examples import IGNORE, SFTExample, TokenBatch, collate


def encode_responses(model, texts: Sequence[tuple[str, str]], max_length: int) -> TokenBatch:
    """(prompt, response) rows as one right-padded batch; every row must keep a response token."""
    batch = collate(model, [SFTExample(p, r) for p, r in texts], max_length).to(model.device)
    kept = (batch.labels != IGNORE).sum(-1)
    if (kept == 0).any():
        i = int((kept == 0).nonzero()[0, 0])
        raise InterpError(f"prompt {texts[i][0][:60]!r} fills all {max_length} tokens, leaving no response "
                          "token to score; raise max_length or shorten the prompt")
    return batch


def response_mask(batch: TokenBatch) -> Bool[Tensor, "batch seq"]:
    """Response tokens at their own positions (the targets ``token_logprobs`` wants)."""
    return batch.labels != IGNORE


def forward_logits(model, batch: TokenBatch) -> Float[Tensor, "batch seq vocab"]:
    # Right padding: default positions 0..n-1 are right for every row, as in the SFT loss.
    return model.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits


def response_logprobs(logits_BSV: Float[Tensor, "batch seq vocab"], batch: TokenBatch) -> Float[Tensor, " batch"]:
    """Summed log-probability of each row's response tokens, float64."""
    return sequence_logprobs(logits_BSV, batch.input_ids, response_mask(batch))


def response_positions(batch: TokenBatch, rows: Sequence[int]) -> tuple[Int[Tensor, " n"], Int[Tensor, " n"]]:
    """(row, position) of every logit that predicts a response token of the given rows, row-major."""
    want_BT = response_mask(batch)[:, 1:].clone()  # position t predicts token t + 1
    keep = torch.zeros(want_BT.shape[0], dtype=torch.bool, device=want_BT.device)
    keep[list(rows)] = True
    want_BT &= keep[:, None]
    return want_BT.nonzero(as_tuple=True)


def response_log_softmax(
    logits_BSV: Float[Tensor, "batch seq vocab"], batch: TokenBatch, rows: Sequence[int],
    dtype: torch.dtype = torch.float64,
) -> Float[Tensor, "n vocab"]:
    """Next-token log-distributions at every response position of ``rows`` (for the token-level KL)."""
    r, c = response_positions(batch, rows)
    return torch.log_softmax(logits_BSV[r, c].to(dtype), dim=-1)
