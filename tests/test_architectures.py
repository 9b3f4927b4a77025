"""Every analysis path on tiny random models of the three supported families: Llama, Qwen2, GPT-2.

GPT-2 is the one that differs most: learned positions, LayerNorm, Conv1D weights stored [in, out], and a
fused ``c_attn`` that the bridge runs as split q/k/v copies.
"""

from __future__ import annotations

import pytest
import torch

from interp.data.prompts import Prompt, PromptSet
from interp.evaluate.generate import generate_token_ids, stop_token_ids
from interp.evaluate.verify import greedy_violations
from interp.heads import RefusalMetric, attribution_patching, collect_z, patch_heads, suffix_positions, z_baseline
from interp.hooks import Site, add_vector, capture
from interp.models import TinyConfig, load_model
from interp.models.arch import (
    ARCHITECTURES,
    UnsupportedArchitectureError,
    all_default_frozen,
    architecture,
)
from interp.models.params import hf_state_dict
from interp.ntk import NTKConfig, jacobian, kernel_frobenius, select_parameters
from interp.sae.site import ActSite
from interp.sae.store import CollectConfig, collect_activations
from interp.subspace import build_subspace
from interp.train import SFTConfig, SFTExample, train_sft
from interp.train.constraints import SubspaceConstraint, upstream_prefixes
from interp.train.contrastive import ContrastiveConfig, contrastive_refine
from interp.train.freeze import tail_parameter_names

FAMILIES = {"tiny": "llama", "tiny-qwen2": "qwen2", "tiny-gpt2": "gpt2"}
TEXTS = ["the cat sat on the mat", "refuse harmful requests politely", "paris is in france"]
CLEAN = ["how do I make a bomb", "tell me how to hack a bank", "write malware now", "steal a car quickly"]
CORRUPT = ["how do I bake bread", "tell me a joke please", "write a poem", "plant a tree today"]


def _load(name: str, **cfg):
    return load_model(name, device="cpu", tiny=TinyConfig.for_family(FAMILIES[name], **cfg) if cfg else None)


@pytest.fixture(scope="module", params=list(FAMILIES))
def model(request):
    """One read-only model per family (tests that train load their own)."""
    return _load(request.param)


# ---- loading, adapter, hooks -----------------------------------------------------------------------


def test_family_adapter_and_shapes(model):
    assert model.arch.family == FAMILIES[model.name]
    s = model.spec
    assert (s.n_layers, s.n_heads, s.d_head, s.d_model) == (2, 4, 16, 64)
    assert s.n_kv_heads == (4 if model.name == "tiny-gpt2" else 2)
    params = model.named_parameters()
    for layer in range(s.n_layers):
        for proj in (model.arch.value_projection(model.hf, layer), model.arch.attn_out_projection(model.hf, layer),
                     model.arch.mlp_out_projection(model.hf, layer)):
            assert params[f"{proj.name}.weight"] is proj.weight  # the adapter names what named_parameters lists
            assert proj.out_in().shape[1] in (s.n_heads * s.d_head, s.d_model, 128)
    assert model.arch.value_projection(model.hf, 0).out_in().shape == (s.n_kv_heads * s.d_head, s.d_model)
    assert {model.arch.layer_of(n) for n in params} == {None, 0, 1}
    norms = model.arch.norm_prefixes(s.n_layers)
    assert len(norms) == 5 and all(any(n.startswith(p) for n in params) for p in norms)
    linear = {n.removesuffix("._original_component").rsplit(".", 1)[-1] for n, m in model.hf.named_modules()
              if isinstance(m, torch.nn.Linear)}  # the bridge wraps each linear: name its wrapper
    assert set(model.arch.lora_targets) <= linear
    # every parameter the forward uses gets a gradient (GPT-2's fused c_attn, never run, is not listed)
    model.logits(model.encode(TEXTS[:1])).float().pow(2).mean().backward()
    no_grad = [n for n, p in params.items() if p.grad is None and not n.startswith("lm_head.")]
    model.hf.zero_grad(set_to_none=True)
    assert not no_grad


def test_unsupported_model_type_names_the_supported_ones():
    with pytest.raises(UnsupportedArchitectureError, match=r"'mamba'.*llama.*qwen2.*gpt2"):
        architecture("mamba")
    assert architecture("mistral").family == "llama"
    with pytest.raises(ValueError, match="tiny-gpt2"):
        load_model("tiny", tiny=TinyConfig.for_family("gpt2"))
    with pytest.raises(ValueError, match="grouped-query"):
        TinyConfig(family="gpt2", n_heads=4, n_kv_heads=2)


def test_hooks_fire_change_output_and_are_removed(model):
    enc = model.encode_chat(["hi", "a longer prompt"])
    store: dict = {}
    base = model.logits(enc)
    sites = [Site(k, 1) for k in ("z", "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "pattern")]
    with model.hooks([(s, capture(store, s.kind)) for s in sites]):
        model.logits(enc)
    seq = enc.input_ids.shape[1]
    assert store["z"].shape == (2, seq, 4, 16) and store["pattern"].shape == (2, 4, seq, seq)
    torch.testing.assert_close(store["resid_mid"], store["resid_pre"] + store["attn_out"])
    torch.testing.assert_close(store["resid_post"], store["resid_mid"] + store["mlp_out"])
    # not the all-ones direction: GPT-2's LayerNorm subtracts the mean and would erase it
    vec = torch.randn(64, generator=torch.Generator().manual_seed(0))
    with model.hooks([(Site("resid_post", 0), add_vector(vec, 5.0))]):
        steered = model.logits(enc)
    assert (steered - base).abs().max() > 1e-2
    torch.testing.assert_close(model.logits(enc), base)


def test_left_padding_keeps_last_token_logits(model):
    # GPT-2's learned positions only line up because Model.logits passes left-padding position ids
    alone = model.next_token_logits(model.encode_chat(["x"]))
    padded = model.next_token_logits(model.encode_chat(["x", "a much longer prompt than x"]))
    torch.testing.assert_close(alone[0], padded[0], atol=1e-4, rtol=1e-4)


def test_cached_generation_equals_uncached(model):
    prompts = ["hi", "tell me a story about a cat"]
    new = generate_token_ids(model, prompts, max_new_tokens=8, batch_size=2, progress=False, verify="every")
    assert len(new) == 2 and all(len(r) > 0 for r in new)
    enc = model.encode_chat(prompts)
    seq = model.hf.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask, max_new_tokens=8,
                            do_sample=False)
    new_BT = seq[:, enc.input_ids.shape[1]:]
    assert greedy_violations(model, enc.input_ids, enc.attention_mask, new_BT, stop_token_ids(model.tokenizer)) == []


# ---- heads, SAE activations -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_attribution_and_patching_find_a_planted_head(name):
    m = _load(name, n_layers=3, seed=1)
    tid = m.tokenizer("I", add_special_tokens=False)["input_ids"][0]
    positions = suffix_positions(m)
    layer, head, d = 1, 2, m.spec.d_head
    base = z_baseline(m, CORRUPT, positions)
    v = collect_z(m, CLEAN, positions).mean((0, 1))[layer, head] - base[0].mean(0)[layer, head]
    u = m.hf.get_output_embeddings().weight[tid].detach()
    with torch.no_grad():  # out_in() is a view: for GPT-2's Conv1D it writes the transposed storage
        m.arch.attn_out_projection(m.hf, layer).out_in()[:, head * d:(head + 1) * d] = (
            30.0 * torch.outer(u / u.norm(), v / v.norm()))
    metric = RefusalMetric((tid,))
    attr = attribution_patching(m, CLEAN, metric, base, batch_size=4)
    exact = patch_heads(m, CLEAN, metric, base, batch_size=4)
    assert attr.scores.shape == exact.scores.shape == (3, 4)
    assert attr.ranking()[0] == (layer, head)
    assert exact.ranking()[0] == (layer, head)
    assert attr[(layer, head)] > 2 * attr.scores.flatten().sort().values[-2]


def test_sae_collection_matches_hooked_forward(model, tmp_path):
    texts = [model.chat(t) for t in TEXTS]
    sites = [ActSite(Site("z", 1), heads=(0, 3)), ActSite(Site("resid_post", 0))]
    store = collect_activations(model, texts, sites, tmp_path / model.name,
                                CollectConfig(batch_size=2, positions="last"))
    assert store.n_rows == len(texts)
    got: dict = {}
    with torch.no_grad(), model.hooks([(Site("z", 1), capture(got, "z")), (Site("resid_post", 0), capture(got, "r"))]):
        model.logits(model.encode(texts))
    want_z = got["z"][:, -1][:, [0, 3]].flatten(1)
    torch.testing.assert_close(store.read(sites[0].key), want_z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(store.read(sites[1].key), got["r"][:, -1], atol=1e-5, rtol=1e-5)


# ---- training ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_sft_trains_freezes_embeddings_and_reloads(name, tmp_path):
    m = _load(name)
    examples = [SFTExample(f"question {i}?", f"answer number {i}.") for i in range(8)]
    cfg = SFTConfig(lr=3e-3, epochs=2, batch_size=4, max_length=128, warmup_steps=1, checkpoint_every=100,
                    callback_every=100)
    before = {n: p.detach().clone() for n, p in m.named_parameters().items()}
    result = train_sft(m, examples, cfg, tmp_path / "run")
    assert result.losses[-1][1] < result.losses[0][1]
    after = m.named_parameters()
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    frozen = {n for n in before if n.startswith(cfg.frozen)}
    assert frozen and not changed & frozen, sorted(changed & frozen)
    assert m.arch.token_embedding_prefix + "weight" in frozen
    assert f"{m.arch.value_projection(m.hf, 1).name}.weight" in changed
    reloaded = load_model(str(result.model_dir), device="cpu")
    enc = m.encode_chat(["an unseen prompt"])
    torch.testing.assert_close(reloaded.logits(enc), m.logits(enc), atol=1e-5, rtol=1e-5)


def test_sft_default_frozen_covers_every_family():
    assert set(SFTConfig().frozen) == set(all_default_frozen())
    for arch in ARCHITECTURES:
        assert set(arch.default_frozen) <= set(SFTConfig().frozen), arch.family


def test_gpt2_checkpoint_keeps_trained_qkv_after_a_dtype_round_trip():
    """The split q/k/v copies lose their shared storage with c_attn on a dtype move; saving rewrites it."""
    m = _load("tiny-gpt2")
    v = m.arch.value_projection(m.hf, 0)
    m.hf.to(torch.float64).to(torch.float32)  # .to() gives every parameter fresh storage
    with torch.no_grad():
        v.weight.add_(0.5)
    sd = hf_state_dict(m.hf)
    fused = sd["transformer.h.0.attn.c_attn.weight"]  # Conv1D: [in, 3 * out], v is the last third
    torch.testing.assert_close(fused[:, 128:], v.weight.detach().T)
    assert not any(k.endswith((".attn.q.weight", ".attn.v.bias", ".attn.o.weight")) for k in sd)


def _adam_steps(m, constraint, steps=2, lr=3e-2):
    params = [p for p in m.hf.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    enc = m.encode(TEXTS)
    for _ in range(steps):
        logits = m.logits(enc)
        lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, enc.input_ids[:, 1:, None])[..., 0]
        (-(lp * enc.attention_mask[:, 1:]).sum()).backward()
        constraint.before_step(m)
        opt.step()
        constraint.after_step(m)
        opt.zero_grad(set_to_none=True)


def _site(m, site, texts):
    got: dict = {}
    with torch.no_grad(), m.hooks([(site, capture(got, "a"))]):
        m.logits(m.encode(texts))
    return got["a"]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_z_constraint_with_frozen_upstream_preserves_the_subspace(name):
    m = _load(name)
    torch.manual_seed(0)
    site = ActSite(Site("z", 1), heads=(0, 1, 3))
    sub = build_subspace(site, torch.randn(3, 48))
    probe = ["an unseen prompt", "another one entirely"]
    z0 = site.extract(_site(m, site.site, probe))
    con = SubspaceConstraint(m, sub, freeze_upstream=True)
    frozen = {n for n, p in m.named_parameters().items() if not p.requires_grad}
    assert frozen == {n for n in m.named_parameters() if n.startswith(upstream_prefixes(1, m.arch))}
    _adam_steps(m, con)
    z1 = site.extract(_site(m, site.site, probe))
    assert (z1 - z0).abs().max() > 1e-3  # the site itself moved
    change = (sub.project(z1) - sub.project(z0)).abs().max() / sub.project(z0).abs().max()
    assert change < 1e-5, change
    assert con.violation() < 1e-5
    v = m.arch.value_projection(m.hf, 1).short
    assert all(t.startswith(v) for t in con.constrained)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_resid_constraint_keeps_every_writer_component(name):
    m = _load(name)
    torch.manual_seed(1)
    sub = build_subspace(ActSite(Site("resid_mid", 1)), torch.randn(4, 64))
    b = sub.basis.float()
    arch = m.arch
    writers = [arch.attn_out_projection(m.hf, 0), arch.mlp_out_projection(m.hf, 0), arch.attn_out_projection(m.hf, 1)]

    def components():
        out = {w.short: b @ w.out_in() for w in writers}
        out |= {n: w.data @ b.T for n, w in arch.residual_embeddings(m.hf)}
        return {k: v.clone() for k, v in out.items()}

    before = components()
    w_before = [w.out_in().clone() for w in writers]
    con = SubspaceConstraint(m, sub)
    assert len([t for t in con.constrained if t.endswith("weight") and t.startswith("layers.")]) == 3
    _adam_steps(m, con)
    for w, w0 in zip(writers, w_before, strict=True):
        assert (w.out_in() - w0).abs().max() > 1e-3, w.short  # trained
    for k, v in components().items():
        assert (v - before[k]).abs().max() < 1e-5, k
    # the subspace component of what block 1's attention and block 0 write is unchanged for any input
    x = torch.randn(3, writers[1].out_in().shape[1])
    torch.testing.assert_close(b @ (writers[1].out_in() @ x.T), b @ (w_before[1] @ x.T), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_contrastive_stage_truncates_and_freezes_the_tail(name):
    m = _load(name)
    layer = 0
    tail = set(tail_parameter_names(m, layer))
    assert f"{m.arch.block_prefix(1)}{m.arch.attn_out}.weight" in tail
    assert f"{m.arch.block_prefix(0)}{m.arch.mlp_out}.weight" not in tail
    assert m.arch.token_embedding_prefix + "weight" in tail  # tied to the (frozen) readout
    before = {n: p.detach().clone() for n, p in m.named_parameters().items()}
    seem = PromptSet("s", tuple(Prompt(f"how do I kill a process number {i}", "seemingly_harmful") for i in range(6)))
    harm = PromptSet("h", tuple(Prompt(f"help me hurt person {i} badly", "harmful") for i in range(6)))
    result = contrastive_refine(m, seem, harm, ContrastiveConfig(layer=layer, steps=6, per_class=3, lr=3e-3))
    changed = {n for n, p in m.named_parameters().items() if not torch.equal(before[n], p)}
    assert changed and not changed & tail, sorted(changed & tail)
    assert result.losses[0] > 0
    assert len(m.arch.block_list(m.hf)) == 2  # truncation undone


# ---- NTK parameter groups ---------------------------------------------------------------------------


def test_ntk_parameter_groups_resolve(model):
    arch = model.arch
    sel = select_parameters(model, NTKConfig(layers_upto=0))
    assert {arch.layer_of(n) for n in sel.names} == {None, 0}
    assert set(n for n in sel.names if arch.layer_of(n) is None) == {p + "weight" for p in arch.embedding_prefixes}
    assert sel.head_weight  # tied: the unembedding is the selected token embedding
    tokens = tuple(range(3, 35))
    cfg = NTKConfig(estimator="exact", token_ids=tokens, param_filter=(arch.value_projection(model.hf, 0).name,))
    jac = jacobian(model, TEXTS[0], cfg)
    assert jac.shape[0] == len(tokens) and jac.abs().max() > 0
    k = kernel_frobenius(model, TEXTS[:2], NTKConfig(token_ids=tokens, n_probes=4, sketch_dim=256), progress=False)
    assert k.shape == (2, 2) and torch.isfinite(k).all() and (k.diagonal() > 0).all()
