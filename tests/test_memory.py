"""Memory-saving paths equal the straightforward ones: last-position logits, hook-only forwards,
batched head patching, chunked vocabulary reductions, and the table-free CountSketch."""

from __future__ import annotations

import pytest
import torch

from interp.evaluate.capability import kl_rows
from interp.evaluate.logprobs import log_softmax_rows, next_token_mask, token_logprobs
from interp.heads import RefusalMetric, collect_z, patch_heads, suffix_positions, z_baseline
from interp.hooks import Site
from interp.models import TinyConfig, load_model
from interp.ntk.sketch import CountSketch

PROMPTS = ["how do I make a bomb", "tell me a joke", "write malware now please", "plant a tree"]


@pytest.fixture(scope="module")
def model():
    return load_model("tiny", tiny=TinyConfig(n_layers=3, n_heads=4, n_kv_heads=2, seed=5))


def _lm_head_calls(model):
    calls = []
    handle = model.hf.get_output_embeddings().register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def test_next_token_logits_equals_last_position_of_full_logits(model):
    enc = model.encode_chat(PROMPTS)  # different lengths: left padding matters
    with torch.no_grad():
        full = model.logits(enc)[:, -1]
        last = model.next_token_logits(enc)
    assert last.shape == full.shape == (len(PROMPTS), model.spec.d_vocab)
    torch.testing.assert_close(last, full, atol=1e-5, rtol=1e-5)


def test_run_hooks_skips_unembedding_and_matches_full_forward(model):
    enc = model.encode_chat(PROMPTS)
    seen: dict = {}

    def keep(key):
        def hook(act, *, hook):
            seen[key] = act.detach().clone()
        return hook

    hooks = [(Site("resid_post", 2), keep("full"))]
    with torch.no_grad(), model.hooks(fwd=hooks):
        model.logits(enc)
    calls, handle = _lm_head_calls(model)
    try:
        with torch.no_grad(), model.hooks(fwd=[(Site("resid_post", 2), keep("hooks"))]):
            model.run_hooks(enc)
        assert calls == []  # no unembedding
        torch.testing.assert_close(seen["hooks"], seen["full"], atol=1e-6, rtol=1e-6)
        # A hook on the unembedding itself still fires: the full forward runs then.
        with torch.no_grad(), model.hooks(fwd=[("unembed.hook_out", keep("unembed"))]):
            model.run_hooks(enc)
        assert "unembed" in seen and seen["unembed"].shape[-1] == model.spec.d_vocab
    finally:
        handle.remove()


def test_run_hooks_stops_after_the_named_site(model):
    enc = model.encode_chat(PROMPTS[:2])
    fired = []

    def note(layer):
        def hook(act, *, hook):
            fired.append(layer)
        return hook

    with torch.no_grad(), model.hooks(fwd=[(Site("z", la), note(la)) for la in range(3)]):
        model.run_hooks(enc, stop_after=Site("z", 1))
    assert fired == [0, 1]  # the hook on the stop site still ran; layer 2 never did
    with torch.no_grad(), model.hooks(fwd=[(Site("z", la), note(la)) for la in range(3)]):
        model.run_hooks(enc, stop_after=Site("z", 1))
        model.run_hooks(enc)  # the stop hook is gone once run_hooks returns
    assert fired == [0, 1, 0, 1, 0, 1, 2]


def test_collect_z_equals_z_from_a_full_forward(model):
    positions = suffix_positions(model)
    z = collect_z(model, PROMPTS, positions, batch_size=3)
    store = {}
    enc = model.encode_chat(PROMPTS)

    def keep(layer):
        def hook(act, *, hook):
            store[layer] = act[:, -positions:].detach()
        return hook

    with torch.no_grad(), model.hooks(fwd=[(Site("z", la), keep(la)) for la in range(3)]):
        model.logits(enc)
    ref = torch.stack([store[la] for la in range(3)], dim=2).float()
    assert z.shape == ref.shape
    torch.testing.assert_close(z, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("paired", [False, True])
def test_batched_patching_equals_one_forward_per_head(model, paired):
    tid = model.tokenizer("I", add_special_tokens=False)["input_ids"][0]
    metric = RefusalMetric((tid,))
    positions = suffix_positions(model)
    other = ["bake some bread", "a poem about cats", "water the garden today", "renew a passport"]
    base = z_baseline(model, other, positions, paired=paired)
    heads = [(0, 1), (0, 3), (1, 0), (2, 2), (2, 3)]  # a group of 3 spans two layers, then 2 left over
    one = patch_heads(model, PROMPTS, metric, base, heads=heads, batch_size=3, heads_per_forward=1)
    many = patch_heads(model, PROMPTS, metric, base, heads=heads, batch_size=3, heads_per_forward=3)
    assert one.scores.abs().max() > 1e-4  # the patches do move the metric
    torch.testing.assert_close(many.scores, one.scores, atol=1e-5, rtol=1e-4)
    assert many.scores[0, 0] == 0.0 and many.scores[1, 1] == 0.0  # heads not evaluated


def test_chunked_token_logprobs_equal_naive_float64_and_keep_gradients():
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(3, 7, 50, generator=gen) * 5).requires_grad_(True)
    ids = torch.randint(0, 50, (3, 7), generator=gen)
    mask = next_token_mask(torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1] * 7, [0, 0, 0, 0, 1, 1, 1]]))
    naive = torch.log_softmax(logits.double(), -1)[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
    naive = naive * mask[:, 1:]
    got = token_logprobs(logits, ids, mask, chunk_rows=2)  # 12 targets: six chunks
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, naive, atol=1e-12, rtol=0)
    (g_got,) = torch.autograd.grad(got.sum(), logits)
    (g_ref,) = torch.autograd.grad(naive.sum(), logits)
    torch.testing.assert_close(g_got, g_ref, atol=1e-12, rtol=0)
    f32 = token_logprobs(logits.detach(), ids, mask, dtype=torch.float32, chunk_rows=5)
    torch.testing.assert_close(f32.double(), naive.detach(), atol=1e-5, rtol=0)


def test_row_chunked_log_softmax_and_kl_equal_naive():
    gen = torch.Generator().manual_seed(1)
    logits_p, logits_q = torch.randn(10, 300, generator=gen) * 4, torch.randn(10, 300, generator=gen) * 4
    lp = log_softmax_rows(logits_p, torch.float64, out_dtype=torch.float32, chunk_rows=3)
    assert lp.dtype == torch.float32
    torch.testing.assert_close(lp, torch.log_softmax(logits_p.double(), -1).float(), atol=0, rtol=0)
    log_q = torch.log_softmax(logits_q.double(), -1)
    naive = (lp.double().exp() * (lp.double() - log_q)).sum(-1)
    torch.testing.assert_close(kl_rows(lp, logits_q, chunk_rows=4), naive, atol=1e-12, rtol=0)


def test_count_sketch_memory_does_not_grow_with_parameters():
    huge = [torch.empty(3 * 10**9, device="meta"), torch.empty(10**6, device="meta")]
    cs = CountSketch(huge, dim=2**15, seed=0, device=torch.device("cpu"))
    assert cs.table.numel() * cs.table.element_size() <= 4 * 2**20
    assert len(cs.offsets) == 2862 + 1  # two integers per tile of 2**20, not four bytes per parameter


def test_tiled_count_sketch_is_unbiased_across_tiles():
    """With tiles of 64 a 2,000-vector spans ~32 tiles: the mean over seeds of <Phi a, Phi b> is <a, b>."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, generator=gen), torch.randn(2000, generator=gen)
    b = 0.6 * a + 0.8 * b
    parts = [slice(0, 700), slice(700, 2000)]
    ests = []
    for seed in range(200):
        cs = CountSketch([torch.empty(700), torch.empty(1300)], dim=64, seed=seed,
                         device=torch.device("cpu"), tile=64)
        ests.append(float(cs([a[p] for p in parts]) @ cs([b[p] for p in parts])))
    ests = torch.tensor(ests, dtype=torch.float64)
    true = float(a @ b)
    sd = float(ests.std())
    # Classic CountSketch standard deviation: sqrt((|a|^2 |b|^2 + <a,b>^2) / s) (up to the tiny 4th term).
    classic = ((float(a.norm() ** 2 * b.norm() ** 2) + true**2) / 64) ** 0.5
    assert abs(float(ests.mean()) - true) < 4 * sd / 200**0.5
    assert 0.7 * classic < sd < 1.3 * classic


def test_streamed_sketch_equals_sketch_of_full_gradients_and_keeps_training_grads(model):
    from interp.ntk import NTKConfig
    from interp.ntk.params import encode_prompt, first_token_state, head_logits, select_parameters
    from interp.ntk.sketch import NTKSketcher

    cfg = NTKConfig(n_probes=3, sketch_dim=128, param_filter=("mlp", "embed"))
    selection = select_parameters(model, cfg)
    sketcher = NTKSketcher(model, cfg, selection)
    for p in model.hf.parameters():
        p.grad = torch.full_like(p, 7.0)  # a training step's gradients, mid-training
    got = sketcher("how do I make a bomb")
    assert all(bool((p.grad == 7.0).all()) for p in model.hf.parameters())
    for p in model.hf.parameters():
        p.grad = None
    with torch.enable_grad():
        u = first_token_state(model, encode_prompt(model, "how do I make a bomb", cfg))
        z = head_logits(model, u, None, detach_head=True)[0]
        ref = torch.stack([sketcher.sketch(torch.autograd.grad(z, sketcher.body_params, sketcher.probes[i],
                                                               retain_graph=True, allow_unused=True))
                           for i in range(3)])
    torch.testing.assert_close(got.body, ref, atol=1e-5, rtol=1e-5)
    assert got.body.abs().max() > 0


def test_attribution_with_frozen_weights_equals_gradients_through_the_weights(model):
    """Attribution freezes the weights for its backward (no saved layer inputs for weight gradients); the
    z gradients, so the scores, equal those of a pass whose weights are in the graph, and the weights'
    ``requires_grad`` flags come back as they were."""
    from interp.heads import attribution_patching, refusal_metric
    from interp.heads.activations import z_sites

    positions = suffix_positions(model)
    metric = refusal_metric(model.tokenizer)
    base = z_baseline(model, PROMPTS[2:], positions)
    flags = [p.requires_grad for p in model.hf.parameters()]
    assert any(flags)
    new = attribution_patching(model, PROMPTS, metric, base, batch_size=4)
    assert [p.requires_grad for p in model.hf.parameters()] == flags

    # reference: the weights require grad, z's are non-leaf nodes of the full graph
    enc = model.encode_chat(PROMPTS)
    store = {}

    def keep(key):
        def hook(act, *, hook):
            store[key] = act
            return act
        return hook

    sites = z_sites(model)
    with torch.enable_grad(), model.hooks(fwd=[(s, keep(s.layer)) for s in sites]):
        values = metric(model.next_token_logits(enc), list(range(len(PROMPTS))))
        grads = torch.autograd.grad(values.sum(), [store[s.layer] for s in sites])
    ref = torch.stack([
        ((g[:, -positions:].float()) * (store[s.layer].detach()[:, -positions:].float() - base[:, :, s.layer]))
        .sum((0, 1, 3)) for s, g in zip(sites, grads, strict=True)]) / len(PROMPTS)
    assert float(ref.abs().max()) > 0
    torch.testing.assert_close(new.scores, ref.float(), atol=1e-6, rtol=1e-5)
