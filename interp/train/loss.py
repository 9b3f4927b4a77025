"""Response-only language-modelling loss that applies the unembedding only where there are targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from interp.train.examples import IGNORE, TokenBatch


def response_loss(model, batch: TokenBatch) -> Float[Tensor, ""]:
    """Mean next-token cross-entropy over response tokens.

    The 49k-way unembedding dominates the cost of a small model, so it is applied only to the
    positions that predict a response token (about half of a chat example), not to the prompt.
    """
    decoder = model.arch.decoder_module(model.hf)  # the stack without the unembedding, any family
    hidden = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     use_cache=False).last_hidden_state
    targets = batch.labels[:, 1:]
    keep = targets != IGNORE
    if not bool(keep.any()):
        raise ValueError(f"batch has no response tokens: every prompt fills all {batch.labels.shape[1]} "
                         "tokens; raise SFTConfig.max_length or shorten the prompts")
    logits = model.hf.get_output_embeddings()(hidden[:, :-1][keep])
    return F.cross_entropy(logits.float(), targets[keep])


def check_finite(loss: Tensor, step: int) -> None:
    from interp.errors import NonFiniteLossError

    if not torch.isfinite(loss):
        raise NonFiniteLossError(
            f"loss became {loss.item()} at step {step}; lower the learning rate or check the data"
        )
