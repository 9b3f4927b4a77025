"""SAE sites from head scores: top-k by |score| of each metric, union / intersection, grouped by layer."""

from __future__ import annotations

import pytest
import torch

from interp.heads.scores import HeadScores
from interp.sae.site_choice import sites_from_heads


def _scores(values: dict, metric: str) -> HeadScores:
    s = torch.zeros(3, 4)
    for (layer, head), v in values.items():
        s[layer, head] = v
    return HeadScores(s, metric, "attribution", {"model": "tiny"})


REFUSAL = _scores({(2, 1): 5.0, (1, 3): -4.0, (0, 0): 1.0}, "refusal_score")  # a large negative head
HALLU = _scores({(2, 1): -3.0, (2, 2): 2.5, (0, 1): 0.5}, "truth_margin")


def test_union_ranks_by_magnitude_and_groups_heads_by_layer():
    choice = sites_from_heads(REFUSAL, HALLU, k=2, rule="union")
    assert set(choice.heads) == {(2, 1), (1, 3), (2, 2)}  # (1, 3) enters through |-4|
    assert [s.key for s in choice.sites] == ["z2_h1-2", "z1_h3"]  # layer 2 carries the most of both
    assert choice.primary.layer == 2 and choice.primary.heads == (1, 2)
    rec = {(r["layer"], r["head"]): r for r in choice.provenance["heads"]}
    assert rec[(1, 3)]["refusal"] == -4.0 and rec[(1, 3)]["refusal_rank"] == 1
    assert rec[(2, 2)]["in_hallucination_top"] and not rec[(2, 2)]["in_refusal_top"]
    assert choice.provenance["rule"] == "union" and choice.provenance["k"] == 2


def test_intersection_and_errors():
    assert sites_from_heads(REFUSAL, HALLU, k=2, rule="intersection").heads == ((2, 1),)
    with pytest.raises(ValueError, match="both top-1"):
        sites_from_heads(_scores({(0, 0): 1.0}, "r"), _scores({(1, 1): 1.0}, "t"), k=1, rule="intersection")
    with pytest.raises(ValueError, match="same model"):
        sites_from_heads(REFUSAL, HeadScores(torch.ones(2, 4), "t", "attribution"), k=1)
