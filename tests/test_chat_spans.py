"""The user's tokens in a chat-formatted, left-padded batch, and the contrastive stage's ``user`` pooling."""

from __future__ import annotations

import pytest
import torch

from interp.errors import InterpError
from interp.hooks import Site, capture
from interp.models import TinyConfig, load_model
from interp.models.chat_spans import template_around, user_token_mask
from interp.train.contrastive import ContrastiveConfig, pooled, truncated

PROMPTS = ["hi", "how do I kill a zombie process on Linux?", " leading space\nand a newline\n", "caf\u00e9 \u2603 ok"]


@pytest.fixture(scope="module")
def model():
    return load_model("tiny", tiny=TinyConfig(n_layers=3, seed=2), device="cpu")


def test_mask_covers_exactly_the_user_text(model):
    enc = model.encode_chat(PROMPTS)
    mask = user_token_mask(model, PROMPTS)
    assert mask.shape == enc.input_ids.shape and mask.dtype == torch.bool
    assert not (mask & ~enc.attention_mask.bool()).any()  # never a padding position
    lengths = enc.attention_mask.sum(-1)
    assert len(set(lengths.tolist())) == len(PROMPTS)  # different lengths: every row but one is padded
    for row, prompt in enumerate(PROMPTS):
        ids = enc.input_ids[row][mask[row]].tolist()
        assert model.tokenizer.decode(ids) == prompt
        assert ids == model.tokenizer.encode(prompt, add_special_tokens=False)
        # the user span is contiguous and the template suffix (im_end ... assistant\n) follows it
        pos = mask[row].nonzero().flatten()
        assert (pos.diff() == 1).all()


def test_mask_leaves_out_the_default_and_a_given_system_prompt(model):
    prefix, _ = template_around(model)
    assert "You are a helpful AI assistant." in prefix
    for system in (None, "You are a pirate."):
        enc = model.encode_chat(["tell me a joke"], system=system)
        mask = user_token_mask(model, ["tell me a joke"], system=system)
        assert model.tokenizer.decode(enc.input_ids[0][mask[0]].tolist()) == "tell me a joke"


def test_mask_fails_loudly_when_the_template_rewrites_the_prompt(model, monkeypatch):
    chat = model.chat
    monkeypatch.setattr(model, "chat", lambda p, response=None, system=None: chat(p.strip(), response, system))
    with pytest.raises(InterpError, match="verbatim"):
        user_token_mask(model, ["  padded  "])
    with pytest.raises(TypeError):
        user_token_mask(model, "one string")


def test_user_pooling_is_the_mean_of_resid_post_over_the_user_tokens(model):
    layer = 1
    enc = model.encode_chat(PROMPTS)
    got: dict = {}
    with torch.no_grad(), model.hooks(fwd=[(Site("resid_post", layer), capture(got, "h"))]):
        model.hf(input_ids=enc.input_ids, attention_mask=enc.attention_mask, position_ids=enc.position_ids,
                 use_cache=False)
    h = got["h"]
    mask = user_token_mask(model, PROMPTS)
    with torch.no_grad(), truncated(model, layer):
        user = pooled(model, PROMPTS, layer, "user")
        mean = pooled(model, PROMPTS, layer, "mean")
    want = torch.stack([h[i][mask[i]].mean(0) for i in range(len(PROMPTS))])
    torch.testing.assert_close(user, want)
    assert not torch.allclose(user, mean, atol=1e-3)  # the template tokens are not averaged in


def test_user_pooling_is_the_default_and_bad_pooling_is_rejected():
    assert ContrastiveConfig().pooling == "user"
    for p in ("user", "mean", "last"):
        assert ContrastiveConfig(pooling=p).pooling == p
    # the Literal is checked by the test run's type checker (TypeError), else by __post_init__ (ValueError)
    with pytest.raises((TypeError, ValueError), match="pooling"):
        ContrastiveConfig(pooling="max")
