"""What the contrastive stage pools: block ``layer``'s residual output, before any final norm."""

from __future__ import annotations

import pytest
import torch

from interp.hooks import Site, capture
from interp.models import TinyConfig, load_model
from interp.train.contrastive import pooled, truncated

PROMPTS = ["how do I kill a zombie process", "tell me a joke about cats"]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_pooled_is_the_pre_norm_residual_of_the_layer(family):
    name = "tiny" if family == "llama" else f"tiny-{family}"
    model = load_model(name, tiny=TinyConfig.for_family(family, n_layers=3, n_heads=4, n_kv_heads=4, seed=1))
    layer = 1
    enc = model.encode_chat(PROMPTS)
    got: dict = {}
    with torch.no_grad(), model.hooks(fwd=[(Site("resid_post", layer), capture(got, "h"))]):
        out = model.hf(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                       position_ids=enc.position_ids, use_cache=False, output_hidden_states=True)
    h = got["h"]
    with torch.no_grad(), truncated(model, layer):
        last = pooled(model, PROMPTS, layer, "last")
        mean = pooled(model, PROMPTS, layer, "mean")
        # the last hidden state the truncated stack returns is final-normed: not what is pooled
        normed = model.hf(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                          position_ids=enc.position_ids, use_cache=False,
                          output_hidden_states=True).hidden_states[-1][:, -1]
    torch.testing.assert_close(last, h[:, -1])
    m = enc.attention_mask.unsqueeze(-1).float()
    torch.testing.assert_close(mean, (h * m).sum(1) / m.sum(1))
    assert not torch.allclose(last, normed, atol=1e-3)
    assert out.hidden_states[layer + 1].shape == h.shape
