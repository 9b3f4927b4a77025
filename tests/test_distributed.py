"""Training and evaluation on two CPU processes (``accelerate launch``, gloo) against one process.

One launch of tests/dist_worker.py (about 30-60 s: two processes each import torch, transformers and
transformer-lens) produces every two-process result; each test compares one of them with the same
computation in this (single) process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import dist_worker as w
import pytest
import torch

from interp.distributed import gather_in_order, split_evenly, whole_batch_share
from interp.evaluate.batching import sorted_batches
from interp.train import SFTConfig, train_sft
from interp.train.sft import batch_schedule

GRAD_ACCUM = 2
"""Micro-batches per process in the launched runs (one process here uses 1): 4 parts per step."""


def _free_port() -> int:
    with socket.socket() as s:  # another launch on this machine may hold accelerate's default port
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # `accelerate launch --cpu --num_processes 2` starts ONE process (its CPU launcher forks only through
    # mpirun with a hostfile); `--multi_gpu` goes through torchrun, and ACCELERATE_USE_CPU with no visible
    # GPU makes that two CPU processes talking over gloo (MULTI_CPU).
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()),
           str(Path(__file__).with_name("dist_worker.py")), str(out), str(GRAD_ACCUM)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_USE_CPU": "1",
           "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        pytest.fail(f"accelerate launch failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    assert json.loads((out / "world.json").read_text())["size"] == 2, "the worker did not run on 2 processes"
    return out


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    """The launched runs' training in this single process, on the whole batch of every step."""
    return train_sft(w.tiny(), w.EXAMPLES, w.CONFIG, tmp_path_factory.mktemp("one"))


def _weights(path_or_model) -> dict[str, torch.Tensor]:
    from interp.models import load_model

    model = load_model(str(path_or_model), device="cpu") if isinstance(path_or_model, Path) else path_or_model
    return {k: v.detach() for k, v in model.named_parameters().items()}


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_gradient_accumulation_in_one_process_equals_the_whole_batch(one, tmp_path):
    # 4 micro-batches of different token counts per step: weighting each by its share of the step's
    # response tokens is what makes this equal (a plain mean of micro-batch means is ~1e-2 off here)
    acc = train_sft(w.tiny(), w.EXAMPLES, SFTConfig(**{**w.CONFIG.__dict__, "grad_accum": 4}), tmp_path / "acc")
    assert _max_diff(_weights(one.model_dir), _weights(acc.model_dir)) < 1e-5


def test_bf16_mixed_precision_trains_float32_weights(tmp_path):
    model = w.tiny()
    cfg = SFTConfig(**{**w.CONFIG.__dict__, "mixed_precision": "bf16", "epochs": 1, "checkpoint_every": 100})
    result = train_sft(model, w.EXAMPLES, cfg, tmp_path / "bf16")
    assert all(p.dtype == torch.float32 for p in model.named_parameters().values())
    assert result.losses[-1][1] < result.losses[0][1]


def test_two_processes_train_like_one_on_the_whole_batch(launched, one):
    single, two = _weights(one.model_dir), _weights(launched / "straight" / "model")
    assert _max_diff(single, _weights(w.tiny())) > 1e-2, "training changed nothing"
    assert _max_diff(single, two) < 1e-5
    saved = json.loads((launched / "straight" / "train.json").read_text())
    assert saved["processes"] == 2
    # the logged loss is the global batch's mean, not one process's
    assert [x[1] for x in saved["losses"]] == pytest.approx([x[1] for x in one.losses], abs=1e-5)


def test_bridge_hooks_fire_inside_the_ddp_training_forward(launched):
    steps = len(batch_schedule(len(w.EXAMPLES), w.CONFIG))
    # every micro-batch forward (GRAD_ACCUM per step) passes both layers' hook_z, on both processes
    assert json.loads((launched / "world.json").read_text())["hook_calls"] == [steps * GRAD_ACCUM * 2] * 2


def test_resumed_two_process_run_equals_uninterrupted_bitwise(launched):
    straight, resumed = _weights(launched / "straight" / "model"), _weights(launched / "resumed" / "model")
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), f"{k} differs after resume"
    assert not (launched / "resumed" / "checkpoint").exists()


def test_two_process_lora_matches_one_process(launched, tmp_path):
    cfg = SFTConfig(**{**w.CONFIG.__dict__, "lora": w.LORA})
    single_run = train_sft(w.tiny(), w.EXAMPLES, cfg, tmp_path / "lora")
    single, two = _weights(single_run.model_dir), _weights(launched / "lora" / "model")
    assert _max_diff(single, two) < 1e-5
    base = _weights(w.tiny())
    changed = {k for k in single if not torch.equal(single[k], base[k])}
    assert changed and all(".q_proj." in k or ".v_proj." in k for k in changed), sorted(changed)
    assert (launched / "lora" / "adapter" / "adapter_model.safetensors").exists()


def test_two_process_gpt2_style_model_matches_one_process(launched, tmp_path):
    from interp.models import load_model

    single_run = train_sft(load_model("tiny-gpt2", device="cpu"), w.EXAMPLES, w.SHORT, tmp_path / "gpt2")
    assert _max_diff(_weights(single_run.model_dir), _weights(launched / "gpt2" / "model")) < 1e-5


def test_data_parallel_generation_evaluation_and_activations_equal_one_process_exactly(launched):
    from safetensors.torch import load_file

    replies, result, z = w.evaluation_outputs(w.lively_tiny())
    assert len(set(replies)) > 1, "degenerate check: every reply is the same"
    assert json.loads((launched / "generate.json").read_text()) == replies
    two = json.loads((launched / "eval.json").read_text())
    one = json.loads(json.dumps(result, sort_keys=True))
    assert two["records"] == one["records"]  # replies and float refusal scores, bitwise
    assert two == one
    assert torch.equal(load_file(launched / "z.safetensors")["z"], z)


def test_whole_batch_shares_re_form_the_single_process_batches():
    lengths = [5, 3, 9, 3, 3, 7, 1, 9, 2, 3, 5]
    full = sorted_batches(lengths, 3)
    for size in (2, 3, 5):
        seen = []
        for rank in range(size):
            share = whole_batch_share(lengths, 3, w=_world(rank, size))
            # what the function would batch on the share alone, mapped back to global positions
            local = [[share[i] for i in b] for b in sorted_batches([lengths[i] for i in share], 3)]
            assert local == full[rank::size]
            seen += share
        assert sorted(seen) == list(range(len(lengths)))


def test_input_order_shares_re_form_contiguous_batches():
    from interp.distributed import input_batches

    full = input_batches(10, 3)
    for size in (2, 3):
        shares = [whole_batch_share(None, 3, w=_world(rank, size), n=10) for rank in range(size)]
        for rank, share in enumerate(shares):
            assert [[share[i] for i in b] for b in input_batches(len(share), 3)] == full[rank::size]


def test_split_and_gather_helpers_in_one_process():
    assert split_evenly(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_evenly([1], 4) == [[1], [], [], []]
    assert gather_in_order([(1, "b"), (0, "a")], 2) == ["a", "b"]
    with pytest.raises(RuntimeError, match="lost positions"):
        gather_in_order([(0, "a")], 2)


def _world(rank: int, size: int):
    from interp.distributed import World

    return World(rank, size)
