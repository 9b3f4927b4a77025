"""Prompt-set specs (``builtin:harmful``, ``xstest:/path/xstest_prompts.csv``) and benchmark file lookup."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from interp.data import benchmarks as bm
from interp.data.builtin import builtin_prompts
from interp.data.preferences import hh_rlhf_harmful_prompts
from interp.data.prompts import LABELS, PromptSet, concat
from interp.errors import DataFormatError, InterpError

Loader = Callable[[bm.Source], PromptSet]

FORMATS: dict[str, Loader] = {
    "xstest": bm.load_xstest,
    "advbench": bm.load_advbench,
    "jbb": bm.load_jbb_harmful,
    "jbb-benign": bm.load_jbb_benign,
    "harmbench": bm.load_harmbench,
    "truthfulqa": bm.load_truthfulqa,
    "truthfulqa-mc": bm.load_truthfulqa_mc,
    "halueval": bm.load_halueval_qa,
    "oktest": bm.load_oktest,
    "coconot-contrast": bm.load_coconot_contrast,
    "coconot": bm.load_coconot_noncompliance,
    "catqa": bm.load_catqa,
    "alpaca": bm.load_alpaca,
    "hh-rlhf": hh_rlhf_harmful_prompts,
}
"""Prompt-set format name -> loader taking a path or Hugging Face dataset name."""

BENCHMARKS: dict[str, tuple[str, str | None]] = {
    "xstest": ("xstest/xstest_prompts.csv", "xstest"),
    "xstest-completions": ("xstest/xstest_v2_completions_llama2orig.csv", None),
    "advbench": ("advbench/harmful_behaviors.csv", "advbench"),
    "jbb": ("jailbreakbench/behaviors.csv", "jbb"),
    "jbb-harmful": ("jailbreakbench/behaviors.csv", "jbb"),
    "jbb-benign": ("jailbreakbench/benign_behaviors.csv", "jbb-benign"),
    "harmbench": ("harmbench/harmbench_test.csv", "harmbench"),
    "harmbench-test": ("harmbench/harmbench_test.csv", "harmbench"),
    "harmbench-val": ("harmbench/harmbench_val.csv", "harmbench"),
    "truthfulqa": ("truthfulqa/TruthfulQA.csv", "truthfulqa"),
    "truthfulqa-mc": ("truthfulqa/mc_task.json", "truthfulqa-mc"),
    "halueval": ("halueval/qa_one-turn.json", "halueval"),
    "oktest": ("oktest/OKTest.csv", "oktest"),
    "coconot-contrast": ("coconot/coconot_contrast_eval.jsonl", "coconot-contrast"),
    "coconot": ("coconot/coconot_eval.jsonl", "coconot"),
    "coconot-pref": ("coconot/coconot_pref.jsonl", None),
    "hh-rlhf": ("hh_rlhf/harmless-base_test.jsonl.gz", "hh-rlhf"),
    "catqa": ("catqa/catqa_english.json", "catqa"),
    "alpaca": ("alpaca/harmless_val.json", "alpaca"),
    "alpaca-val": ("alpaca/harmless_val.json", "alpaca"),
    "alpaca-test": ("alpaca/harmless_test.json", "alpaca"),
}
"""Benchmark name -> (file inside a data directory laid out like the shared one, prompt-set format or
None for non-prompt files such as completions and preference pairs)."""


def _known() -> str:
    names = sorted(set(FORMATS) | {n for n, (_, fmt) in BENCHMARKS.items() if fmt})
    return ", ".join(["builtin", *(f"builtin:{lab}" for lab in LABELS), *names])


def find_benchmark(data_dir: str | os.PathLike, name: str) -> Path:
    """The file of benchmark ``name`` in ``data_dir`` (``advbench`` -> advbench/harmful_behaviors.csv)."""
    if name not in BENCHMARKS:
        raise InterpError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    path = Path(data_dir).expanduser() / BENCHMARKS[name][0]
    if not path.is_file():
        raise DataFormatError(f"benchmark {name!r} expected at {path}, which does not exist")
    return path


def _format_of(name: str) -> str:
    if name in FORMATS:
        return name
    if name in BENCHMARKS and BENCHMARKS[name][1]:
        return BENCHMARKS[name][1]
    raise InterpError(f"unknown prompt-set format {name!r}; known: {_known()}")


FILTER_FIELDS = ("label", "source", "category", "style")
"""Prompt fields a spec's ``?field=v1,v2`` filter may test."""


def parse_filter(spec: str) -> tuple[str, dict[str, tuple[str, ...]]]:
    """``'truthfulqa?category=Health,Nutrition&label=factual'`` -> ``('truthfulqa', {field: values})``."""
    base, sep, query = spec.rpartition("?")
    if not sep:
        return spec, {}
    conditions: dict[str, tuple[str, ...]] = {}
    for part in query.split("&"):
        field, eq, values = part.partition("=")
        field = field.strip()
        if not eq or field not in FILTER_FIELDS or not values.strip():
            raise InterpError(f"bad filter {part!r} in prompt spec {spec!r}: write ?FIELD=V1,V2 with FIELD one of "
                              f"{', '.join(FILTER_FIELDS)}")
        conditions[field] = tuple(v.strip() for v in values.split(",") if v.strip())
    return base, conditions


def load_prompts(spec: str, data_dir: str | os.PathLike | None = None) -> PromptSet:
    """Load one prompt set from a spec.

    ``builtin`` (all four classes), ``builtin:<label>``, ``<format>:<path or hf name>`` (e.g.
    ``xstest:/x/xstest_prompts.csv``, ``truthfulqa-mc:/x/mc_task.json``) or, with ``data_dir``, a bare
    benchmark name (``advbench``, ``harmbench-val``) resolved by :func:`find_benchmark`. A suffix
    ``?field=v1,v2[&field=...]`` keeps only the prompts whose field is one of the values
    (``truthfulqa?category=Health,Nutrition``); a filter that keeps nothing is an error.
    """
    base, conditions = parse_filter(spec)
    prompts = _load_unfiltered(base, data_dir)
    if not conditions:
        return prompts
    kept = prompts.filter(lambda p: all(getattr(p, f) in vs for f, vs in conditions.items()), spec)
    if not len(kept):
        present = {f: sorted({str(getattr(p, f)) for p in prompts})[:12] for f in conditions}
        raise InterpError(f"prompt spec {spec!r} keeps no prompt of {prompts.name!r}; values present: {present}")
    return kept


def _load_unfiltered(spec: str, data_dir: str | os.PathLike | None) -> PromptSet:
    head, sep, rest = spec.partition(":")
    head, rest = head.strip(), rest.strip()
    if head == "builtin":
        return builtin_prompts(rest or None)
    fmt = _format_of(head)
    if sep and rest:
        return FORMATS[fmt](rest)
    if data_dir is None:
        raise InterpError(f"prompt spec {spec!r} names no file: write {head}:<path> or pass a data directory")
    return FORMATS[fmt](find_benchmark(data_dir, head if head in BENCHMARKS else fmt))


def load_prompt_sets(specs: Sequence[str], data_dir: str | os.PathLike | None = None) -> PromptSet:
    """Several specs concatenated into one prompt set (named by the joined specs)."""
    if not specs:
        raise InterpError("no prompt specs given")
    sets = [load_prompts(s, data_dir) for s in specs]
    return concat("+".join(s.name for s in sets), sets)
