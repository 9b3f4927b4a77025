"""KV-cached, batched, left-padded generation equals an uncached greedy argmax loop, token for token.

The reference loop runs one full forward pass per step (no cache) on each prompt alone, so it shares
nothing with ``hf.generate``'s cache, padding or mask handling. A deliberately broken variant (a hook
that only corrupts cached decode steps) shows the comparison and the library guard both bite.
"""

import pytest
import torch
from test_evaluate_generate import lively_tiny

from interp.errors import GenerationMismatchError
from interp.evaluate.generate import generate_token_ids, stop_token_ids
from interp.evaluate.verify import greedy_violations, installed_versions
from interp.hooks import Site, add_vector

PROMPTS = ["hi", "What is the capital of France?", "a much longer prompt about many things that go on", "xyz"]
STEPS = 12


@pytest.fixture(scope="module")
def model():
    return lively_tiny()


@torch.no_grad()
def uncached_greedy(model, prompt: str, steps: int) -> list[int]:
    """Greedy decoding by full forward passes of one unpadded sequence, stopping at a stop token."""
    stops = stop_token_ids(model.tokenizer)
    ids = model.tokenizer(model.chat(prompt), add_special_tokens=False, return_tensors="pt")["input_ids"]
    out: list[int] = []
    for _ in range(steps):
        logits = model.hf(input_ids=ids, use_cache=False).logits[0, -1]
        nxt = int(logits.argmax())
        if nxt in stops:
            break
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return out


def corrupt_cached_steps(act, *, hook):
    """Perturb keys only when one new position is processed: harmless uncached, wrong with a KV cache."""
    if act.shape[1] == 1:
        return act + 3.0 * torch.randn_like(act, generator=None)
    return act


def test_cached_batched_generation_equals_uncached_loop(model):
    reference = [uncached_greedy(model, p, STEPS) for p in PROMPTS]
    assert len({tuple(r) for r in reference}) == len(PROMPTS)  # distinct outputs: order is checked too
    assert all(len(r) >= 3 for r in reference)  # enough steps actually run through the cache
    cached = generate_token_ids(model, PROMPTS, max_new_tokens=STEPS, batch_size=4, progress=False, verify="off")
    assert cached == reference


def test_equivalence_holds_with_a_hook_attached(model):
    v = torch.randn(model.spec.d_model, generator=torch.Generator().manual_seed(3))
    with model.hooks(fwd=[(Site("resid_pre", 1), add_vector(v, 4.0))]):
        reference = [uncached_greedy(model, p, STEPS) for p in PROMPTS]
        cached = generate_token_ids(model, PROMPTS, max_new_tokens=STEPS, batch_size=3, progress=False,
                                    verify="every")
    plain = [uncached_greedy(model, p, STEPS) for p in PROMPTS]
    assert reference != plain  # the hook changes the outputs, so it is really in the path
    assert cached == reference


def test_a_broken_cache_path_is_caught_by_the_comparison_and_by_the_guard(model):
    torch.manual_seed(0)
    with model.hooks(fwd=[(Site("k", 0), corrupt_cached_steps), (Site("k", 1), corrupt_cached_steps)]):
        reference = [uncached_greedy(model, p, STEPS) for p in PROMPTS]  # full passes: hook never fires
        broken = generate_token_ids(model, PROMPTS, max_new_tokens=STEPS, batch_size=4, progress=False,
                                    verify="off")
        assert broken != reference  # the equivalence test above would fail on this path
        with pytest.raises(GenerationMismatchError, match="transformers=="):
            generate_token_ids(model, PROMPTS, max_new_tokens=STEPS, batch_size=4, progress=False)


def test_guard_accepts_correct_generation_and_flags_a_wrong_token(model):
    enc = model.encode([model.chat(p) for p in PROMPTS[:2]])
    stops = stop_token_ids(model.tokenizer)
    seq = model.hf.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask, do_sample=False,
                            max_new_tokens=6, pad_token_id=stops[0], eos_token_id=stops,
                            temperature=None, top_p=None, top_k=None)
    new = seq[:, enc.input_ids.shape[1]:].clone()
    assert greedy_violations(model, enc.input_ids, enc.attention_mask, new, stops) == []
    new[1, 2] = (new[1, 2] + 1) % model.spec.d_vocab
    bad = greedy_violations(model, enc.input_ids, enc.attention_mask, new, stops)
    assert bad and bad[0][:2] == (1, 2)


def test_installed_versions_names_the_stack():
    v = installed_versions()
    assert set(v) == {"torch", "transformers", "transformer-lens"}
    assert all(x != "not installed" for x in v.values())


def test_generate_fills_the_kv_cache(model):
    """The bridge's attention writes the KV cache that ``hf.generate`` threads through the steps.

    transformers 5.24 passes the cache to attention as ``cache=`` (was ``past_key_values=``), which
    transformer-lens 3.9's reconstructed attention does not read; ``interp.models.load`` renames it.
    Without that the cache stays empty and every decode step attends to itself alone.
    """
    enc = model.encode([model.chat(p) for p in PROMPTS[:2]])
    stops = stop_token_ids(model.tokenizer)
    out = model.hf.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask, do_sample=False,
                            max_new_tokens=4, min_new_tokens=4, pad_token_id=stops[0],
                            temperature=None, top_p=None, top_k=None, return_dict_in_generate=True)
    cache = out.get("cache", out.get("past_key_values"))  # renamed in transformers 5.24
    assert cache is not None
    assert cache.get_seq_length() == out.sequences.shape[1] - 1  # every position but the last token
