"""Benchmark of SFT throughput: ``interp.train.train_sft`` against a plain PyTorch loop.

Both run the same examples in the same batches (``batch_schedule`` + ``collate``) with AdamW, the same
learning-rate schedule and gradient clipping, each on a freshly loaded copy of the model. The plain
loop is what one writes by hand: ``model(input_ids, attention_mask, labels=labels)`` with Hugging Face's
own loss (full-vocabulary logits at every position). Seconds per optimizer step exclude the first
(warm-up) step of each; ``train_sft`` is timed from a callback called after every step, so its
checkpointing (every ``--checkpoint-every`` steps) is included, the final save is not.
Goal: throughput(train_sft) / throughput(plain loop) >= 0.9.

    PYTHONPATH=. python benchmarks/bench_sft.py                  # embedded model, 8 steps each
    PYTHONPATH=. python benchmarks/bench_sft.py --model tiny     # quick run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from interp.data.builtin import builtin_prompts, builtin_refusals
from interp.models import load_model
from interp.train import SFTConfig, train_sft
from interp.train.examples import SFTExample, collate
from interp.train.sft import batch_schedule, lr_lambda, trainable_parameters


def examples(n: int) -> list[SFTExample]:
    """Refusals to harmful prompts and short answers to factual ones: realistic chat lengths."""
    refusals = builtin_refusals()
    harmful = builtin_prompts("harmful").sample(n // 2, seed=0)
    factual = builtin_prompts("factual").sample(n - n // 2, seed=0)
    out = [SFTExample(p.text, refusals[i % len(refusals)], "refusal") for i, p in enumerate(harmful)]
    out += [SFTExample(p.text, f"The answer is: {p.correct[0]}." if p.correct else "Sure.", "general")
            for p in factual]
    return out


def plain_loop(model, exs: list[SFTExample], config: SFTConfig) -> list[float]:
    """Seconds per step of a hand-written loop over the batches ``train_sft`` would use."""
    params = trainable_parameters(model, config.frozen)
    opt = torch.optim.AdamW(list(params.values()), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(config, len(batch_schedule(len(exs), config))))
    model.hf.train()
    times = []
    for idx in batch_schedule(len(exs), config):
        start = time.perf_counter()
        b = collate(model, [exs[i] for i in idx], config.max_length).to(model.device)
        loss = model.hf(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=b.labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), config.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - start)
    model.hf.eval()
    return times


def workbench_loop(model, exs: list[SFTExample], config: SFTConfig) -> list[float]:
    """Seconds per step of ``train_sft``, from timestamps taken by a callback after every step."""
    stamps: list[float] = []

    def stamp(_model, _step):
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        train_sft(model, exs, config, tmp, callbacks=[stamp])
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--checkpoint-every", type=int, default=20)
    a = p.parse_args(argv)
    config = SFTConfig(batch_size=a.batch_size, callback_every=1, checkpoint_every=a.checkpoint_every)
    exs = examples(a.steps * a.batch_size)
    plain = plain_loop(load_model(a.model), exs, config)[1:]
    ours = workbench_loop(load_model(a.model), exs, config)[1:]
    tp, to = statistics.mean(plain), statistics.mean(ours)
    print(f"model={a.model} steps={a.steps} batch={a.batch_size} threads={torch.get_num_threads()}")
    print(f"  plain loop: {tp:.3f} s/step   train_sft: {to:.3f} s/step")
    print(f"  throughput ratio train_sft / plain = {tp / to:.2f} x   goal >= 0.9")


if __name__ == "__main__":
    main()
