"""One flag name per concept across every ``interp`` verb (and the analysis scripts the report runs).

"How many prompts of each class" is ``--per-class`` everywhere; top-k heads are ``--top-k``; SAE sparsity
is ``--sae-k``; every verb that samples takes ``--seed``; defaults come from the config dataclasses.
"""

from __future__ import annotations

import argparse
import re

import pytest
from helpers import ANALYSES

from interp.cli import build_parser

BANNED = {"--n", "--k", "--max-per-class", "--max-prompts", "--n-eval", "--n-attr", "--n-dom", "--n-prompts",
          "--max-per-label", "--per-label"}
"""Old synonyms of --per-class (and the ambiguous --k)."""

PENDING: dict[str, set[str]] = {}
"""Owned elsewhere and not renamed yet: remove an entry once its flag is renamed (a test checks it is still there)."""

SAMPLING = {"eval", "heads", "ntk", "sae collect", "sae train", "sae attribute", "subspace export", "align",
            "realign", "safemoe"}
"""Verbs that draw prompts or initialise something at random: each must take --seed."""
NOT_SAMPLING = {"doctor", "models", "compare", "report", "subspace show", "explore"}


def verbs(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf subcommand ("sae train", "eval", ...) and its parser."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out |= verbs(sub, f"{prefix} {name}".strip())
    return out or {prefix: parser}


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


ALL = verbs(build_parser())


def test_every_verb_is_classified():
    assert set(ALL) <= SAMPLING | NOT_SAMPLING, set(ALL) - SAMPLING - NOT_SAMPLING
    assert SAMPLING <= set(ALL)


@pytest.mark.parametrize("verb", sorted(ALL))
def test_no_banned_synonyms(verb):
    used = set(options(ALL[verb])) & BANNED
    assert used == PENDING.get(verb, set()), f"interp {verb} has {sorted(used)}; use --per-class, --top-k, --sae-k"


@pytest.mark.parametrize("verb", sorted(SAMPLING))
def test_sampling_verbs_take_a_seed(verb):
    assert "--seed" in options(ALL[verb])


def _script_flags(path) -> set[str]:
    return set(re.findall(r"add_argument\(\s*\"(--[a-z0-9-]+)\"", path.read_text()))


@pytest.mark.parametrize("script", sorted(p.name for p in ANALYSES.glob("*.py")))
def test_analysis_scripts_use_the_same_names(script):
    used = _script_flags(ANALYSES / script) & BANNED
    assert used == PENDING.get(f"analyses/{script}", set()), f"{script} still has {sorted(used)}"


def test_top_k_and_sae_k_are_apart():
    assert "--top-k" in options(ALL["heads"]) and "--sae-k" in options(ALL["sae train"])
    assert "--top-k" not in options(ALL["sae train"])


def test_defaults_come_from_the_configs():
    from interp.evaluate.harness import EvalConfig
    from interp.heads.study import HeadStudyConfig
    from interp.ntk.config import NTKConfig
    from interp.sae.attribution import ClassifyConfig
    from interp.sae.store import CollectConfig
    from interp.sae.train import SAETrainConfig

    def default(verb, flag):
        return options(ALL[verb])[flag].default

    ev, hs, ntk, tr, col, cls = (EvalConfig(), HeadStudyConfig(), NTKConfig(), SAETrainConfig(), CollectConfig(),
                                 ClassifyConfig())
    assert default("eval", "--max-new-tokens") == ev.max_new_tokens
    assert default("eval", "--per-class") == ev.max_prompts_per_class and default("eval", "--seed") == ev.seed
    assert default("heads", "--per-class") == hs.n_prompts and default("heads", "--top-k") == list(hs.ks)
    assert default("ntk", "--n-probes") == ntk.n_probes and default("ntk", "--sketch-dim") == ntk.sketch_dim
    assert (default("sae train", "--sae-k"), default("sae train", "--d-sae")) == (tr.k, tr.d_sae)
    assert default("sae train", "--rows") == tr.training_rows and default("sae train", "--seed") == tr.seed
    assert default("sae collect", "--shard-rows") == col.shard_rows
    assert (default("sae attribute", "--hi"), default("sae attribute", "--lo")) == (cls.hi, cls.lo)


def test_pending_renames_are_still_pending():
    """Fails once the owner renames a pending flag: then delete its PENDING entry."""
    for where, flags in PENDING.items():
        found = _script_flags(ANALYSES.parent / where) if where.endswith(".py") else set(options(ALL[where]))
        assert flags <= found, f"{where} no longer has {sorted(flags - found)}: remove it from PENDING"


def test_per_class_samples_each_class():
    from interp.cli.common import sample_per_class
    from interp.data.builtin import builtin_prompts

    prompts = builtin_prompts()
    small = sample_per_class(prompts, 3, seed=1)
    assert set(small.counts().values()) == {3} and set(small.counts()) == set(prompts.counts())
    assert sample_per_class(prompts, 3, seed=1).texts == small.texts != sample_per_class(prompts, 3, seed=2).texts
    assert sample_per_class(prompts, None) is prompts
