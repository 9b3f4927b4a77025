"""interp.evaluate.cache: a cached evaluation is reused only for the same prompts, settings, dtype and model."""

from __future__ import annotations

import pytest

from interp.data.prompts import Prompt, PromptSet
from interp.evaluate import EvalConfig
from interp.evaluate.cache import evaluate_cached, load_cached_eval
from interp.models import load_model


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", device="cpu")


def prompts(n=3) -> PromptSet:
    return PromptSet("p", tuple(Prompt(f"question {i}?", "harmless", "builtin") for i in range(n)))


def test_second_call_reads_the_cache_and_mismatches_are_named(tiny, tmp_path):
    path, config = tmp_path / "eval.json", EvalConfig(max_new_tokens=2)
    first = evaluate_cached(path, tiny, prompts(), config)
    stamp = path.stat().st_mtime_ns
    assert evaluate_cached(path, tiny, prompts(), config) == first and path.stat().st_mtime_ns == stamp
    assert first["provenance"]["dtype"] == "float32" and len(first["records"]) == 3
    with pytest.raises(ValueError, match="max_new_tokens"):
        load_cached_eval(path, EvalConfig(max_new_tokens=3), prompts())
    with pytest.raises(ValueError, match="other prompts"):
        load_cached_eval(path, config, prompts(2))
    with pytest.raises(ValueError, match="bfloat16"):
        load_cached_eval(path, config, prompts(), dtype="bfloat16")
    other = dict(tiny.provenance, checkpoint="elsewhere")
    with pytest.raises(ValueError, match="another model"):
        load_cached_eval(path, config, prompts(), model_provenance=other)
