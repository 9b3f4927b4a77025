"""The optimisation loop every trainer shares: step, clip, constrain, schedule, log, call back, checkpoint.

:func:`interp.train.sft.train_sft` (response loss on SFT examples, any accelerate launch) and
:func:`interp.realign.trainer.train_realign` (TRACE's hybrid objective on weighted pairs) differ only in
what one step computes; the rest (gradient clipping, an optional update constraint, AdamW and the LR
schedule, the loss curve, callbacks every ``callback_every`` steps and after the last, resumable
checkpoints every ``checkpoint_every`` steps, written by the main process only) is this one loop, so a
run of either trainer killed at any step resumes to bitwise the same weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor
from tqdm.auto import tqdm


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs besides the step itself."""

    max_grad_norm: float
    """Gradient clipping norm (0 disables)."""
    callback_every: int
    """Steps between callback calls (also after the last step)."""
    checkpoint_every: int
    """Steps between resumable checkpoints (none after the last: the final save replaces it)."""


@dataclass
class LoopResult:
    losses: list
    """(step, loss) of every step, the resumed ones included."""
    history: list
    """Callback records."""
    seconds_per_step: float | None
    """Mean wall time of the steps this call ran (None if it ran none)."""


def run_steps(
    acc, model, params: dict, optimizer, scheduler, n_steps: int, step_fn: Callable[[int], Tensor],
    settings: LoopSettings, ckpt: Path, fingerprint: str, start: int = 0, losses: list | None = None,
    history: list | None = None, callbacks: Sequence = (), constraint=None, desc: str = "train",
) -> LoopResult:
    """Steps ``start .. n_steps-1``; ``step_fn(step)`` runs forward and backward and returns the step's loss."""
    from interp.train.sft import run_callbacks, save_checkpoint

    losses, history = list(losses or []), list(history or [])
    bar = tqdm(range(start, n_steps), desc=desc, initial=start, total=n_steps, disable=not acc.is_main_process)
    ran, t0 = 0, time.perf_counter()
    for step in bar:
        loss = step_fn(step)
        if settings.max_grad_norm:
            acc.clip_grad_norm_(list(params.values()), settings.max_grad_norm)
        if constraint is not None:
            constraint.before_step(model)
        optimizer.step()
        if constraint is not None:
            constraint.after_step(model)
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        losses.append((step + 1, value))
        bar.set_postfix(loss=f"{value:.3f}")
        ran += 1
        done = step + 1
        if done % settings.callback_every == 0 or done == n_steps:
            run_callbacks(callbacks, model, done, history)
        if done % settings.checkpoint_every == 0 and done < n_steps:
            if acc.is_main_process:
                save_checkpoint(ckpt, done, params, optimizer, scheduler, losses, history, fingerprint)
            acc.wait_for_everyone()
    return LoopResult(losses, history, (time.perf_counter() - t0) / ran if ran else None)
