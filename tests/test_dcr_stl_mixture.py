"""The paper-like STL mixture: ~5% refusals by default, general answers self-distilled once, cached per prompt."""

from __future__ import annotations

import importlib
import json

import pytest

from interp.cli import build_parser
from interp.cli.align import config_from
from interp.models import TinyConfig, load_model
from interp.train import AlignConfig
from interp.train.align import distill_cache_path, self_distilled

gen = importlib.import_module("interp.evaluate.generate")  # the package re-exports a function of that name


def _tiny():
    return load_model("tiny", device="cpu", tiny=TinyConfig(n_layers=2, seed=1))


def test_paper_mixture_is_about_five_percent_refusals():
    from interp.train.align import PAPER_MIXTURE

    cfg = AlignConfig(**PAPER_MIXTURE)
    assert cfg.n_refusal + cfg.n_general == 1280
    assert cfg.refusal_share == pytest.approx(0.05)
    assert AlignConfig().refusal_share == pytest.approx(0.5)  # the README's STL model
    with pytest.raises(ValueError, match="protect_lr_scale"):
        AlignConfig(protect="lr", protect_lr_scale=0.0)
    with pytest.raises(ValueError, match="counts"):
        AlignConfig(n_refusal=-1)


def test_refusal_fraction_flag_sets_the_refusal_count():
    args = build_parser().parse_args(["align", "--n-general", "950", "--refusal-fraction", "0.05"])
    assert config_from(args).n_refusal == 50
    assert config_from(build_parser().parse_args(["align"])).n_refusal == AlignConfig().n_refusal


class _Counting:
    """Stands in for ``generate``: records which prompts it was asked for; can fail on its n-th call."""

    def __init__(self, fail_on: int | None = None):
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, model, prompts, **kw):
        self.calls.append(list(prompts))
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise KeyboardInterrupt
        return [f"answer to {p}" for p in prompts]


def test_cache_is_per_prompt_shared_across_draws_and_resumable(tmp_path, monkeypatch):
    model = _tiny()
    prompts = [f"prompt {i}" for i in range(10)]
    fake = _Counting(fail_on=2)
    monkeypatch.setattr(gen, "generate", fake)
    with pytest.raises(KeyboardInterrupt):  # killed during the second chunk
        self_distilled(model, prompts, 8, tmp_path, chunk=4)
    path = distill_cache_path(model, 8, tmp_path)
    assert sorted(json.loads(path.read_text())["answers"]) == sorted(prompts[:4])  # first chunk kept
    fake = _Counting()
    monkeypatch.setattr(gen, "generate", fake)
    got = self_distilled(model, prompts, 8, tmp_path, chunk=4)
    assert got == [f"answer to {p}" for p in prompts]
    assert [p for c in fake.calls for p in c] == prompts[4:]  # only what was missing
    # another seed draws an overlapping sample: only its new prompts are generated
    fake = _Counting()
    monkeypatch.setattr(gen, "generate", fake)
    other = [*prompts[5:], "prompt 10", "prompt 11"]
    assert self_distilled(model, other, 8, tmp_path) == [f"answer to {p}" for p in other]
    assert fake.calls == [["prompt 10", "prompt 11"]]
    # another answer length is another cache
    assert distill_cache_path(model, 16, tmp_path) != path


def test_cache_stores_the_real_greedy_answers(tmp_path):
    model = _tiny()
    prompts = ["name a colour", "count to three", "say hello"]
    first = self_distilled(model, prompts, 4, tmp_path, chunk=2)
    assert len(first) == 3 and all(isinstance(a, str) for a in first)
    assert self_distilled(model, prompts[::-1], 4, tmp_path) == first[::-1]


def test_a_foreign_cache_file_is_refused(tmp_path):
    model = _tiny()
    path = distill_cache_path(model, 4, tmp_path)
    path.write_text(json.dumps(["old", "list", "format"]))
    with pytest.raises(ValueError, match="self-distillation cache"):
        self_distilled(model, ["x"], 4, tmp_path)
