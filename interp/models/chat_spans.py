"""Where the user's own text sits inside a chat-formatted, left-padded batch.

Chat templates wrap every prompt in the same tokens (SmolLM2's inserts a ~20-token default system
prompt), so an average over all positions is dominated by what every prompt shares. The user span is
found by character offsets: the template is rendered around a marker to learn its prefix and suffix,
and a token belongs to the user when its character span overlaps the text between them. Offsets, not
token counts, because a tokenizer may merge across the boundary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool
from torch import Tensor

from interp.errors import InterpError

_MARK = "\u2063XQZ\u2063"


def template_around(model, system: str | None = None) -> tuple[str, str]:
    """The chat template's text before and after the user's content (``model.chat`` of a marker)."""
    text = model.chat(_MARK, system=system)
    if text.count(_MARK) != 1:
        raise InterpError(f"model {model.name!r}: the chat template does not render the user content verbatim once")
    i = text.index(_MARK)
    return text[:i], text[i + len(_MARK):]


def _row_mask(tokenizer, text: str, start: int, end: int) -> list[bool]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    # An empty span (s == e) counts as the one character at s, so it is never split across the boundary.
    return [s < end and max(e, s + 1) > start for s, e in enc["offset_mapping"]]


def user_token_mask(model, prompts: Sequence[str], system: str | None = None) -> Bool[Tensor, "batch seq"]:
    """True at the tokens of each prompt's user text in ``model.encode_chat(prompts, system)``.

    Template, system-prompt and padding positions are False. Raises when a prompt has no user token
    or the template changes the content (e.g. strips it), since the span would then be wrong.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, not one string")
    tok = model.tokenizer
    if not getattr(tok, "is_fast", False):
        raise InterpError(f"model {model.name!r}: locating the user's tokens needs a fast tokenizer (offsets)")
    prefix, suffix = template_around(model, system)
    rows = []
    for p in prompts:
        text = model.chat(p, system=system)
        end = len(text) - len(suffix)
        if not (text.startswith(prefix) and text.endswith(suffix) and text[len(prefix):end] == p):
            raise InterpError(f"the chat template of {model.name!r} does not keep prompt {p[:60]!r} verbatim "
                              "between its fixed prefix and suffix")
        row = _row_mask(tok, text, len(prefix), end)
        if not any(row):
            raise InterpError(f"prompt {p[:60]!r} has no user tokens")
        rows.append(row)
    seq = max(len(r) for r in rows)
    mask_BS = torch.zeros(len(rows), seq, dtype=torch.bool)
    for i, r in enumerate(rows):  # left padding: each row ends at the last position
        mask_BS[i, seq - len(r):] = torch.tensor(r)
    return mask_BS.to(model.device)
