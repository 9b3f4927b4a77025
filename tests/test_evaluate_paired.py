"""Paired comparisons: hand-checked numbers, the tests' known answers, and matching of evaluations."""

import numpy as np
import pytest
from scipy import stats

from interp.evaluate.compare import compare
from interp.evaluate.paired import paired_rates, paired_scores


def test_mcnemar_is_the_exact_binomial_on_discordant_pairs():
    # 20 prompts: 12 both refuse, 1 only a refuses, 6 only b refuses, 1 neither.
    a = [1] * 12 + [1] * 1 + [0] * 6 + [0]
    b = [1] * 12 + [0] * 1 + [1] * 6 + [0]
    c = paired_rates(a, b, "r")
    assert (c.a_only, c.b_only, c.n) == (1, 6, 20)
    assert c.mean_a == pytest.approx(13 / 20) and c.mean_b == pytest.approx(18 / 20)
    assert c.diff == pytest.approx(0.25)
    assert c.p_value == pytest.approx(2 * sum(stats.binom.pmf(k, 7, 0.5) for k in (0, 1)))  # 0.125
    assert c.low < c.diff < c.high


def test_newcombe_interval_covers_the_true_difference_at_its_nominal_rate():
    # Correlated pairs (the usual case: two checkpoints of one model), true difference 0.1, n = 60.
    rng = np.random.default_rng(0)
    probs = {(1, 1): 0.5, (0, 1): 0.15, (1, 0): 0.05, (0, 0): 0.3}  # (a, b) cells
    cells, p = list(probs), list(probs.values())
    hits, widths = 0, []
    for _ in range(1000):
        draw = rng.choice(len(cells), size=60, p=p)
        a = [cells[i][0] for i in draw]
        b = [cells[i][1] for i in draw]
        c = paired_rates(a, b)
        hits += c.low <= 0.1 <= c.high
        widths.append(c.high - c.low)
    assert 0.93 <= hits / 1000 <= 0.98
    # Pairing pays: narrower than the unpaired Wald interval of two independent rates (~ +-0.17 here).
    assert np.mean(widths) < 2 * 1.96 * np.sqrt(2 * 0.6 * 0.4 / 60)


def test_identical_models_show_no_difference_and_power_grows_with_n():
    same = paired_rates([1, 0, 1, 1], [1, 0, 1, 1])
    assert same.diff == 0 and same.p_value == 1.0 and same.low <= 0 <= same.high
    small = paired_rates([0] * 10 + [1] * 10, [1] * 20)
    large = paired_rates([0] * 100 + [1] * 100, [1] * 200)
    assert small.diff == large.diff == 0.5
    assert large.high - large.low < small.high - small.low and large.p_value < small.p_value


def test_paired_scores_agree_with_scipy_and_reject_bad_input():
    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    b = a + 0.3 + 0.1 * rng.normal(size=50)
    c = paired_scores(a, b, "s")
    assert c.diff == pytest.approx(float((b - a).mean()))
    assert c.p_value == pytest.approx(float(stats.ttest_rel(b, a).pvalue))
    assert c.low < 0.3 < c.high and c.wilcoxon_p < 1e-6
    with pytest.raises(ValueError, match="equal"):
        paired_scores([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="non-finite"):
        paired_scores([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="no paired"):
        paired_rates([], [])


def _result(outcomes, scores, source="advbench"):
    recs = [{"label": "harmful", "source": source, "prompt": f"p{i}", "outcome": o, "refusal_score": s}
            for i, (o, s) in enumerate(zip(outcomes, scores, strict=True))]
    return {"records": recs, "mc_records": []}


def test_compare_matches_prompts_and_reports_each_outcome():
    a = _result(["compliance"] * 8 + ["refusal"] * 2, [-2.0] * 10)
    b = _result(["refusal"] * 9 + ["degenerate"], [1.0] * 10)
    b["records"].append({"label": "harmful", "source": "advbench", "prompt": "only-in-b",
                         "outcome": "refusal", "refusal_score": 3.0})
    rows = {c.metric: c for c in compare(a, b)}
    assert rows["harmful/refusal_rate"].n == 10  # the unmatched prompt is left out
    assert rows["harmful/refusal_rate"].diff == pytest.approx(0.7)
    assert rows["harmful/degenerate_rate"].diff == pytest.approx(0.1)
    assert rows["harmful/compliance_rate"].diff == pytest.approx(-0.8)
    assert rows["harmful/refusal_score"].diff == pytest.approx(3.0)
    assert "harmful/refusal_rate[source=advbench]" in rows
    with pytest.raises(ValueError, match="share no prompts"):
        compare(a, _result(["refusal"], [0.0], source="other"))


def test_redacted_evaluations_keep_no_harmful_text_and_still_pair():
    from interp.evaluate.redact import redact

    a = _result(["compliance"] * 4, [-1.0] * 4)
    b = _result(["refusal"] * 4, [2.0] * 4)
    for r in a["records"]:
        r["response"] = "a harmful reply"
    ra, rb = redact(a), redact(b)
    assert all(r["response"] is None and r["prompt"].startswith("sha1:") for r in ra["records"])
    assert a["records"][0]["response"] == "a harmful reply"  # the original is untouched
    assert {c.metric: c.diff for c in compare(ra, rb)} == {c.metric: c.diff for c in compare(a, b)}
