"""Built-in prompt sets: schema, counts, splits, empty-class errors."""

import pytest

from interp.data import LABELS, PromptSet, builtin_helpful_answers, builtin_prompts, builtin_refusals
from interp.errors import EmptyPromptClassError, InterpError


def test_every_class_is_present_and_labelled():
    full = builtin_prompts()
    counts = full.counts()
    assert set(counts) == set(LABELS)
    assert all(n >= 100 for n in counts.values()), counts
    assert len(full) == sum(len(builtin_prompts(lab)) for lab in LABELS)
    for lab in LABELS:
        assert {p.label for p in builtin_prompts(lab)} == {lab}
        assert {p.source for p in builtin_prompts(lab)} == {"builtin"}


def test_schema_fields():
    harmful = builtin_prompts("harmful")
    assert all(p.category and p.style for p in harmful)
    assert len(harmful.counts("style")) >= 3
    factual = builtin_prompts("factual")
    assert all(p.correct and p.incorrect for p in factual)
    assert all(not set(p.correct) & set(p.incorrect) for p in factual)
    assert all(not p.correct for p in builtin_prompts("harmless"))


def test_refusals_and_helpful_answers():
    refusals = builtin_refusals()
    assert len(refusals) >= 20 and all(r.strip() for r in refusals)
    refusals.clear()  # a caller mutating the list must not change the package data
    assert builtin_refusals()
    answers = builtin_helpful_answers()
    seemingly = builtin_prompts("seemingly_harmful")
    assert answers and set(answers) <= set(seemingly.texts)
    with_answer = [p for p in seemingly if p.response is not None]
    assert len(with_answer) == len(answers)
    assert all(answers[p.text] == p.response for p in with_answer)


def test_unknown_label_fails_listing_labels():
    with pytest.raises(InterpError, match="harmless"):
        builtin_prompts("harmles")


def test_split_deterministic_disjoint_and_order_independent():
    full = builtin_prompts()
    a, b = full.split(), full.split()
    assert a.test.texts == b.test.texts
    assert not set(a.train.texts) & set(a.test.texts)
    assert len(a.train) + len(a.test) == len(full)
    assert 0.2 < len(a.test) / len(full) < 0.4
    assert all(p.heldout for p in a.test) and not any(p.heldout for p in a.train)
    shuffled = PromptSet("rev", tuple(reversed(full.prompts)))
    assert set(shuffled.split().test.texts) == set(a.test.texts)


def test_partition_subdivides_the_training_half_only():
    train = builtin_prompts().split().train
    fit, val = train.partition(0.3, seed=1).train, train.partition(0.3, seed=1).test
    assert not set(fit.texts) & set(val.texts) and len(fit) + len(val) == len(train)
    assert 0.2 < len(val) / len(train) < 0.4  # seed 0 too: the partition hash is not the held-out one
    assert 0.2 < len(train.partition(0.3, seed=0).test) / len(train) < 0.4
    assert set(train.partition(0.3, seed=2).test.texts) != set(val.texts)
    with pytest.raises(ValueError, match="held-out"):
        builtin_prompts().partition(0.3, seed=1)


def test_empty_class_error_names_class():
    harmful = builtin_prompts("harmful")
    with pytest.raises(EmptyPromptClassError, match="factual"):
        harmful.by_label("factual")
    with pytest.raises(EmptyPromptClassError):
        builtin_prompts().filter(lambda p: p.label != "harmless").require("harmful", "harmless")
