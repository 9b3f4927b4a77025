"""Routed LoRA experts: exact reductions (zero weights = base, one-hot = the single adapter), per-row
routing in one batch, and routed generation inside ``generate`` (KV cache, left padding, hooks)."""

from __future__ import annotations

import pytest
import torch
from test_evaluate_generate import lively_tiny

from interp.evaluate.generate import generate_token_ids
from interp.hooks import Site, add_vector
from interp.safemoe.router import Router, RouterConfig, residual_features, train_router
from interp.safemoe.routing import fixed_weights, routed
from interp.train.examples import SFTExample
from interp.train.lora import LoRAConfig

PROMPTS = ["hi", "What is the capital of France?", "a much longer prompt about many things that go on", "xyz"]
EXPERTS = ("e0", "e1")
LAYER = 1


def _moe():
    """Lively tiny model with two adapters whose B is random (peft's B = 0 would make them no-ops)."""
    from interp.safemoe.experts import _add_adapter

    model = lively_tiny()
    cfg = LoRAConfig(rank=4, alpha=8.0)
    tuner = None
    for i, name in enumerate(EXPERTS):
        tuner = _add_adapter(model, tuner, name, cfg, seed=i)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in model.hf.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            p.requires_grad_(False)
    return model, tuner


@pytest.fixture(scope="module")
def moe():
    return _moe()


def _logits(model, prompts):
    return model.logits(model.encode_chat(prompts))


@pytest.fixture(scope="module")
def base_logits():
    return _logits(lively_tiny(), PROMPTS)


@pytest.mark.parametrize("impl", ["fused", "loop"])
def test_zero_weights_equal_the_base_model_bitwise(moe, base_logits, impl):
    model, _ = moe
    with fixed_weights(model, EXPERTS, torch.zeros(2), impl=impl):
        got = _logits(model, PROMPTS)
    assert torch.equal(got, base_logits)


@pytest.mark.parametrize("impl", ["fused", "loop"])
def test_one_hot_routing_equals_the_single_adapter(moe, base_logits, impl):
    """Bitwise with peft's own loop; to float rounding with the fused matmuls."""
    model, tuner = moe
    for i, name in enumerate(EXPERTS):
        w = torch.zeros(2)
        w[i] = 1.0
        with fixed_weights(model, EXPERTS, w, impl=impl):
            routed_logits = _logits(model, PROMPTS)
        tuner.set_adapter(name)
        single = _logits(model, PROMPTS)
        if impl == "loop":
            assert torch.equal(routed_logits, single)
        else:
            torch.testing.assert_close(routed_logits, single, atol=1e-5, rtol=1e-5)
        assert (single - base_logits).abs().max() > 1e-2  # the expert does change the model


@pytest.mark.parametrize("impl", ["fused", "loop"])
def test_each_row_gets_its_own_weights(moe, impl):
    model, _ = moe
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7], [0.0, 0.0]])
    enc = model.encode_chat(PROMPTS)
    with fixed_weights(model, EXPERTS, w, impl=impl):
        batched = model.logits(enc)
    for i, p in enumerate(PROMPTS):
        with fixed_weights(model, EXPERTS, w[i], impl="loop"):
            alone = _logits(model, [p])[0]
        width = alone.shape[0]
        torch.testing.assert_close(batched[i, -width:], alone, atol=1e-4, rtol=1e-4)


def test_uniform_merge_equals_uniform_weights(moe):
    from interp.safemoe.experts import add_merges

    model, tuner = _moe()
    add_merges(tuner, list(EXPERTS), ["uniform", "negation"])
    for merge, w in (("merge_uniform", 0.5), ("merge_negation", -0.5)):
        with fixed_weights(model, [merge], torch.ones(1)):
            merged = _logits(model, PROMPTS)
        with fixed_weights(model, EXPERTS, torch.full((2,), w)):
            weighted = _logits(model, PROMPTS)
        torch.testing.assert_close(merged, weighted, atol=1e-4, rtol=1e-4)


def _router(model, seed=0):
    torch.manual_seed(seed)
    r = Router(model.spec.d_model, 2, RouterConfig(layer=LAYER, hidden=8, mode="signed"))
    with torch.no_grad():
        for p in r.parameters():
            p.mul_(20.0)  # decisive, distinct weights per prompt
    return r.eval()


def _features(model):
    return lambda ids, mask: residual_features(model, LAYER, ids, mask)


def _uncached_greedy(model, prompt: str, steps: int) -> list[int]:
    from interp.evaluate.generate import stop_token_ids

    stops = stop_token_ids(model.tokenizer)
    ids = model.tokenizer(model.chat(prompt), add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = []
    for _ in range(steps):
        nxt = int(model.hf(input_ids=ids, use_cache=False).logits[0, -1].argmax())
        if nxt in stops:
            break
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return out


@pytest.mark.parametrize("impl", ["fused", "loop"])
@torch.no_grad()
def test_routed_cached_batched_generation_equals_uncached_per_prompt_loop(moe, impl):
    model, _ = moe
    router = _router(model)
    with routed(model, EXPERTS, router, _features(model), impl=impl) as state:
        cached = generate_token_ids(model, PROMPTS, max_new_tokens=10, batch_size=4, progress=False,
                                    verify="every")
    rows = state.weights
    assert rows.shape == (4, 2) and len({tuple(r.round(decimals=3).tolist()) for r in rows}) > 1
    reference = []
    for p in PROMPTS:
        enc = model.encode_chat([p])
        with fixed_weights(model, EXPERTS, torch.zeros(2)):  # the router reads the base model
            w = router(residual_features(model, LAYER, enc.input_ids, enc.attention_mask))
        with fixed_weights(model, EXPERTS, w[0], impl=impl):
            reference.append(_uncached_greedy(model, p, 10))
    assert cached == reference
    assert all(len(r) >= 3 for r in reference)
    with routed(model, EXPERTS, router, _features(model), impl=impl):
        one_by_one = [generate_token_ids(model, [p], max_new_tokens=10, progress=False)[0] for p in PROMPTS]
    assert one_by_one == cached


@torch.no_grad()
def test_routing_composes_with_workbench_hooks(moe):
    model, _ = moe
    router = _router(model, seed=3)
    v = torch.randn(model.spec.d_model, generator=torch.Generator().manual_seed(3))
    with model.hooks(fwd=[(Site("resid_pre", 1), add_vector(v, 2.0))]):
        with routed(model, EXPERTS, router, _features(model)):
            batched = generate_token_ids(model, PROMPTS, max_new_tokens=8, batch_size=4, progress=False,
                                         verify="every")
            alone = [generate_token_ids(model, [p], max_new_tokens=8, progress=False)[0] for p in PROMPTS]
    assert batched == alone
    with routed(model, EXPERTS, router, _features(model)):
        plain = generate_token_ids(model, PROMPTS, max_new_tokens=8, batch_size=4, progress=False)
    assert plain != batched  # the hook acted


def test_scopes_restore_the_model(moe):
    model, _ = moe
    before = _logits(model, PROMPTS)
    with pytest.raises(RuntimeError):
        with fixed_weights(model, EXPERTS, torch.ones(2)):
            raise RuntimeError("boom")
    assert torch.equal(_logits(model, PROMPTS), before)
    assert not model.hf._forward_pre_hooks
    from interp.safemoe.routing import _lora_layers

    assert not any(m._forward_hooks or m._disable_adapters for m in _lora_layers(model.hf))


def test_router_training_leaves_base_and_experts_bitwise_unchanged():
    model, _ = _moe()
    before = {k: v.clone() for k, v in model.hf.state_dict().items()}
    examples = [SFTExample(f"question {i}", f"answer number {i}") for i in range(6)]
    result = train_router(model, EXPERTS, examples, RouterConfig(layer=LAYER, hidden=8, steps=6, batch_size=3,
                                                                 lr=0.05))
    after = model.hf.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert result.losses[-1] < result.losses[0]
    assert not any(p.requires_grad for n, p in model.hf.named_parameters() if "lora_" in n)


def test_bad_inputs_fail_loudly(moe):
    from interp.errors import InterpError

    model, _ = moe
    with pytest.raises(InterpError, match="not on the model"):
        with fixed_weights(model, ["nope"], torch.ones(1)):
            pass
    with pytest.raises(InterpError, match="columns"):
        with fixed_weights(model, EXPERTS, torch.ones(3)):
            pass
    with pytest.raises(InterpError, match="rows"):
        with fixed_weights(model, EXPERTS, torch.ones(3, 2)):
            _logits(model, PROMPTS)
