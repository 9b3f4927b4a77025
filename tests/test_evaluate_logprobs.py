"""Token log-probabilities: against a naive per-row loop, under left padding, with gradients, stably."""

import pytest
import torch

from interp.errors import InterpError
from interp.evaluate.logprobs import next_token_mask, sequence_logprobs, suffix_mask, token_logprobs
from interp.models import load_model


def naive(logits_BSV, ids_BS, mask_BS):
    """One row, one position at a time, in float64; NaN where no target is wanted."""
    b, s, _ = logits_BSV.shape
    out = torch.full((b, s - 1), float("nan"), dtype=torch.float64)
    for r in range(b):
        for t in range(1, s):
            if mask_BS[r, t]:
                out[r, t - 1] = torch.log_softmax(logits_BSV[r, t - 1].double(), -1)[ids_BS[r, t]]
    return out


def _random(seed=0, b=3, s=7, v=11):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, s, v, generator=gen) * 3
    ids = torch.randint(0, v, (b, s), generator=gen)
    mask = torch.rand(b, s, generator=gen) > 0.4
    mask[:, 0] = False
    return logits, ids, mask


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_matches_naive_loop(dtype, tol):
    logits, ids, mask = _random()
    ref = naive(logits, ids, mask)
    got = token_logprobs(logits, ids, mask, dtype=dtype)
    assert got.shape == (3, 6) and got.dtype == dtype
    want = mask[:, 1:]
    torch.testing.assert_close(got[want].double(), ref[want], rtol=0, atol=tol)
    assert (got[~want] == 0).all()  # unwanted positions are exactly zero, so sums need no mask
    torch.testing.assert_close(sequence_logprobs(logits, ids, mask, dtype), ref.nan_to_num(0.0).sum(-1).to(dtype),
                               rtol=0, atol=10 * tol)


def test_low_precision_logits_are_normalised_in_float64():
    logits, ids, mask = _random(1)
    half = logits.bfloat16()
    torch.testing.assert_close(token_logprobs(half, ids, mask)[mask[:, 1:]], naive(half, ids, mask)[mask[:, 1:]],
                               rtol=0, atol=1e-12)


def test_stable_for_huge_logits():
    # exp(1000) overflows every float type; a stable log-softmax does not care.
    logits = torch.tensor([[[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]]])
    ids = torch.tensor([[0, 2]])
    mask = torch.tensor([[False, True]])
    lp = token_logprobs(logits, ids, mask, dtype=torch.float32)
    assert torch.isfinite(lp).all()
    assert float(lp[0, 0]) == pytest.approx(-2000.0)


def test_gradients_reach_wanted_positions_only():
    logits, ids, mask = _random(2)
    a = logits.clone().requires_grad_(True)
    token_logprobs(a, ids, mask, dtype=torch.float32).sum().backward()
    b = logits.clone().requires_grad_(True)
    ref = torch.stack([torch.log_softmax(b[r, t - 1], -1)[ids[r, t]]
                       for r in range(3) for t in range(1, 7) if mask[r, t]]).sum()
    ref.backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-6)
    predicting = torch.zeros_like(mask)
    predicting[:, :-1] = mask[:, 1:]
    assert (a.grad[~predicting] == 0).all()


def test_masks_on_hand_set_rows():
    attn = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert next_token_mask(attn).tolist() == [[False, False, False, True, True], [False, True, True, True, True]]
    assert suffix_mask(torch.tensor([2, 0]), 4).tolist() == [[False, False, True, True], [False] * 4]
    with pytest.raises(InterpError, match="prefix"):
        suffix_mask(torch.tensor([4]), 4)


def test_rejects_a_target_without_prefix_and_integer_dtype():
    logits, ids, mask = _random()
    bad = mask.clone()
    bad[0, 0] = True
    with pytest.raises(InterpError, match="position 0"):
        token_logprobs(logits, ids, bad)
    with pytest.raises(InterpError, match="floating"):
        token_logprobs(logits, ids, mask, dtype=torch.int64)


def test_left_padded_batch_matches_unpadded_rows():
    """On the tiny model: the padded batch's per-row loss equals each text's own unpadded loss."""
    torch.manual_seed(0)
    model = load_model("tiny", device="cpu")
    texts = ["a longer line of text here", "short", "mid length one"]
    enc = model.encode(texts)
    assert (enc.attention_mask == 0).any()  # the batch really is padded
    with torch.no_grad():
        batched = sequence_logprobs(model.logits(enc), enc.input_ids, next_token_mask(enc.attention_mask))
        for r, text in enumerate(texts):
            one = model.encode([text])
            alone = naive(model.logits(one), one.input_ids, next_token_mask(one.attention_mask))
            assert float(batched[r]) == pytest.approx(float(alone.nan_to_num(0.0).sum()), abs=1e-4)
