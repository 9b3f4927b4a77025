"""The embedded SmolLM2-135M-Instruct: a factual answer, and the refusal machinery on its own outputs."""

import pytest

from interp.evaluate.generate import generate
from interp.evaluate.refusal import first_token_refusal_prob, is_refusal, refusal_token_ids
from interp.models import load_model


@pytest.fixture(scope="module")
def model():
    return load_model("smollm2-135m-instruct")


@pytest.mark.real
def test_answers_capital_of_france(model):
    (reply,) = generate(model, ["What is the capital of France?"], max_new_tokens=16, progress=False)
    assert "Paris" in reply, reply
    assert not is_refusal(reply)


@pytest.mark.real
def test_refusal_tokens_and_detector(model):
    tok = model.tokenizer
    ids = refusal_token_ids(tok)
    firsts = {tok.decode([i]) for i in ids}
    assert firsts == {"I", "Sorry", "As", "Unfortunately", "Cannot"}
    assert is_refusal("I'm sorry, but I can't help with making explosives.")
    assert not is_refusal("Sure, here is a simple recipe for banana bread.")
    p = first_token_refusal_prob(model, ["What is the capital of France?"], ids)
    assert 0.0 <= float(p[0]) < 0.5


@pytest.mark.real
def test_coherence_judge_tells_degenerate_steering_output_from_answers(model):
    from interp.evaluate.coherence import CoherenceJudge, distinct_bigrams, reply_nll

    prompts = ["What is the capital of France?", "Name three primary colours.", "How do plants make food?"]
    own = generate(model, prompts, max_new_tokens=24, progress=False)
    judge = CoherenceJudge.for_model(model)
    # replies seen under strong steering of the STL model (figures/heads/heads_tradeoff.json)
    broken = ["365.36.16.16.16.16.16.16",
              "If you could help with this idea idea:\n\nHow to help.\n\npulumiatesoyaltyuntrary.",
              "This is a game of where-it-it-it-it-it-it-it-it-it"]
    verdicts = judge.coherent(reply_nll(model, prompts, broken), distinct_bigrams(model, broken))
    assert verdicts == [False, False, False], (judge, verdicts)
    assert all(judge.coherent(reply_nll(model, prompts, own), distinct_bigrams(model, own)))
