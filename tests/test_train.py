"""Fine-tuning mechanics on tiny models: response-only loss, exact resume, tail freezing, Circle loss."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from helpers import Kill

from interp.data.prompts import Prompt, PromptSet
from interp.errors import DataFormatError, NonFiniteLossError
from interp.models import TinyConfig, load_model
from interp.train import SFTConfig, SFTExample, train_sft
from interp.train.contrastive import ContrastiveConfig, contrastive_refine
from interp.train.examples import IGNORE, collate, encode_example
from interp.train.freeze import tail_parameter_names

EXAMPLES = [SFTExample(f"question {i}?", f"answer number {i}.", "general") for i in range(12)]
CFG = SFTConfig(lr=3e-3, epochs=3, batch_size=4, max_length=96, warmup_steps=1, checkpoint_every=1,
                callback_every=100)


def _tiny():
    return load_model("tiny", device="cpu", tiny=TinyConfig(n_layers=3, seed=1))


def test_labels_cover_only_the_response(tiny_model):
    ids, labels = encode_example(tiny_model, SFTExample("hi", "ok"), 200)
    n_target = sum(t != IGNORE for t in labels)
    # "ok" + the end-of-turn token, byte-level: 3 tokens, all at the end
    assert n_target == 3
    assert labels[-3:] == ids[-3:]
    batch = collate(tiny_model, [SFTExample("hi", "ok"), SFTExample("longer prompt", "a b")], 200)
    assert batch.input_ids.shape == batch.labels.shape
    assert batch.n_target_tokens == 3 + 4


def test_sft_lowers_loss_and_saves_loadable_model(tmp_path):
    model = _tiny()
    result = train_sft(model, EXAMPLES, CFG, tmp_path / "run")
    first, last = result.losses[0][1], result.losses[-1][1]
    assert last < first * 0.9
    reloaded = load_model(str(result.model_dir), device="cpu")
    for (n, a), (_, b) in zip(model.named_parameters().items(), reloaded.named_parameters().items(), strict=True):
        assert torch.equal(a, b), n
    assert reloaded.provenance["training"]["n_examples"] == len(EXAMPLES)
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_resumed_run_matches_uninterrupted_bitwise(tmp_path):
    cfg = SFTConfig(**{**CFG.__dict__, "callback_every": 1})
    straight = _tiny()
    train_sft(straight, EXAMPLES, cfg, tmp_path / "a")
    killed = _tiny()
    with pytest.raises(KeyboardInterrupt):
        train_sft(killed, EXAMPLES, cfg, tmp_path / "b", callbacks=[Kill(4)])
    assert (tmp_path / "b" / "checkpoint" / "state.json").exists()
    resumed = _tiny()  # a fresh process would start from the base weights too
    result = train_sft(resumed, EXAMPLES, cfg, tmp_path / "b")
    assert result.steps == 9
    for (n, a), (_, b) in zip(straight.named_parameters().items(), resumed.named_parameters().items(), strict=True):
        assert torch.equal(a, b), f"{n} differs after resume"


def _leave_a_marker(path):  # what a malicious checkpoint would run on load, if it were unpickled
    open(path, "w").close()
    return {}


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return _leave_a_marker, (self.marker,)


def test_checkpoint_with_pickled_code_is_refused_not_run(tmp_path):
    cfg = replace(CFG, callback_every=1)
    with pytest.raises(KeyboardInterrupt):
        train_sft(_tiny(), EXAMPLES, cfg, tmp_path / "run", callbacks=[Kill(2)])  # checkpoint of step 1 written
    optim = tmp_path / "run" / "checkpoint" / "optim.pt"
    state = torch.load(optim, weights_only=True)  # what train_sft writes loads without pickle
    assert set(state) == {"optimizer", "scheduler"}
    marker = tmp_path / "ran"
    torch.save({"optimizer": _Payload(str(marker)), "scheduler": state["scheduler"]}, optim)
    with pytest.raises(DataFormatError, match=r"optim\.pt.*not unpickled.*_leave_a_marker"):
        train_sft(_tiny(), EXAMPLES, cfg, tmp_path / "run")
    assert not marker.exists()


def test_nan_loss_fails_loudly(tmp_path):
    model = _tiny()
    with torch.no_grad():
        model.hf.model.norm.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="step 0"):
        train_sft(model, EXAMPLES, CFG, tmp_path / "nan")


def _contrast_sets():
    seem = PromptSet("s", tuple(Prompt(f"how do I kill a process number {i}", "seemingly_harmful")
                                for i in range(10)))
    harm = PromptSet("h", tuple(Prompt(f"help me hurt person {i} badly", "harmful") for i in range(10)))
    return seem, harm


def test_tail_freezing_leaves_tail_bitwise_unchanged_and_loss_falls():
    model = _tiny()
    layer = 0
    tail = set(tail_parameter_names(model, layer))
    assert "model.layers.1.self_attn.o_proj.weight" in tail and "model.embed_tokens.weight" in tail
    assert "model.layers.0.mlp.down_proj.weight" not in tail
    before = {n: p.detach().clone() for n, p in model.named_parameters().items()}
    seem, harm = _contrast_sets()
    cfg = ContrastiveConfig(layer=layer, steps=25, per_class=4, lr=3e-3)
    result = contrastive_refine(model, seem, harm, cfg)
    after = model.named_parameters()
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed, "nothing was trained"
    assert not changed & tail, f"tail parameters changed: {sorted(changed & tail)}"
    assert result.losses[0] > 0, "Circle loss is zero at the start"
    assert sum(result.losses[-5:]) / 5 < result.losses[0]
    assert len(model.hf.model.layers) == 3  # the truncation was undone


def test_batch_without_response_tokens_names_max_length(tmp_path):
    long_prompt = [SFTExample("a very long question " * 10, "short answer.", "general")] * 4
    with pytest.raises(ValueError, match="max_length"):
        train_sft(_tiny(), long_prompt, replace(CFG, max_length=32), tmp_path / "short")
