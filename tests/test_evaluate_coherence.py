"""Reply fluency and repetition on a tiny model: padding invariance, ordering, the judge's thresholds."""

from __future__ import annotations

import math

import pytest
import torch

from interp.evaluate.coherence import CoherenceJudge, distinct_bigrams, reply_nll

PROMPTS = ["hello there", "what is two plus two, please tell me", "a"]


def test_reply_nll_is_batch_invariant_and_scores_only_the_reply(tiny_model):
    replies = ["general kenobi", "four", "b c d e f g h"]
    batched = reply_nll(tiny_model, PROMPTS, replies, batch_size=3)
    single = torch.cat([reply_nll(tiny_model, [p], [r], batch_size=1) for p, r in zip(PROMPTS, replies, strict=True)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)
    # the same reply after a different prompt scores differently; the prompt itself is never scored
    other = reply_nll(tiny_model, ["zzzz zzzz zzzz zzzz"], replies[:1])
    assert float(other[0]) != pytest.approx(float(batched[0]), abs=1e-6)
    assert math.isnan(float(reply_nll(tiny_model, ["hi"], [""])[0]))
    with pytest.raises(ValueError, match="2 prompts but 1 replies"):
        reply_nll(tiny_model, PROMPTS[:2], replies[:1])


def test_distinct_bigrams_flags_loops(tiny_model):
    d = distinct_bigrams(tiny_model, ["abababababababab", "the quick brown fox jumps", "ok"])
    assert d[0] < 0.2 and d[1] == 1.0 and d[2] == 1.0


def test_judge_calibration_and_verdicts():
    judge = CoherenceJudge.calibrate(torch.tensor([1.0, 2.0, 3.0, float("nan")]), quantile=1.0, slack=0.5)
    assert judge.max_nll == pytest.approx(3.5)
    assert CoherenceJudge.calibrate(torch.tensor([3.0, 2.0, 4.0])).max_nll == pytest.approx(2.0)  # the minimum
    nll = torch.tensor([3.0, 4.0, 1.0, float("nan")], dtype=torch.float64)
    distinct = torch.tensor([0.9, 0.9, 0.1, 1.0], dtype=torch.float64)
    assert judge.coherent(nll, distinct) == [True, False, False, False]
    with pytest.raises(ValueError, match="no scorable"):
        CoherenceJudge.calibrate(torch.tensor([float("nan")]))


def test_judge_for_model_uses_the_most_predictable_reference_text(tiny_model):
    from interp.evaluate.capability import text_losses

    texts = ["aaaa aaaa aaaa aaaa aaaa", "the cat sat on the mat and then slept"]
    judge = CoherenceJudge.for_model(tiny_model, texts)
    assert judge.max_nll == pytest.approx(float(text_losses(tiny_model, texts).min()))
