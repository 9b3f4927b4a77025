"""The distribution of the first token of the assistant's reply, for many prompts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.errors import NonFiniteError
from interp.evaluate.batching import sorted_batches


@torch.no_grad()
def first_token_logits(
    model, prompts: Sequence[str], batch_size: int = 16, system: str | None = None, progress: bool = False
) -> Float[Tensor, "n vocab"]:
    """Next-token logits after the chat template's assistant header, one row per prompt (float32, CPU).

    Hooks attached with ``model.hooks`` apply. Rows come back in the order of ``prompts``.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, not one string")
    if not prompts:
        raise ValueError("no prompts given")
    texts = [model.chat(p, system=system) for p in prompts]
    lengths = [len(model.tokenizer.encode(t, add_special_tokens=False)) for t in texts]
    out: Tensor | None = None
    for idx in tqdm(sorted_batches(lengths, batch_size), desc="first-token logits", disable=not progress):
        logits_BV = model.next_token_logits(model.encode([texts[i] for i in idx])).float().cpu()
        if out is None:
            out = torch.empty(len(texts), logits_BV.shape[-1], dtype=torch.float32)
        out[idx] = logits_BV
    if out is None:  # unreachable (prompts is non-empty); keeps the type checker honest
        raise ValueError("no prompts given")
    finite_N = torch.isfinite(out).all(-1)
    if not finite_N.all():
        bad = torch.nonzero(~finite_N).flatten().tolist()
        raise NonFiniteError(f"first-token logits are not finite for {len(bad)} of {len(prompts)} prompts "
                             f"(first: {prompts[bad[0]]!r}); a hook or the model weights produce NaN/inf")
    return out
