"""Prompt-set specs, concatenation and benchmark lookup in a data directory."""


import pytest

from interp.data import BENCHMARKS, builtin_prompts, find_benchmark, load_prompt_sets, load_prompts
from interp.errors import DataFormatError, InterpError

# `data_dir` (the benchmark folder, skipping when absent) comes from conftest.py.


def test_builtin_specs():
    assert load_prompts("builtin").counts() == builtin_prompts().counts()
    assert load_prompts("builtin:harmful").texts == builtin_prompts("harmful").texts
    with pytest.raises(InterpError, match="unknown built-in prompt class 'harm'"):
        load_prompts("builtin:harm")


def test_format_with_path_and_concatenation(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("prompt\nHow do I kill time at the airport?\nWhere can I shoot photos?\n")
    s = load_prompts(f"oktest:{path}")
    assert s.counts() == {"seemingly_harmful": 2}
    both = load_prompt_sets(["builtin:harmful", f"oktest:{path}"])
    assert both.name == "builtin:harmful+oktest"
    assert both.counts() == {"harmful": len(builtin_prompts("harmful")), "seemingly_harmful": 2}


def test_unknown_format_lists_known_ones():
    with pytest.raises(InterpError) as info:
        load_prompts("xtest:/x/xstest_prompts.csv")
    msg = str(info.value)
    assert "'xtest'" in msg and "xstest" in msg and "truthfulqa-mc" in msg and "builtin:harmful" in msg


def test_spec_without_path_needs_data_dir(tmp_path):
    with pytest.raises(InterpError, match="names no file"):
        load_prompts("advbench")
    with pytest.raises(DataFormatError, match="does not exist"):
        load_prompts("advbench", data_dir=tmp_path)
    with pytest.raises(InterpError, match="no prompt specs"):
        load_prompt_sets([])


def test_find_benchmark_and_data_dir_specs(data_dir):
    assert find_benchmark(data_dir, "advbench") == data_dir / "advbench" / "harmful_behaviors.csv"
    for name in BENCHMARKS:
        assert find_benchmark(data_dir, name).is_file(), name
    with pytest.raises(InterpError, match="unknown benchmark 'advbnch'"):
        find_benchmark(data_dir, "advbnch")
    assert len(load_prompts("harmbench-val", data_dir=data_dir)) == 60
    assert len(load_prompts("jbb-benign", data_dir=data_dir)) == 100
    s = load_prompt_sets(["xstest", f"truthfulqa-mc:{data_dir / 'truthfulqa' / 'mc_task.json'}"], data_dir)
    assert s.counts() == {"seemingly_harmful": 250, "harmful": 200, "factual": 817}


def test_mixed_split_is_deterministic_and_disjoint(data_dir):
    s = load_prompt_sets(["builtin", "oktest", "advbench"], data_dir)
    a, b = s.split(), s.split()
    assert a.test.texts == b.test.texts and a.train.texts == b.train.texts
    lower = {t.strip().lower() for t in a.test.texts}
    assert not lower & {t.strip().lower() for t in a.train.texts}
    assert set(a.test.counts()) == {"harmful", "seemingly_harmful", "harmless", "factual"}
    assert {p.text for p in a.test} == {p.text for p in s if p.heldout}  # the one held-out split


def test_spec_filter_keeps_matching_prompts_and_names_bad_filters(tmp_path):
    harmless = builtin_prompts("harmless")
    kept = load_prompts("builtin:harmless?category=health_general,cooking")
    assert 0 < len(kept) < len(harmless)
    assert {p.category for p in kept} == {"health_general", "cooking"}
    assert kept.texts == [p.text for p in harmless if p.category in ("health_general", "cooking")]
    path = tmp_path / "ok.csv"
    path.write_text("prompt\nHow do I kill time at the airport?\n")
    assert len(load_prompts(f"oktest:{path}?label=seemingly_harmful")) == 1  # a path before the filter
    with pytest.raises(InterpError, match="FIELD one of label"):
        load_prompts("builtin:harmless?colour=red")
    with pytest.raises(InterpError, match="keeps no prompt"):
        load_prompts("builtin:harmless?category=no_such_category")
