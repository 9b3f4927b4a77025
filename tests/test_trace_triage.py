"""TRACE triage: the truth table, labels known by construction, the gold batch kept apart, variants."""

from __future__ import annotations

import itertools

import pytest

from interp.data.builtin import builtin_prompts
from interp.data.preferences import LabelledPair, PreferencePair, coconot_labelled, refusal_pairs
from interp.data.prompts import Prompt, PromptSet
from interp.errors import InterpError
from interp.realign.config import RealignConfig
from interp.realign.gold import check_disjoint, split_gold
from interp.realign.pipeline import check_training_half
from interp.realign.plan import plan_retain, plan_updates
from interp.realign.policy import policy_from_dict
from interp.realign.triage import Action, action_for, triage, triage_pair, violates


def _pair(chosen_refuses: bool, rejected_refuses: bool, category: str = "a") -> LabelledPair:
    p = Prompt(f"question about {category}?", "harmless", "builtin", category=category)
    text = {True: "I can't help with that.", False: "Sure, here you go."}
    return LabelledPair(p, text[chosen_refuses], text[rejected_refuses] + " ", chosen_refuses, rejected_refuses)


def _policy(require: str):
    return policy_from_dict({"name": require, "default": require})


def test_truth_table():
    # (chosen violates, rejected violates) -> action, exactly as in TRACE
    assert action_for(True, False) is Action.INVERT
    assert action_for(True, True) is Action.PUNISH
    assert action_for(False, False) is Action.RETAIN
    assert action_for(False, True) is Action.RETAIN
    assert [violates(r, need) for r in (True, False) for need in ("refuse", "comply", "any")] == \
        [False, True, False, True, False, False]
    expected = {  # (chosen refuses, rejected refuses, requirement) -> action
        (True, False, "comply"): Action.INVERT, (False, True, "refuse"): Action.INVERT,
        (True, True, "comply"): Action.PUNISH, (False, False, "refuse"): Action.PUNISH,
        (True, False, "refuse"): Action.RETAIN, (False, True, "comply"): Action.RETAIN,
        (True, True, "refuse"): Action.RETAIN, (False, False, "comply"): Action.RETAIN,
    }
    for (c, r), need in itertools.product(itertools.product((True, False), repeat=2), ("refuse", "comply", "any")):
        got = triage_pair(_pair(c, r), _policy(need))
        assert got is expected.get((c, r, need), Action.RETAIN), (c, r, need)


def test_refusal_pairs_follow_the_old_policy_and_triage_counts():
    ps = builtin_prompts("seemingly_harmful").split().train.filter(lambda p: p.response is not None)
    pairs = refusal_pairs(ps, refuse=lambda p: True)  # yesterday: refuse every seemingly harmful prompt
    assert all(p.chosen_refuses and not p.rejected_refuses and p.rejected == p.prompt.response for p in pairs)
    new = policy_from_dict({"name": "loosen", "default": "refuse",
                            "rule": [{"category": "history", "require": "comply"}]})
    result = triage(pairs, new)
    n_hist = sum(p.prompt.category == "history" for p in pairs)
    assert n_hist > 0
    assert result.counts() == {"invert": n_hist, "punish": 0, "retain": len(pairs) - n_hist}
    assert result.counts_by(pairs)["history"] == {"invert": n_hist, "punish": 0, "retain": 0}


def test_pairs_without_an_answer_need_one_and_never_invent_one():
    harmful = builtin_prompts("harmful").sample(3)
    with pytest.raises(ValueError, match="no reference answer; pass answer="):
        refusal_pairs(harmful, refuse=lambda p: True)
    pairs = refusal_pairs(harmful, refuse=lambda p: False, answer=lambda p: f"own reply to {p.uid}")
    assert [p.chosen for p in pairs] == [f"own reply to {p.uid}" for p in harmful]
    assert all(p.rejected_refuses for p in pairs)


def test_coconot_pairs_are_compliance_over_refusal():
    (pair,) = coconot_labelled([PreferencePair("Explain X.", "X is ...", "I can't.", "coconot-pref", "humor")])
    assert (pair.chosen_refuses, pair.rejected_refuses, pair.subcategory) == (False, True, "humor")
    pol = policy_from_dict({"name": "p", "default": "comply",
                            "rule": [{"subcategory": "humor", "require": "refuse"}]})
    assert triage_pair(pair, pol) is Action.INVERT


def test_gold_batch_is_policy_correct_and_disjoint():
    prompts = PromptSet("t", tuple(Prompt(f"q number {i}?", "harmless", category="c") for i in range(60)))
    pairs = refusal_pairs(prompts, refuse=lambda p: False, answer=lambda p: "answer")
    pol = _policy("refuse")  # tightening: every pair must invert
    split = split_gold(pairs, pol, 0.25)
    assert 5 <= len(split.gold) <= 25 and len(split.gold) + len(split.rest) == 60
    assert all(g.chosen_refuses and not g.rejected_refuses for g in split.gold)  # relabelled
    check_disjoint(split.gold, split.rest)
    mixed = refusal_pairs(prompts, refuse=lambda p: int(p.uid, 16) % 2 == 0, answer=lambda p: "answer")
    flipped = {p.prompt.text for p in mixed if not p.chosen_refuses}  # answered yesterday, refused now
    conflicts = split_gold(mixed, pol, 0.5, conflicts_only=True)
    assert conflicts.gold and {g.prompt.text for g in conflicts.gold} <= flipped
    assert len(split_gold(mixed, pol, 0.5).gold) > len(conflicts.gold)
    with pytest.raises(InterpError, match="both in the gold batch and among the scored"):
        check_disjoint(split.gold, list(split.rest) + [split.gold[0].swapped()])


def test_heldout_prompts_are_refused():
    ps = builtin_prompts("seemingly_harmful").filter(lambda p: p.response is not None)
    with pytest.raises(InterpError, match="held-out evaluation prompts"):
        check_training_half(refusal_pairs(ps.split().test, refuse=lambda p: True))
    check_training_half(refusal_pairs(ps.split().train, refuse=lambda p: True))


def test_variants_plan_the_documented_items():
    pairs = [_pair(True, False), _pair(False, False), _pair(False, True)]  # under "refuse"
    pol = _policy("refuse")
    tri = triage(pairs, pol)
    assert [a.value for a in tri.actions] == ["retain", "punish", "invert"]
    trace = plan_updates(pairs, tri, RealignConfig())
    assert [(it.kind, it.index) for it in trace] == [("npo", 1), ("dpo", 2)]
    assert trace[1].pair.chosen_refuses  # inverted
    assert [(it.kind, it.index, it.weight) for it in plan_retain(pairs, tri, RealignConfig())] == [("kl", 0, 0.1)]
    assert plan_retain(pairs, tri, RealignConfig(variant="no_kl")) == []
    naive = plan_updates(pairs, tri, RealignConfig(variant="naive_dpo"))
    assert [(it.kind, it.index, it.pair.chosen_refuses) for it in naive] == [("dpo", 0, True), ("dpo", 2, True)]
