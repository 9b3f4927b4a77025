"""The prompt sets a SafeMoE run reads: harm-domain sources, router harmless data, evaluation sets."""

from __future__ import annotations

from pathlib import Path

from interp.data.builtin import builtin_prompts
from interp.data.prompts import PromptSet, concat
from interp.errors import InterpError

HARMFULQA_FILE = "harmfulqa/harmfulqa.json"


def load_source(name: str, data_dir: str | Path | None) -> PromptSet:
    """One prompt source by name: ``builtin`` (harmful), ``harmfulqa`` or a registry benchmark name."""
    from interp.data.registry import load_prompts
    from interp.safemoe.data import load_harmfulqa

    if name == "builtin":
        return builtin_prompts("harmful")
    if data_dir is None:
        raise InterpError(f"prompt source {name!r} needs a data directory (--data-dir)")
    if name == "harmfulqa":
        return load_harmfulqa(Path(data_dir) / HARMFULQA_FILE)
    return load_prompts(name, data_dir)


def harm_prompts(sources: tuple[str, ...], data_dir: str | Path | None) -> PromptSet:
    """Harmful prompts of every source (all halves: callers split)."""
    return concat("harm", [load_source(s, data_dir).by_label("harmful") for s in sources])


def harmless_prompts(data_dir: str | Path | None = None) -> PromptSet:
    """Harmless prompts: the built-in ones, plus Alpaca's harmless split when a data folder is given."""
    sets = [builtin_prompts("harmless")]
    if data_dir is not None:
        sets.append(load_source("alpaca", data_dir))
    return concat("harmless", sets)


def seemingly_harmful_prompts(data_dir: str | Path | None = None) -> PromptSet:
    """Seemingly harmful prompts: built-in, plus XSTest's safe prompts when a data folder is given."""
    sets = [builtin_prompts("seemingly_harmful")]
    if data_dir is not None:
        sets.append(load_source("xstest", data_dir).by_label("seemingly_harmful"))
    return concat("seemingly_harmful", sets)


def eval_prompts(harmful_sources: tuple[str, ...], per_source: int, seed: int,
                 data_dir: str | Path | None) -> PromptSet:
    """Held-out halves: each harmful source, harmless and seemingly harmful, ``per_source`` of each source."""
    sets = [load_source(s, data_dir).by_label("harmful") for s in harmful_sources]
    sets += [harmless_prompts(data_dir), seemingly_harmful_prompts(data_dir)]
    out = []
    for ps in sets:
        for src in sorted({p.source for p in ps}):
            part = ps.filter(lambda p, s=src: p.source == s).split().test
            out.append(part.sample(per_source, seed))
    return concat("safemoe-eval", out)
