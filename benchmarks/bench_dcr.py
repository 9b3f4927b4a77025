"""Benchmark of DCR's two costs: the contrastive step, and the gradient-kernel estimator at 16 prompts/class.

(a) Contrastive step: ``interp.train.contrastive.contrastive_refine`` (forward truncated after block l,
user-token pooling, pytorch-metric-learning's Circle loss, AdamW on blocks 0..l) against the loop one
writes by hand: a full forward with ``output_hidden_states=True``, mean pooling of ``hidden_states[l + 1]``
over the attention mask, the same Circle loss and AdamW on the same parameters, same batches.
Seconds per step exclude the first (warm-up) step of each. Goal: throughput(ours) / throughput(plain) >= 1.0
(the truncated forward skips blocks l+1..L-1; user-token masks cost a tokenisation per batch).

(b) Kernel estimator: seconds of ``kernel_similarity`` on 16 held-out-style prompts per class (built-in
seemingly harmful and harmful prompts) for the paper code's variant (each prompt's top-10 first-token
logits over the last 2 blocks) and for the full kernel (every logit, every trainable parameter), both
with the CountSketch estimator; the ratio is the cost of the full kernel over the paper's.

    PYTHONPATH=. python benchmarks/bench_dcr.py                 # embedded model, layer 12, 6 steps
    PYTHONPATH=. python benchmarks/bench_dcr.py --model tiny --layer 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from interp.data.builtin import builtin_prompts
from interp.data.prompts import concat
from interp.models import load_model
from interp.ntk import NTKConfig, kernel_similarity
from interp.train.contrastive import ContrastiveConfig, balanced_batches, circle_loss, contrastive_refine
from interp.train.freeze import freeze, tail_parameter_names


def classes(per_class: int):
    """Seemingly harmful and harmful built-in prompts, ``per_class`` each (all of a class if it has fewer)."""
    a, b = builtin_prompts("seemingly_harmful"), builtin_prompts("harmful")
    return a.sample(min(per_class, len(a)), seed=0), b.sample(min(per_class, len(b)), seed=0)


def plain_loop(model, a, b, config: ContrastiveConfig) -> list[float]:
    """Seconds per step of a hand-written contrastive loop over the same balanced batches."""
    freeze(model, tail_parameter_names(model, config.layer))  # the parameters contrastive_refine trains
    params = [p for p in model.hf.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    loss_fn = circle_loss(config.margin, config.gamma)
    labels = torch.tensor([0] * config.per_class + [1] * config.per_class, device=model.device)
    model.hf.train()
    times = []
    for ia, ib in balanced_batches(len(a), len(b), config.per_class, config.steps, config.seed):
        start = time.perf_counter()
        enc = model.encode_chat([a[i].text for i in ia] + [b[i].text for i in ib])
        out = model.hf(input_ids=enc.input_ids, attention_mask=enc.attention_mask, output_hidden_states=True)
        h = out.hidden_states[config.layer + 1]
        mask = enc.attention_mask.unsqueeze(-1).to(h.dtype)
        loss = loss_fn(((h * mask).sum(1) / mask.sum(1)).float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - start)
    model.hf.eval()
    return times


def workbench_loop(model, a, b, config: ContrastiveConfig) -> list[float]:
    """Seconds per step of ``contrastive_refine``, from timestamps taken by a callback after every step."""
    stamps: list[float] = []

    def stamp(_model, _step):
        stamps.append(time.perf_counter())

    contrastive_refine(model, a, b, config, callbacks=[stamp])
    return [y - x for x, y in zip(stamps, stamps[1:], strict=False)]


def kernel_seconds(model, prompts, config: NTKConfig) -> float:
    start = time.perf_counter()
    kernel_similarity(model, prompts, config, progress=False)
    return time.perf_counter() - start


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--layer", type=int, default=12)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--per-class", type=int, default=8, help="prompts per class in a contrastive batch")
    p.add_argument("--kernel-per-class", type=int, default=16)
    a = p.parse_args(argv)
    config = ContrastiveConfig(layer=a.layer, steps=a.steps, per_class=a.per_class, callback_every=1)
    sa, sb = classes(max(a.per_class, a.kernel_per_class))
    plain = plain_loop(load_model(a.model), sa, sb, config)[1:]
    ours = workbench_loop(load_model(a.model), sa, sb, config)[1:]
    tp, to = statistics.mean(plain), statistics.mean(ours)
    print(f"model={a.model} layer={a.layer} steps={a.steps} batch={2 * a.per_class} threads={torch.get_num_threads()}")
    print(f"  contrastive step: plain {tp:.3f} s   contrastive_refine {to:.3f} s   "
          f"throughput ratio {tp / to:.2f} x   goal >= 1.0")
    model = load_model(a.model)
    k = a.kernel_per_class
    probes = concat("kernel", [sa.sample(min(k, len(sa)), seed=1), sb.sample(min(k, len(sb)), seed=1)])
    paper = kernel_seconds(model, probes, NTKConfig(top_k=10, last_layers=2))
    full = kernel_seconds(model, probes, NTKConfig())
    print(f"  kernel, {len(probes)} prompts ({k}/class): paper code's variant {paper:.1f} s "
          f"({paper / len(probes):.2f} s/prompt)   full kernel {full:.1f} s   ratio full / paper {full / paper:.2f} x")


if __name__ == "__main__":
    main()
