"""TRACE training on the tiny model: the hybrid objective moves the inverted pairs, resume is exact."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import Kill

from interp.data.preferences import LabelledPair
from interp.data.prompts import Prompt
from interp.models import load_model
from interp.realign.config import RealignConfig
from interp.realign.hybrid import item_losses, reference_for
from interp.realign.plan import TrainItem
from interp.realign.trainer import train_realign

CFG = RealignConfig(batch_size=2, max_length=256, lr=3e-3, epochs=2, checkpoint_every=1, callback_every=1,
                    params=("model.layers.*.self_attn.*.weight", "model.layers.*.mlp.*.weight"))


def _items() -> list[TrainItem]:
    out = []
    for i in range(6):
        p = Prompt(f"Question {i}?", "harmless", category="c")
        pair = LabelledPair(p, "I can't help with that.", f"Sure, answer {i}.", True, False)
        kind = ("dpo", "npo", "kl")[i % 3]
        out.append(TrainItem(kind, pair, 0.1 if kind == "kl" else 1.0 + i / 10, i))
    return out


def test_training_lowers_the_weighted_losses(tmp_path):
    model = load_model("tiny", device="cpu")
    items = _items()
    refs = reference_for(model, items, CFG)
    result = train_realign(model, items, CFG, tmp_path / "run")
    assert result.steps == 6 and result.n_items == {"dpo": 2, "npo": 2, "kl": 2}
    after = item_losses(model, items, refs, CFG)
    start = {"dpo": math.log(2), "npo": 2 * math.log(2)}  # the values at θ_ref
    for it, loss in zip(items, after.tolist(), strict=True):
        if it.kind in start:
            assert loss < 0.9 * start[it.kind], (it.kind, loss)
    saved = json.loads((tmp_path / "run" / "train.json").read_text())
    assert saved["n_items"] == result.n_items and len(saved["losses"]) == 6
    reloaded = load_model(str(result.model_dir), device="cpu")
    for (n, a), (_, b) in zip(model.named_parameters().items(), reloaded.named_parameters().items(), strict=True):
        assert torch.equal(a, b), n


def test_resumed_run_matches_uninterrupted_bitwise(tmp_path):
    items = _items()
    straight = load_model("tiny", device="cpu")
    train_realign(straight, items, CFG, tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        train_realign(load_model("tiny", device="cpu"), items, CFG, tmp_path / "b", callbacks=[Kill(3)])
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2  # the checkpoint of the step before the kill
    resumed = load_model("tiny", device="cpu")  # a fresh process starts from θ_ref again
    result = train_realign(resumed, items, CFG, tmp_path / "b")
    assert result.steps == 6 and len(result.losses) == 6
    for (n, a), (_, b) in zip(straight.named_parameters().items(), resumed.named_parameters().items(), strict=True):
        assert torch.equal(a, b), f"{n} differs after resume"


def test_resume_with_other_settings_is_refused(tmp_path):
    items = _items()
    with pytest.raises(KeyboardInterrupt):
        train_realign(load_model("tiny", device="cpu"), items, CFG, tmp_path / "r", callbacks=[Kill(2)])
    other = RealignConfig(**{**CFG.__dict__, "beta": 0.5})
    with pytest.raises(ValueError, match="other data or settings"):
        train_realign(load_model("tiny", device="cpu"), items, other, tmp_path / "r")


def test_frozen_parameters_stay_bitwise_unchanged(tmp_path):
    model = load_model("tiny", device="cpu")
    before = {n: p.detach().clone() for n, p in model.named_parameters().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters().items()}
    cfg = RealignConfig(**{**CFG.__dict__, "params": ("model.layers.0.self_attn.q_proj.weight",), "epochs": 1})
    train_realign(model, _items(), cfg, tmp_path / "run")
    changed = [n for n, p in model.named_parameters().items() if not torch.equal(p, before[n])]
    assert changed == ["model.layers.0.self_attn.q_proj.weight"]
    assert {n: p.requires_grad for n, p in model.named_parameters().items()} == flags  # restored


@pytest.mark.parametrize("variant, loss, kinds", [
    ("trace", "dpo", {"dpo", "kl"}), ("trace", "ipo", {"dpo", "kl"}), ("no_kl", "dpo", {"dpo"}),
    ("no_impact", "dpo", {"dpo", "kl"}), ("no_triage", "dpo", {"dpo"}), ("naive_dpo", "dpo", {"dpo"}),
])
def test_every_variant_runs_end_to_end(tmp_path, variant, loss, kinds):
    from interp.realign.pipeline import prepare
    from interp.realign.policy import policy_from_dict

    pairs = [LabelledPair(Prompt(f"Question {i} on {c}?", "harmless", category=c), f"Sure, answer {i}.",
                          "I can't help with that.", False, True) for i in range(16) for c in ("a", "b")]
    pairs = [p for p in pairs if not p.prompt.heldout]
    pol = policy_from_dict({"name": "t", "default": "comply", "rule": [{"category": "b", "require": "refuse"}]})
    cfg = RealignConfig(**{**CFG.__dict__, "variant": variant, "loss": loss, "max_steps": 2, "epochs": 1,
                           "gold_scope": "conflicts", "gold_fraction": 0.3})
    model = load_model("tiny", device="cpu")
    plan = prepare(model, pairs, pol, cfg)
    assert (plan.impact is not None) == (variant in ("trace", "no_kl", "no_triage"))
    if variant in ("no_impact", "naive_dpo"):
        assert all(it.weight == 1.0 for it in plan.updates)
    n_dpo = {"no_triage": len(plan.pairs), "naive_dpo": len(plan.pairs)}.get(variant, plan.triage.counts()["invert"])
    assert len(plan.updates) == n_dpo
    result = train_realign(model, plan.items, cfg, tmp_path / variant)
    assert {k for k, n in result.n_items.items() if n} <= kinds and result.steps <= 2
    assert all(math.isfinite(v) for _, v in result.losses)
