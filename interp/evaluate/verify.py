"""A cheap guard that greedy KV-cached generation is what an uncached forward pass would produce.

Greedy decoding has a checkable certificate: every generated token must be the argmax of the logits
that one *uncached* forward pass over prompt + reply gives at its position. Checking costs one
forward of the batch (a fraction of the generation it checks), and it catches any broken cache path
(an incompatible ``transformers`` release, a hook that only misbehaves on cached steps, a wrong
position or mask under left padding) before its replies turn into refusal rates.
"""

from __future__ import annotations

from importlib import metadata

import torch
from jaxtyping import Int
from torch import Tensor

from interp.errors import GenerationMismatchError

# Cached and uncached attention sum in different orders; a genuine argmax tie can flip by rounding.
DEFAULT_TOLERANCE = 1e-3
"""Logit gap (absolute, in the logits' units) within which a generated token still counts as the argmax."""

STACK = ("torch", "transformers", "transformer-lens")


def installed_versions(packages: tuple[str, ...] = STACK) -> dict[str, str]:
    """Versions of the packages the generation path depends on ("not installed" where absent)."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@torch.no_grad()
def greedy_violations(
    model,
    input_ids_BS: Int[Tensor, "batch seq"],
    attention_mask_BS: Int[Tensor, "batch seq"],
    new_BT: Int[Tensor, "batch new"],
    stops: list[int],
    tolerance: float = DEFAULT_TOLERANCE,
) -> list[tuple[int, int, int, int]]:
    """Generated tokens that are not the uncached argmax: ``(row, step, generated, argmax)`` each.

    ``new_BT`` are the generated ids (right-padded after a stop token; positions after the first stop
    are not checked). The forward is :meth:`interp.models.Model.logits`: no cache, left-padding positions.
    """
    from interp.models.model import Encoding  # importing interp.models loads transformers: not at import time

    prompt_len = input_ids_BS.shape[1]
    steps = new_BT.shape[1]
    live_BT = torch.ones_like(new_BT, dtype=torch.bool)
    stop_T = torch.as_tensor(stops, device=new_BT.device)
    is_stop_BT = torch.isin(new_BT, stop_T)
    # A step is checked when no stop token came before it (the stop token itself is checked).
    live_BT[:, 1:] = (is_stop_BT.cumsum(-1) == 0)[:, :-1]
    ids_BS = torch.cat([input_ids_BS, new_BT], dim=1)
    mask_BS = torch.cat([attention_mask_BS, live_BT.to(attention_mask_BS.dtype)], dim=1)
    logits = model.logits(Encoding(ids_BS, mask_BS))  # uncached, left-padding positions
    # Logits at position p predict token p + 1: the generated tokens sit at prompt_len .. prompt_len+steps-1.
    pred_BTV = logits[:, prompt_len - 1 : prompt_len - 1 + steps].float()
    chosen_BT = pred_BTV.gather(-1, new_BT[..., None])[..., 0]
    best_BT, arg_BT = pred_BTV.max(-1)
    # In bf16/fp16 the two passes' roundings differ by a few ulps of the logits' scale, far above a
    # float32 tolerance; widen by that (negligible in float32: 4 * 1.2e-7 * |logit|).
    slack_BT = 4 * torch.finfo(logits.dtype).eps * pred_BTV.abs().amax(-1)
    bad_BT = live_BT & (chosen_BT < best_BT - tolerance - slack_BT)
    return [(int(b), int(t), int(new_BT[b, t]), int(arg_BT[b, t])) for b, t in bad_BT.nonzero().tolist()]


def check_greedy(model, input_ids_BS, attention_mask_BS, new_BT, stops, tolerance=DEFAULT_TOLERANCE) -> None:
    """Raise :class:`GenerationMismatchError` (naming the installed versions) on any violation."""
    bad = greedy_violations(model, input_ids_BS, attention_mask_BS, new_BT, stops, tolerance)
    if not bad:
        return
    row, step, got, want = bad[0]
    versions = ", ".join(f"{k}=={v}" for k, v in installed_versions().items())
    raise GenerationMismatchError(
        f"KV-cached greedy generation disagrees with an uncached forward pass on {len(bad)} token(s) of "
        f"{int(new_BT.numel())} (first: row {row}, step {step}: generated id {got}, argmax {want}). "
        f"Installed: {versions}. This stack produces wrong replies; install the locked versions "
        f"(requirements.lock) or, if a hook is attached, make it act the same on cached and uncached steps."
    )
