"""Re-training on weighted items with exact resume: the workbench's one loop (:mod:`interp.train.loop`,
shared with the SFT trainer: its batch order, LR schedule, checkpoints and callbacks), TRACE's step.

Items of weight 0 (clamped impact) are dropped before the schedule is made: they are never trained on
and cost no steps. Reference quantities are computed once from the model as passed in (θ_ref) before a
checkpoint is loaded, so a resumed run sees the same references as an uninterrupted one. A checkpoint
holds the trainable weights, the AdamW and LR-scheduler state, the step and the loss curve, written
atomically by :mod:`interp.train.sft`'s helpers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from interp.io import write_json
from interp.realign.config import RealignConfig
from interp.realign.hybrid import hybrid_loss, reference_for
from interp.realign.params import only_these_require_grad, select_parameters
from interp.realign.plan import TrainItem
from interp.train.loss import check_finite
from interp.train.sft import Callback, batch_schedule, load_checkpoint, lr_lambda, run_callbacks

log = logging.getLogger(__name__)


@dataclass
class RealignResult:
    """What a re-alignment run produced."""

    model_dir: Path
    """Saved final model (``load_model`` opens it)."""
    steps: int
    """Optimizer steps taken in total."""
    losses: list[tuple[int, float]]
    """(step, hybrid loss) of every step."""
    n_items: dict[str, int]
    """Trained items by kind (dpo, npo, kl), zero-weight ones excluded."""
    seconds_per_step: float | None = None
    """Mean wall time of the steps this process ran (None if it ran none)."""
    history: list[dict] = field(default_factory=list)
    """Callback records."""


def _fingerprint(items: Sequence[TrainItem], config: RealignConfig) -> str:
    h = hashlib.sha1(json.dumps(asdict(config), sort_keys=True).encode())
    for it in items:
        p = it.pair
        h.update(f"{it.kind}\x00{it.weight!r}\x00{p.prompt.text}\x00{p.chosen}\x00{p.rejected}\x01".encode())
    return h.hexdigest()[:16]


def _kinds(items: Sequence[TrainItem]) -> dict[str, int]:
    return {k: sum(it.kind == k for it in items) for k in ("dpo", "npo", "kl")}


def train_realign(
    model,
    items: Sequence[TrainItem],
    config: RealignConfig,
    out_dir: str | Path,
    callbacks: Sequence[Callback] = (),
    provenance: dict | None = None,
) -> RealignResult:
    """Train ``model`` in place on the hybrid objective over ``items``; resumes from ``out_dir/checkpoint``."""
    from interp.train.engine import make_accelerator
    from interp.train.loop import LoopSettings, run_steps

    acc = make_accelerator(model, 1, None)
    if acc.num_processes > 1:
        raise NotImplementedError("train_realign runs in one process (its per-item reference log-probabilities "
                                  "are not sharded); run `interp realign` without accelerate launch")
    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoint"
    items = [it for it in items if it.weight > 0]
    params = select_parameters(model, config.params)
    refs = reference_for(model, items, config)
    sched_cfg = config.schedule_config()
    schedule = batch_schedule(len(items), sched_cfg) if items else []
    if config.max_steps is not None:
        schedule = schedule[: config.max_steps]
    optimizer = torch.optim.AdamW(list(params.values()), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(sched_cfg, len(schedule)))
    fp = _fingerprint(items, config)
    start, losses, history = 0, [], []
    if (ckpt / "state.json").exists():
        start, losses, history = load_checkpoint(ckpt, params, optimizer, scheduler, fp)
        log.info("resuming %s from step %d/%d", out_dir, start, len(schedule))
    if start == 0:
        run_callbacks(callbacks, model, 0, history)

    def step_fn(step: int) -> torch.Tensor:
        idx = schedule[step]
        loss = hybrid_loss(model, [items[i] for i in idx], [refs[i] for i in idx], config)
        check_finite(loss, step)
        loss.backward()
        return loss.detach()

    settings = LoopSettings(config.max_grad_norm, config.callback_every, config.checkpoint_every)
    with only_these_require_grad(model, params):
        model.hf.train()
        try:
            loop = run_steps(acc, model, params, optimizer, scheduler, len(schedule), step_fn, settings, ckpt, fp,
                             start, losses, history, callbacks, desc=f"realign {out_dir.name}")
        finally:
            model.hf.eval()
    losses, history, per_step = loop.losses, loop.history, loop.seconds_per_step

    meta = {"realign_config": asdict(config), "n_items": _kinds(items), "fingerprint": fp, **(provenance or {})}
    model.provenance = {**model.provenance, "training": meta}
    model_dir = model.save(out_dir / "model", extra={"name": str(out_dir / "model")})
    write_json(out_dir / "train.json", {"losses": losses, "history": history, "seconds_per_step": per_step, **meta})
    if ckpt.exists():
        shutil.rmtree(ckpt)
    return RealignResult(model_dir, len(schedule), losses, _kinds(items), per_step, history)
