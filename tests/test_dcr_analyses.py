"""The DCR analyses' pure parts: the table's variants, seeds and references; the diagnostic's summary."""

from __future__ import annotations

import pytest
from helpers import load_analysis

from interp.evaluate.metrics import Estimate
from interp.evaluate.paired import PairedComparison

table = load_analysis("align_table")
diag = load_analysis("dcr_diagnostic")


def test_variants_and_overrides_build_the_documented_configs():
    frozen = table.align_config("dcr-frozen", seed=2, overrides=["n_general=40", "contrastive.layer=6",
                                                                 "sft.lr=4e-5", "protect_lr_scale=0.5"])
    assert (frozen.recipe, frozen.protect, frozen.n_general, frozen.protect_lr_scale) == ("dcr", "freeze", 40, 0.5)
    assert (frozen.contrastive.layer, frozen.contrastive.seed, frozen.sft.lr, frozen.sft.seed, frozen.seed) == (
        6, 2, 4e-5, 2, 2)
    assert table.align_config("dcr-strong").contrastive.lr == 2e-5
    assert table.align_config("stl").protect == "none"
    with pytest.raises(SystemExit, match="unknown field"):
        table.align_config("stl", overrides=["n_generl=4"])
    with pytest.raises(SystemExit, match="FIELD=VALUE"):
        table.align_config("stl", overrides=["optimizer.lr=4"])


def test_seeded_names_and_same_seed_references():
    assert table.seeded("dcr", 0) == "dcr" and table.seeded("dcr-frozen", 2) == "dcr-frozen-s2"
    assert table.unseeded("dcr-frozen-s2") == ("dcr-frozen", 2) and table.unseeded("stl-aug") == ("stl-aug", 0)
    evaluated = {"base": 0, "stl": 0, "stl-s1": 0, "dcr": 0, "dcr-s1": 0, "dcr-s2": 0}
    assert table.reference_for("dcr-s1", "stl", evaluated) == "stl-s1"
    assert table.reference_for("dcr-s2", "stl", evaluated) == "stl"  # no stl-s2: the plain one
    assert table.reference_for("dcr-s1", "base", evaluated) == "base"
    assert table.reference_for("dcr", "stl-aug", evaluated) is None


def _est(mean: float) -> Estimate:
    return Estimate(mean=mean, low=mean - 0.1, high=mean + 0.1, n=100)


def _cmp(diff: float) -> PairedComparison:
    return PairedComparison(metric="seemingly_harmful/compliance_rate", mean_a=0.5, mean_b=0.5 + diff, diff=diff,
                            low=diff - 0.05, high=diff + 0.05, p_value=0.01, n=100, test="mcnemar")


def test_seed_summary_is_mean_and_sd_over_seeds():
    key = "seemingly_harmful/compliance_rate"
    results = {"stl": {key: _est(0.4)}, "stl-s1": {key: _est(0.5)},
               "dcr": {key: _est(0.6), f"{key}[source=xstest]": _est(0.9)}, "dcr-s1": {key: _est(0.8)}}
    comparisons = {"dcr": [_cmp(0.2)], "dcr-s1": [_cmp(0.3)]}
    spread = table.seed_summary(results, comparisons)
    row = spread["dcr"]["metrics"][key]
    assert row["mean"] == pytest.approx(0.7) and row["sd"] == pytest.approx(0.1414, abs=1e-3)
    assert row["diff_mean"] == pytest.approx(0.25) and row["n_seeds"] == 2
    assert list(spread["dcr"]["metrics"]) == [key]  # per-source rows stay in the main table
    assert spread["stl"]["metrics"][key]["diff_mean"] is None
    assert "0.700 ± 0.141" in table.seed_markdown(spread, "stl")


def test_diagnostic_summary_flags_only_separation_within_the_lm_budget():
    def hist(auc_end, gap_end, lm_end):
        out = []
        for step, (auc, gap, lm) in ((0, (0.6, 0.01, 3.0)), (10, (auc_end, gap_end, lm_end))):
            vals = {"probe_auc": auc, "cos_gap": gap, "lm_loss": lm, "cross_cos": 0.9, "refusal_prob_a": 0.1,
                    "refusal_prob_b": 0.5}
            out += [{"step": step, "metric": f"dcr/{k}", "label": "layer 1", "value": v} for k, v in vals.items()]
        return {"history": out, "losses": [5.0, 4.0]}

    records = {"good": hist(0.8, 0.05, 3.05), "breaks-lm": hist(0.9, 0.1, 3.5), "flat": hist(0.61, 0.01, 3.0)}
    rows = {r["config"]: r for r in diag.summary_rows(records, max_lm_increase=0.1, min_auc_rise=0.05)}
    assert rows["good"]["separates"] and not rows["breaks-lm"]["separates"] and not rows["flat"]["separates"]
    assert rows["good"]["auc_rise"] == pytest.approx(0.2) and rows["good"]["lm_increase"] == pytest.approx(0.05)
    assert "| good |" in diag.markdown(list(rows.values()))


def test_auc_rise_needed_is_capped_by_the_remaining_error():
    # a probe at 0.6 has room for the full rise; one at 0.98 needs only half its remaining 0.02
    assert diag.auc_rise_needed(0.6, 0.05) == pytest.approx(0.05)
    assert diag.auc_rise_needed(0.98, 0.05) == pytest.approx(0.01)
    assert diag.auc_rise_needed(1.0, 0.05) == pytest.approx(0.0)
