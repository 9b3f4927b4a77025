"""Supervised fine-tuning with checkpoints that resume exactly.

Training order is a pure function of (seed, epoch), and a checkpoint holds the trainable weights,
the optimizer and scheduler state and the history, so a run killed at any point and resumed ends
with bitwise the same weights as one that was never interrupted (on the same device). Checkpoints
hold only tensors, numbers and containers and are opened with ``weights_only=True``, so a checkpoint
from elsewhere cannot run code when a run resumes from it.

The loop runs on accelerate (:mod:`interp.train.engine`): under ``accelerate launch`` each process
takes its share of every step's global batch (DDP), and the weights match one process on the whole
batch; the main process writes checkpoints and the final model, every process resumes from them.
Mixed precision, gradient accumulation and LoRA adapters (:mod:`interp.train.lora`) are settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import torch
from safetensors.torch import load_file, save_file

from interp.errors import DataFormatError
from interp.io import atomic_dir, write_json
from interp.train.examples import SFTExample
from interp.train.lora import LoRAConfig
from interp.train.loss import check_finite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTConfig:
    """Optimisation settings of a supervised fine-tune."""

    lr: float = 8e-5
    """Peak AdamW learning rate."""
    epochs: int = 1
    """Passes over the examples."""
    batch_size: int = 8
    """Examples per optimizer step."""
    max_length: int = 192
    """Tokens per example (prompt + response); longer ones are cut."""
    warmup_steps: int = 10
    """Linear warm-up steps; then linear decay to zero."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    seed: int = 0
    """Seed of the data order."""
    checkpoint_every: int = 20
    """Optimizer steps between resumable checkpoints."""
    callback_every: int = 20
    """Steps between callback calls (also called before the first and after the last step)."""
    frozen: tuple[str, ...] = ("model.embed_tokens.", "lm_head.", "transformer.wte.")  # = arch.all_default_frozen()
    """Parameter-name prefixes kept frozen (the tied embedding/unembedding by default)."""
    grad_accum: int = 1
    """Micro-batches per process per optimizer step (accelerate's gradient accumulation); the
    optimizer step still sees ``batch_size`` examples in all."""
    mixed_precision: Literal["no", "fp16", "bf16"] | None = None
    """accelerate's autocast mixed precision (weights stay float32); None: the launch config's, else no."""
    lora: LoRAConfig | None = None
    """Train low-rank adapters (peft) instead of the weights; merged into the saved model at the end,
    and also written as a PEFT adapter to ``out_dir/adapter``. None: full fine-tuning."""
    save_model: bool = True
    """Write the merged full model to ``out_dir/model``. False (LoRA only): write just ``out_dir/adapter``
    and leave the adapters unmerged on the model (a SafeMoE expert is its adapter, not a 135M-weight copy)."""
    lr_scales: tuple[tuple[str, float], ...] = ()
    """(name prefix, factor) pairs: a trainable parameter whose name starts with a prefix trains at
    ``lr * factor`` (first match wins; others at ``lr``), e.g. a lower rate for the layers below DCR's ``l``."""

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.epochs < 1 or self.batch_size < 1 or self.max_length < 8 or self.grad_accum < 1:
            raise ValueError(f"invalid SFTConfig: {self}")
        if not self.save_model and self.lora is None:
            raise ValueError("SFTConfig(save_model=False) needs lora: without an adapter nothing would be saved")
        if self.mixed_precision not in (None, "no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be 'no', 'fp16', 'bf16' or None, got {self.mixed_precision!r}")
        object.__setattr__(self, "lr_scales", tuple((str(p), float(f)) for p, f in self.lr_scales))
        if any(f <= 0 for _, f in self.lr_scales):
            raise ValueError(f"lr_scales factors must be > 0 (freeze a parameter with `frozen`), got {self.lr_scales}")


@runtime_checkable
class Callback(Protocol):
    def __call__(self, model, step: int) -> list[dict] | None: ...


@runtime_checkable
class UpdateConstraint(Protocol):
    def before_step(self, model) -> None: ...

    def after_step(self, model) -> None: ...
    # A constraint that acts on whatever is trainable (LoRA adapters included) sets ``supports_lora = True``.


@dataclass
class TrainResult:
    """What a fine-tune produced."""

    model_dir: Path
    steps: int
    losses: list[tuple[int, float]]
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)


def batch_schedule(n: int, config: SFTConfig) -> list[list[int]]:
    """Example indices of every optimizer step, epoch after epoch (deterministic in the seed)."""
    steps: list[list[int]] = []
    for epoch in range(config.epochs):
        g = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        order = torch.randperm(n, generator=g).tolist()
        steps += [order[i: i + config.batch_size] for i in range(0, n, config.batch_size)]
    return steps


def trainable_parameters(model, frozen: Sequence[str]) -> dict[str, torch.nn.Parameter]:
    params = {}
    for name, p in model.named_parameters().items():
        if any(name.startswith(prefix) for prefix in frozen):
            p.requires_grad_(False)
        elif p.requires_grad:
            params[name] = p
    if not params:
        raise ValueError(f"every parameter is frozen (frozen prefixes {list(frozen)})")
    return params


def param_groups(params: dict[str, torch.nn.Parameter], config: SFTConfig) -> list[dict]:
    """AdamW parameter groups: one per learning rate of ``config.lr_scales`` (empty groups left out)."""
    if not config.lr_scales:
        return [{"params": list(params.values())}]
    groups: dict[float, list] = {}
    for name, p in params.items():
        factor = next((f for prefix, f in config.lr_scales if name.startswith(prefix)), 1.0)
        groups.setdefault(factor, []).append(p)
    return [{"params": ps, "lr": config.lr * f} for f, ps in groups.items()]


def _fingerprint(examples: Sequence[SFTExample], config: SFTConfig) -> str:
    settings = asdict(config)
    if not settings["lr_scales"]:  # unset, it leaves the fingerprints of checkpoints made before it existed
        del settings["lr_scales"]
    h = hashlib.sha1(json.dumps(settings, sort_keys=True).encode())
    for ex in examples:
        h.update(f"{ex.kind}\x00{ex.prompt}\x00{ex.response}\x01".encode())
    return h.hexdigest()[:16]


def lr_lambda(config: SFTConfig, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / (config.warmup_steps + 1)
        return max(0.0, (total - step) / max(1, total - config.warmup_steps))

    return f


# What ``torch.load(weights_only=True)`` rebuilds without running code from the file.
_PLAIN = (torch.Tensor, int, float, bool, str, type(None))


def _check_plain(obj, where: str) -> None:
    """Refuse to write optimizer/scheduler state that only a full (code-running) unpickle could read."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, where)
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"checkpoint state {where} is a {type(obj).__name__}; only tensors, numbers, strings "
                        "and lists/dicts of them load with weights_only=True")


def save_checkpoint(path: Path, step: int, params, optimizer, scheduler, losses, history, fp) -> None:
    # AdamW and LambdaLR state dicts are tensors, numbers and containers (LambdaLR stores a plain
    # function as None and rebuilds it from the config), so they load with weights_only=True.
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    _check_plain(state, "optim")
    with atomic_dir(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in params.items()}, tmp / "trainable.safetensors")
        torch.save(state, tmp / "optim.pt")
        (tmp / "state.json").write_text(json.dumps(
            {"step": step, "losses": losses, "history": history, "fingerprint": fp}))


def load_checkpoint(path: Path, params, optimizer, scheduler, fp) -> tuple[int, list, list]:
    state = json.loads((path / "state.json").read_text())
    if state["fingerprint"] != fp:
        raise ValueError(f"checkpoint {path} was made with other data or settings; delete it or change --out")
    weights = load_file(path / "trainable.safetensors")
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(weights[k].to(p.device))
    try:  # weights_only: a checkpoint from elsewhere must not be able to run code when opened
        opt = torch.load(path / "optim.pt", map_location=next(iter(params.values())).device, weights_only=True)
    except pickle.UnpicklingError as e:
        raise DataFormatError(
            f"{path / 'optim.pt'} holds objects other than tensors, numbers and containers, so it was not "
            f"unpickled (that could run code): {_unpickler_reason(e)} Delete {path} to restart the run.") from e
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    return state["step"], [tuple(x) for x in state["losses"]], state["history"]


def _unpickler_reason(e: Exception) -> str:
    """The one informative sentence of torch's long weights-only error (which global was refused)."""
    for line in str(e).splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip().split(" Please use")[0]
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def run_callbacks(callbacks: Sequence[Callback], model, step: int, history: list) -> None:
    """Call every callback in eval mode and append its records to ``history``; the mode is restored."""
    was_training = model.hf.training
    model.hf.eval()
    for cb in callbacks:
        records = cb(model, step)
        if records:
            history.extend(records)
    model.hf.train(was_training)


def train_sft(
    model,
    examples: Sequence[SFTExample],
    config: SFTConfig,
    out_dir: str | Path,
    callbacks: Sequence[Callback] = (),
    constraint: UpdateConstraint | None = None,
    provenance: dict | None = None,
    history_prefix: Sequence[dict] = (),
) -> TrainResult:
    """Fine-tune ``model`` in place on ``examples``; resumes from ``out_dir/checkpoint`` if present.

    The final weights are saved to ``out_dir/model`` (a directory ``load_model`` opens) and the loss
    curve and callback history to ``out_dir/train.json``; ``history_prefix`` (records of an earlier
    stage, e.g. DCR's contrastive one at negative steps) starts that history. Under ``accelerate
    launch`` every process calls this with the same arguments; callbacks run on every process.
    """
    from interp.train.engine import Objective, make_accelerator
    from interp.train.loop import LoopSettings, run_steps

    if not examples:
        raise ValueError("no training examples")
    if config.lora is not None and constraint is not None and not getattr(constraint, "supports_lora", False):
        raise ValueError(f"{type(constraint).__name__} constrains updates of the full weights, which LoRA leaves "
                         "frozen; use full fine-tuning (SFTConfig.lora=None) with an update constraint")
    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoint"
    acc = make_accelerator(model, config.grad_accum, config.mixed_precision)
    if acc.num_processes > 1:
        model.hf.to(acc.device)  # before the optimizer exists, so resumed optimizer state lands there too
    if config.lora is not None:
        from interp.train.lora import apply_lora

        apply_lora(model, config.lora, seed=config.seed)
    params = trainable_parameters(model, config.frozen)
    half = sorted(n for n, p in params.items() if p.dtype == torch.float16)
    if half:
        # AdamW's eps (1e-8) underflows in float16 and the first step is NaN; bf16 weights train fine.
        raise ValueError(f"float16 weights cannot be trained with AdamW ({half[0]} and {len(half) - 1} more): "
                         "load the model in float32 with mixed_precision='fp16', or in bfloat16")
    # Only what the optimizer steps may take gradients: DDP waits for a gradient of every parameter that
    # requires one, and some get none (GPT-2's fused c_attn, which the bridge runs as split q/k/v copies).
    stepped = {id(p) for p in params.values()}
    for p in model.hf.parameters():
        if id(p) not in stepped:
            p.requires_grad_(False)
    optimizer = torch.optim.AdamW(param_groups(params, config), lr=config.lr, weight_decay=config.weight_decay)
    schedule = batch_schedule(len(examples), config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, len(schedule)))
    fp = _fingerprint(examples, config)
    start, losses, history = 0, [], list(history_prefix)
    if (ckpt / "state.json").exists():
        start, losses, history = load_checkpoint(ckpt, params, optimizer, scheduler, fp)
        log.info("resuming %s from step %d/%d", out_dir, start, len(schedule))
    objective, optimizer, scheduler = acc.prepare(Objective(model), optimizer, scheduler)
    if start == 0:
        run_callbacks(callbacks, model, 0, history)

    model.hf.train()
    settings = LoopSettings(config.max_grad_norm, config.callback_every, config.checkpoint_every)
    try:
        loop = run_steps(acc, model, params, optimizer, scheduler, len(schedule),
                         lambda step: _step(acc, objective, model, [examples[i] for i in schedule[step]], config,
                                            step),
                         settings, ckpt, fp, start, losses, history, callbacks, constraint, f"sft {out_dir.name}")
        losses, history = loop.losses, loop.history
    finally:
        model.hf.eval()
        acc.free_memory()  # drops accelerate's references to the DDP wrapper (and its gradient hooks)

    meta = {"recipe_config": asdict(config), "n_examples": len(examples), "fingerprint": fp,
            "examples_by_kind": _count_kinds(examples), "processes": acc.num_processes, **(provenance or {})}
    model.provenance = {**model.provenance, "training": meta}
    model_dir = _save_result(acc.is_main_process, model, config, out_dir, {"losses": losses, "history": history,
                                                                          **meta})
    acc.wait_for_everyone()
    return TrainResult(model_dir, len(schedule), losses, history, asdict(config))


def _step(acc, objective, model, examples: list[SFTExample], config: SFTConfig, step: int) -> torch.Tensor:
    """Forward and backward of this process's micro-batches; the global batch's mean loss (every process)."""
    from interp.train.engine import micro_batches

    parts = micro_batches(model, examples, config.max_length, acc.process_index, acc.num_processes,
                          config.grad_accum)
    total = torch.zeros((), device=model.device)
    for part in parts:
        batch = part.batch.to(model.device)
        with acc.accumulate(objective):
            loss = objective(batch.input_ids, batch.attention_mask, batch.labels)
            acc.backward(loss * part.weight)
        total = total + loss.detach().float() * part.share
    if acc.num_processes > 1:
        total = acc.reduce(total, "sum")
    # Checked on the reduced loss, so every process raises together (one alone would leave the rest waiting).
    check_finite(total, step)
    return total


def _save_result(is_main: bool, model, config: SFTConfig, out_dir: Path, record: dict) -> Path:
    """Merge LoRA adapters (every process: the model is trained in place) and write the outputs (main only).

    Returns the saved model's folder, or the adapter's under ``save_model=False``."""
    model_dir = out_dir / "model" if config.save_model else out_dir / "adapter"
    if config.lora is not None:
        from interp.train.lora import merge_lora, save_adapter

        if is_main:
            save_adapter(model, config.lora, out_dir / "adapter")
        if config.save_model:
            merge_lora(model)
    if is_main:
        if config.save_model:
            model.save(model_dir, extra={"name": str(model_dir)})
        write_json(out_dir / "train.json", record)
        if (out_dir / "checkpoint").exists():
            import shutil

            shutil.rmtree(out_dir / "checkpoint")
    return model_dir


def _count_kinds(examples: Sequence[SFTExample]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ex in examples:
        out[ex.kind] = out.get(ex.kind, 0) + 1
    return out


def n_steps(n_examples: int, config: SFTConfig) -> int:
    return config.epochs * math.ceil(n_examples / config.batch_size)
