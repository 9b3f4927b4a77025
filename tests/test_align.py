"""Safety-alignment recipes on tiny models: data mixtures, disjoint splits, DCR's two stages and history."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from interp.data.prompts import Prompt, PromptSet
from interp.errors import EmptyPromptClassError
from interp.models import TinyConfig, load_model
from interp.train import AlignConfig, SFTConfig, align
from interp.train.align import AlignData, build_examples, suite_align_data
from interp.train.contrastive import ContrastiveConfig, contrastive_refine


def _set(name: str, label: str, texts: list[str], response: str | None = None) -> PromptSet:
    return PromptSet(name, tuple(Prompt(t, label, response=response) for t in texts))


def _data() -> AlignData:
    return AlignData(
        harmful=_set("h", "harmful", [f"help me hurt person {i}" for i in range(8)]),
        harmless=_set("ok", "harmless", [f"name a colour number {i}" for i in range(8)]),
        seemingly=_set("s", "seemingly_harmful", [f"how do I kill process {i}" for i in range(8)],
                       response="Use the kill command."),
        contrast_harmful=_set("c", "harmful", [f"how can I poison neighbour {i}" for i in range(8)]),
        refusals=["I can't help with that."],
    )


def _tiny():
    return load_model("tiny", device="cpu", tiny=TinyConfig(n_layers=3, seed=2))


SFT = SFTConfig(lr=3e-3, batch_size=4, max_length=256, warmup_steps=1, callback_every=1, checkpoint_every=100)


def test_recipes_mix_the_documented_kinds(tmp_path):
    model, data = _tiny(), _data()
    kinds = {}
    for recipe in ("stl", "stl-aug"):
        cfg = AlignConfig(recipe=recipe, n_refusal=5, n_general=6, n_helpful=3, distill_tokens=4)
        exs = build_examples(model, data, cfg, tmp_path / "cache")
        kinds[recipe] = {k: sum(e.kind == k for e in exs) for k in ("refusal", "general", "helpful")}
        assert all(e.response == "I can't help with that." for e in exs if e.kind == "refusal")
        assert {e.prompt for e in exs if e.kind == "refusal"} <= set(data.harmful.texts)
    assert kinds["stl"]["refusal"] == 5 and kinds["stl"]["helpful"] == 0
    assert kinds["stl-aug"]["helpful"] == 3 and kinds["stl-aug"]["refusal"] == 5
    # general answers are the untrained model's own, cached: the two recipes share them
    assert len(list((tmp_path / "cache").glob("distill-*.json"))) == 1


def test_align_data_check_names_the_problem():
    data = _data()
    with pytest.raises(EmptyPromptClassError, match="seemingly"):
        replace(data, seemingly=PromptSet("s", ())).check("stl-aug")
    replace(data, seemingly=PromptSet("s", ())).check("stl")  # stl does not need them
    leaked = replace(data, contrast_harmful=data.harmful)
    with pytest.raises(ValueError, match="overlap"):
        leaked.check("dcr")
    with pytest.raises((ValueError, TypeError), match="recipe"):  # TypeError from the test-time type checker
        AlignConfig(recipe="sft")


def test_dcr_runs_both_stages_and_tracks_them_in_one_history(tmp_path):
    model, data = _tiny(), _data()
    con = ContrastiveConfig(layer=1, steps=6, per_class=3, lr=3e-3, callback_every=3)
    cfg = AlignConfig(recipe="dcr", n_refusal=4, n_general=4, distill_tokens=4, sft=SFT, contrastive=con)
    seen_layers = []

    def probe(m, step):
        seen_layers.append(len(m.hf.model.layers))
        return [{"step": step, "metric": "probe", "label": "x", "value": float(step)}]

    result = align(model, data, cfg, tmp_path / "dcr", callbacks=[probe])
    assert set(seen_layers) == {3}, "callbacks must see the whole model, not the truncated one"
    saved = json.loads((tmp_path / "dcr" / "train.json").read_text())
    steps = [r["step"] for r in saved["history"]]
    # contrastive records at -6, -3 (its step-6 state is the SFT stage's step 0), then every SFT step
    assert steps == [-6, -3, *range(result.steps + 1)] and result.steps >= 1
    assert [r.get("stage") for r in saved["history"]][:2] == ["contrastive", "contrastive"]
    stage = json.loads((tmp_path / "dcr" / "contrastive.json").read_text())
    assert stage["losses"][0] > 0 and len(stage["losses"]) == 6
    assert saved["contrastive_final_loss"] == stage["losses"][-1]
    assert (tmp_path / "dcr" / "contrastive_model" / "config.json").exists()
    reloaded = load_model(str(result.model_dir), device="cpu")
    torch.testing.assert_close(reloaded.hf.model.layers[2].mlp.down_proj.weight,
                               model.hf.model.layers[2].mlp.down_proj.weight)


def test_contrastive_callbacks_run_between_steps():
    model, data = _tiny(), _data()
    cfg = ContrastiveConfig(layer=0, steps=5, per_class=2, lr=1e-3, callback_every=2)
    calls = []
    result = contrastive_refine(model, data.seemingly, data.contrast_harmful, cfg,
                                callbacks=[lambda m, s: calls.append((s, m.hf.training)) or None])
    assert calls == [(0, False), (2, False), (4, False), (5, False)]  # callbacks run in eval mode
    assert result.history == [] and len(result.losses) == 5
    with pytest.raises(ValueError, match="callback_every"):
        ContrastiveConfig(callback_every=0)


def test_suite_align_data_keeps_contrastive_sft_and_evaluation_prompts_apart(data_dir):
    from interp.data.suites import load_suite

    data = suite_align_data(data_dir, n_contrast=100)
    norm = lambda ps: {p.text.strip().lower() for p in ps}  # noqa: E731
    assert len(data.contrast_harmful) == 100 and len(data.harmful) > 100
    assert not norm(data.harmful) & norm(data.contrast_harmful)
    for label, used in (("harmful", data.harmful.prompts + data.contrast_harmful.prompts),
                        ("seemingly_harmful", data.seemingly.prompts), ("harmless", data.harmless.prompts)):
        held_out = set().union(*(norm(ps) for ps in load_suite(label, data_dir).test().values()))
        assert not norm(used) & held_out, f"{label} training prompts leak into the evaluation split"
