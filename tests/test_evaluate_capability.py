"""First-token KL to a stored reference, and reference-text loss."""

import pytest
import torch

from interp.errors import DataFormatError, InterpError, NonFiniteError
from interp.evaluate.capability import (
    ReferenceStats,
    cross_entropy,
    first_token_kl,
    reference_stats,
    text_losses,
)
from interp.evaluate.first_token import first_token_logits
from interp.evaluate.reference_text import REFERENCE_PARAGRAPHS
from interp.hooks import Site
from interp.models import load_model

PROMPTS = ["Write a haiku about autumn.", "How do I boil an egg?", "Name three colours."]


@pytest.fixture()
def model():
    return load_model("tiny")


def test_kl_zero_against_itself_and_positive_after_perturbation(model, tmp_path):
    ref = reference_stats(model, PROMPTS, batch_size=2, with_ce=False)
    kl = first_token_kl(model, ref, batch_size=3)
    assert kl.shape == (3,) and float(kl.abs().max()) < 1e-5
    # A saved and reloaded reference gives the same answer.
    ref2 = ReferenceStats.load(ref.save(tmp_path / "ref"))
    assert ref2.prompts == ref.prompts and torch.equal(ref2.logprobs, ref.logprobs)
    with torch.no_grad():
        model.hf.model.layers[0].mlp.down_proj.weight.mul_(-20.0)
    kl_after = first_token_kl(model, ref2)
    assert (kl_after > 1e-3).all()
    # Against a naive KL(p || q) on the perturbed model's logits.
    q = torch.log_softmax(model.next_token_logits(model.encode_chat(PROMPTS)).double(), -1)
    p = ref.logprobs.double()
    naive = (p.exp() * (p - q)).sum(-1)
    torch.testing.assert_close(kl_after, naive, atol=1e-5, rtol=1e-4)


def test_reference_load_rejects_other_folders(tmp_path):
    with pytest.raises(DataFormatError):
        ReferenceStats.load(tmp_path)


def test_text_loss_matches_naive(model):
    texts = ["The cat sat on the mat.", "A much longer sentence, with commas, and more words in it."]
    losses = text_losses(model, texts, batch_size=2)
    for text, loss in zip(texts, losses, strict=True):
        ids = model.tokenizer.encode(text, add_special_tokens=False)
        with torch.no_grad():
            logits = model.hf(input_ids=torch.tensor([ids], device=model.device)).logits[0]
        naive = torch.nn.functional.cross_entropy(logits[:-1].double(), torch.tensor(ids[1:]))
        assert abs(float(loss) - float(naive)) < 1e-5
    weighted = cross_entropy(model, texts)
    n = [len(model.tokenizer.encode(t, add_special_tokens=False)) - 1 for t in texts]
    assert weighted == pytest.approx(float((losses * torch.tensor(n)).sum() / sum(n)), abs=1e-6)
    # A random byte-level model is near-uniform over 259 tokens: loss close to log(259).
    assert 4.0 < weighted < 7.0


def test_reference_text_is_substantial():
    words = sum(len(p.split()) for p in REFERENCE_PARAGRAPHS)
    assert len(REFERENCE_PARAGRAPHS) >= 8 and words >= 1400


def test_non_finite_first_token_logits_raise_naming_the_prompt(model):
    def poison(act, *, hook):  # NaN in the residual stream of the second prompt only
        act = act.clone()
        act[1] = float("nan")
        return act

    with model.hooks(fwd=[(Site("resid_post", 0), poison)]), pytest.raises(NonFiniteError, match="1 of 3") as e:
        first_token_logits(model, PROMPTS, batch_size=3)
    assert isinstance(e.value, InterpError) and isinstance(e.value, FloatingPointError)
    assert PROMPTS[1] in str(e.value)  # batches run longest first: row 1 is prompt 1 here
