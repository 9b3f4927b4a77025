"""No evaluation prompt is in any training pool: every analysis' and recipe's data selection, every seed.

Each analysis script and recipe exposes ``data_selection(...)`` -> :class:`DataSelection`; this test
builds them all against the real benchmark files (held-out halves included) for several seeds, and
shows on a re-creation of the old heads-analysis split (40% by a seed-dependent hash) that it bites.
"""


import pytest
from helpers import load_analysis as analysis

from interp.data.prompts import PromptSet
from interp.data.registry import load_prompt_sets
from interp.data.selection import DataSelection

SEEDS = (0, 1, 2, 7, 12345)


def selections(data_dir, seed: int) -> list[DataSelection]:
    from interp.train.align import align_data_selection

    heads = analysis("heads_tradeoff")
    cfg = heads.Config(data_dir=str(data_dir), seed=seed, n_train=64, n_eval=64)
    return [
        align_data_selection(data_dir, seed),
        analysis("align_table").data_selection(data_dir, None, seed),
        heads.data_selection(cfg),
        analysis("refusal_direction_layers").data_selection(data_dir, 64, seed),
        analysis("sae_refusal_subspace").data_selection(160, seed),
        analysis("refusal_preserving_ft").data_selection(data_dir),
        analysis("foundation_eval").data_selection(data_dir),
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_no_selection_trains_on_heldout_prompts(data_dir, seed):
    sels = selections(data_dir, seed)
    assert all(sum(len(ps) for ps in s.train.values()) > 0 for s in sels if s.name != "foundation_eval")
    assert all(sum(len(ps) for ps in s.evaluation.values()) > 0 for s in sels)
    assert [leak for s in sels for leak in s.leaks()] == []
    # across analyses too: nothing any of them evaluates is trained on by any other
    trained = {p.text.strip().lower() for s in sels for ps in s.train.values() for p in ps}
    scored = {p.text.strip().lower() for s in sels for ps in s.evaluation.values() for p in ps}
    assert not trained & scored


def old_heads_splits(ps: PromptSet, seed: int) -> DataSelection:
    """The heads analysis before the fix: split(0.4, seed) on the whole set."""
    train, ev = {}, {}
    for label in ("harmful", "harmless"):
        sub = ps.by_label(label).dedupe()
        ev[label] = sub.filter(lambda p: p.split_key(seed) < 0.4)
        train[label] = sub.filter(lambda p: p.split_key(seed) >= 0.4)
    return DataSelection("old heads_tradeoff", train, ev)


@pytest.mark.parametrize("seed", (0, 3))
def test_the_check_catches_the_old_split(data_dir, seed):
    ps = load_prompt_sets(["builtin:harmful", "builtin:harmless", "advbench"], data_dir=data_dir)
    leaks = old_heads_splits(ps, seed).leaks()
    assert leaks and any("training-half prompt(s) in evaluation pool" in x for x in leaks)
    with pytest.raises(ValueError, match="held-out split violated"):
        old_heads_splits(ps, seed).check()
