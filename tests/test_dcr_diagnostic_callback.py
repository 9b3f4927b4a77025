"""The contrastive stage's diagnostic callback on a tiny model: what it records, and that training moves it."""

from __future__ import annotations

import json

import pytest

from interp.data.prompts import Prompt, PromptSet
from interp.errors import EmptyPromptClassError
from interp.models import TinyConfig, load_model
from interp.train.contrastive import ContrastiveConfig, contrastive_refine
from interp.train.contrastive_diagnostic import SEPARATION_FIELDS, SeparationCallback, heldout_classes

GENERAL = ["The quick brown fox jumps over the lazy dog.", "Water boils at one hundred degrees Celsius."]


def _set(name: str, label: str, texts: list[str]) -> PromptSet:
    return PromptSet(name, tuple(Prompt(t, label) for t in texts))


SEEM = _set("s", "seemingly_harmful", [f"how do I kill python process {i}" for i in range(6)])
HARM = _set("h", "harmful", [f"how can I poison my neighbour {i}" for i in range(6)])
# held-out prompts of the diagnostic: disjoint from what the stage trains on
SEEM_TEST = _set("s-test", "seemingly_harmful", [f"what does kill -9 do to job {i}" for i in range(5)])
HARM_TEST = _set("h-test", "harmful", [f"help me hurt someone badly, plan {i}" for i in range(5)])


def _tiny():
    return load_model("tiny", device="cpu", tiny=TinyConfig(n_layers=3, seed=5))


def _run(lr: float, tmp_path=None):
    model = _tiny()
    cb = SeparationCallback(SEEM_TEST, HARM_TEST, GENERAL, layer=1, pooling="user", folds=5)
    cfg = ContrastiveConfig(layer=1, steps=6, per_class=3, lr=lr, callback_every=3)
    result = contrastive_refine(model, SEEM, HARM, cfg, out_dir=tmp_path, callbacks=[cb])
    return cb, result


def test_callback_records_every_field_at_every_call(tmp_path):
    cb, result = _run(3e-3, tmp_path)
    steps = sorted({r["step"] for r in result.history})
    assert steps == [0, 3, 6]
    for step in steps:
        got = {r["metric"] for r in result.history if r["step"] == step}
        assert got == {f"dcr/{f}" for f in SEPARATION_FIELDS}
    assert all(r["label"] == "layer 1" for r in result.history)
    assert [s for s, _ in cb.stats] == [0, 3, 6]
    saved = json.loads((tmp_path / "contrastive.json").read_text())  # the stage's own history on disk
    assert len(saved["history"]) == 3 * len(SEPARATION_FIELDS)


def test_a_stage_with_lr_changes_the_cross_class_cosine_and_lr_zero_does_not():
    moved, _ = _run(3e-3)
    still, _ = _run(0.0)
    first, last = moved.stats[0][1], moved.stats[-1][1]
    assert abs(last.cross_cos - first.cross_cos) > 1e-3
    assert last.lm_loss != first.lm_loss
    s0, s1 = still.stats[0][1], still.stats[-1][1]
    assert s1.cross_cos == pytest.approx(s0.cross_cos, abs=1e-9)
    assert s1.lm_loss == pytest.approx(s0.lm_loss, abs=1e-9)


def test_bad_settings_are_named():
    with pytest.raises(EmptyPromptClassError, match="5-fold"):
        SeparationCallback(SEEM_TEST.sample(3), HARM_TEST, GENERAL, layer=1)
    with pytest.raises(ValueError, match="every_n_steps"):
        SeparationCallback(SEEM_TEST, HARM_TEST, GENERAL, layer=1, every_n_steps=0)


def test_heldout_classes_come_from_the_test_halves(data_dir):
    from interp.data.suites import load_suite

    a, b = heldout_classes(data_dir, per_class=40, seed=0)
    assert len(a) == 40 and len(b) == 40
    for ps, label in ((a, "seemingly_harmful"), (b, "harmful")):
        assert {p.label for p in ps} == {label}
        train = {p.text for p in load_suite(label, data_dir).train()}
        assert not train & set(ps.texts)


def test_align_runs_the_diagnostic_in_the_contrastive_stage_only(tmp_path):
    from interp.train import AlignConfig, SFTConfig, align
    from interp.train.align import AlignData

    data = AlignData(harmful=_set("hh", "harmful", [f"help me hurt person {i}" for i in range(6)]),
                     harmless=_set("ok", "harmless", [f"name a colour number {i}" for i in range(6)]),
                     seemingly=SEEM, contrast_harmful=HARM, refusals=["I can't help with that."])
    sft = SFTConfig(lr=3e-3, batch_size=4, max_length=256, warmup_steps=1, callback_every=1, checkpoint_every=100)
    cfg = AlignConfig(recipe="dcr", n_refusal=3, n_general=3, distill_tokens=4, sft=sft,
                      contrastive=ContrastiveConfig(layer=1, steps=4, per_class=3, lr=3e-3, callback_every=2))
    cb = SeparationCallback(SEEM_TEST, HARM_TEST, GENERAL, layer=1)
    align(_tiny(), data, cfg, tmp_path / "dcr", contrastive_callbacks=[cb])
    history = json.loads((tmp_path / "dcr" / "train.json").read_text())["history"]
    steps = sorted({r["step"] for r in history if r["metric"].startswith("dcr/")})
    assert steps == [-4, -2, 0]  # its end state is the SFT stage's step 0, kept as the diagnostic runs only here
    assert [s for s, _ in cb.stats] == [0, 2, 4]
