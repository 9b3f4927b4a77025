"""Multiple-choice truthfulness: batched scoring against a naive per-answer loop."""

import pytest
import torch

from interp.data.prompts import Prompt, PromptSet
from interp.errors import EmptyPromptClassError, NonFiniteError
from interp.evaluate.truthfulness import MCRecord, answer_logprobs, mc_scores
from interp.hooks import Site
from interp.models import load_model

ITEMS = PromptSet("mc", (
    Prompt("What is the capital of Australia?", "factual", correct=("Canberra",),
           incorrect=("Sydney", "Melbourne")),
    Prompt("How many legs does a spider have?", "factual", correct=("Eight", "8 legs"), incorrect=("Six",)),
    Prompt("Who wrote Hamlet?", "factual", correct=("William Shakespeare",),
           incorrect=("Marlowe", "Ben Jonson")),
))


@pytest.fixture(scope="module")
def model():
    return load_model("tiny")


def naive_logprob(model, question, answer):
    """One unpadded forward per answer; sum log p of the answer tokens."""
    tok = model.tokenizer
    prefix = tok.encode(model.chat(question), add_special_tokens=False)
    ans = tok.encode(answer, add_special_tokens=False)
    ids = torch.tensor([prefix + ans], device=model.device)
    with torch.no_grad():
        logits = model.hf(input_ids=ids).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    return sum(float(lp[len(prefix) + j - 1, t]) for j, t in enumerate(ans)), len(ans)


def test_batched_matches_naive(model):
    pairs = [(p.text, a) for p in ITEMS for a in (*p.correct, *p.incorrect)]
    batched = answer_logprobs(model, pairs, batch_size=4)
    for (q, a), (lp, n) in zip(pairs, batched, strict=True):
        ref_lp, ref_n = naive_logprob(model, q, a)
        assert n == ref_n
        assert abs(lp - ref_lp) < 1e-4, (q, a, lp, ref_lp)


def test_mc_records(model):
    recs = mc_scores(model, ITEMS, batch_size=3)
    assert [r.prompt for r in recs] == ITEMS.texts
    for r, p in zip(recs, ITEMS, strict=True):
        assert len(r.correct_logprob) == len(p.correct) and len(r.incorrect_logprob) == len(p.incorrect)
        assert r.mc1 == (max(r.correct_logprob) > max(r.incorrect_logprob))
        assert 0.0 < r.mc2 < 1.0
        assert r.correct_logprob_mean[0] == pytest.approx(
            r.correct_logprob[0] / len(model.tokenizer.encode(p.correct[0], add_special_tokens=False)))
        assert set(r.to_dict()) >= {"mc1", "mc2", "mc1_norm", "mc2_norm"}


def test_mc_math_on_hand_set_scores():
    r = MCRecord("q", "s", None, ("a", "b"), ("c",), (-1.0, -3.0), (-2.0,), (-0.5, -1.0), (-0.4,))
    assert r.mc1 and not r.mc1_norm
    e = torch.exp(torch.tensor([-1.0, -3.0, -2.0], dtype=torch.float64))
    assert r.mc2 == pytest.approx(float(e[:2].sum() / e.sum()))


def test_skips_items_without_answers_and_fails_when_none(model):
    mixed = PromptSet("mixed", (*ITEMS.prompts[:1], Prompt("Why is the sky blue?", "factual")))
    assert len(mc_scores(model, mixed)) == 1
    with pytest.raises(EmptyPromptClassError):
        mc_scores(model, PromptSet("none", (Prompt("Why is the sky blue?", "factual"),)))


def test_non_finite_logits_raise_instead_of_scoring(model):
    def poison(act, *, hook):
        return torch.full_like(act, float("inf"))

    with model.hooks(fwd=[(Site("mlp_out", 0), poison)]), pytest.raises(NonFiniteError, match="Canberra"):
        answer_logprobs(model, [("What is the capital of Australia?", "Canberra")])
