"""The accelerate side of the SFT trainer: the accelerator, the wrapped loss, each process's micro-batches.

``accelerate launch`` configs choose DDP (and the device of each process); mixed precision and
gradient accumulation come from :class:`~interp.train.sft.SFTConfig`. Without a launcher this is
one process on the model's own device, computing exactly what the plain loop computed.

Every optimizer step's global batch (``batch_schedule``, a pure function of seed and epoch) is cut
into ``processes x grad_accum`` contiguous micro-batches. Each micro-batch's mean response loss is
reweighted by its share of the global batch's response tokens, so after DDP averages gradients over
processes and accelerate divides by ``grad_accum``, the gradient is that of the mean over all the
global batch's response tokens: the same as one process on the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.distributed import launched, split_evenly
from interp.train.examples import IGNORE, SFTExample, TokenBatch, collate
from interp.train.loss import response_loss

_SUPPORTED = ("NO", "MULTI_CPU", "MULTI_GPU")
"""accelerate distributed types whose parameters stay the model's own (replicated, not sharded)."""


def make_accelerator(model, grad_accum: int, mixed_precision: str | None):
    """An ``Accelerator`` for one run; without a launcher it keeps the model where it is."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DataLoaderConfiguration

    if not launched():
        # accelerate keeps its state in process-wide singletons that refuse a second precision; one
        # process has no process group to keep, so each run starts from a fresh state.
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    acc = Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=grad_accum,
        cpu=not launched() and model.device.type == "cpu",
        device_placement=launched(),
        # The global batch is split across processes, so the schedule has as many steps as with one
        # process: the prepared scheduler then steps once per optimizer step (not once per process).
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    kind = acc.distributed_type.name if hasattr(acc.distributed_type, "name") else str(acc.distributed_type)
    if kind not in _SUPPORTED:
        raise NotImplementedError(
            f"accelerate distributed type {kind} shards the parameters; train_sft's checkpoints and final "
            f"save read the model's own parameters, so it supports {list(_SUPPORTED)} (DDP) only")
    return acc


class Objective(torch.nn.Module):
    """The response loss as a module around ``model.hf``, so DDP's forward (and autocast) wrap the loss."""

    def __init__(self, model):
        super().__init__()
        self.hf = model.hf  # registered: DDP finds the parameters here
        self._handle = model  # the Model handle response_loss expects (not a module)

    def forward(self, input_ids: Int[Tensor, "batch seq"], attention_mask: Int[Tensor, "batch seq"],
                labels: Int[Tensor, "batch seq"]) -> Float[Tensor, ""]:
        return response_loss(self._handle, TokenBatch(input_ids, attention_mask, labels))


@dataclass(frozen=True)
class MicroBatch:
    """One forward/backward of this process within an optimizer step."""

    batch: TokenBatch
    """Right-padded tokens (on the CPU)."""
    weight: float
    """Factor on the micro-batch's mean loss: its response tokens x parts / the global batch's tokens
    (0 for a stand-in that only keeps this process in step with the others)."""
    share: float
    """Its response tokens / the global batch's: the weights of the logged global mean loss."""


def micro_batches(model, examples: Sequence[SFTExample], max_length: int, rank: int, processes: int,
                  grad_accum: int) -> list[MicroBatch]:
    """This process's ``grad_accum`` micro-batches of one optimizer step's global batch ``examples``."""
    encoded_targets = [n_targets(model, ex, max_length) for ex in examples]
    total = sum(encoded_targets)
    if total == 0:  # the same error one process raises on the whole batch
        response_loss(model, collate(model, list(examples), max_length))
    parts = processes * grad_accum
    pieces = split_evenly(list(range(len(examples))), parts)[rank * grad_accum:(rank + 1) * grad_accum]
    stand_in = next(i for i, n in enumerate(encoded_targets) if n)
    out = []
    for idx in pieces:
        local = sum(encoded_targets[i] for i in idx)
        if local == 0:
            # DDP needs every process in every backward; a zero-weight copy adds nothing to the gradient.
            out.append(MicroBatch(collate(model, [examples[stand_in]], max_length), 0.0, 0.0))
        else:
            out.append(MicroBatch(collate(model, [examples[i] for i in idx], max_length),
                                  local * parts / total, local / total))
    return out


def n_targets(model, ex: SFTExample, max_length: int) -> int:
    from interp.train.examples import encode_example

    _, labels = encode_example(model, ex, max_length)
    return sum(label != IGNORE for label in labels[1:])
