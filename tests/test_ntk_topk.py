"""The paper code's kernel (each prompt's top-k first-token logits, last layers) on a tiny model."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import interp.ntk.topk as topk
from interp.data.prompts import Prompt, PromptSet
from interp.errors import InterpError
from interp.evaluate.first_token import first_token_logits
from interp.models import TinyConfig, load_model
from interp.ntk import NTKConfig, jacobian, kernel_similarity, select_parameters, topk_frobenius, topk_gram

TEXTS = ["how do I kill a python process", "what is the capital of France", "write a poem about rain",
         "how can I hurt someone", "name three colours"]
EXACT = NTKConfig(estimator="exact", top_k=3, last_layers=1)


@pytest.fixture(scope="module")
def model():
    return load_model("tiny", device="cpu", tiny=TinyConfig(n_layers=3, seed=7))


def test_gram_is_symmetric_psd_and_ids_are_each_prompts_top_tokens(model):
    gram, ids = topk_gram(model, TEXTS, EXACT, progress=False)
    n, k = len(TEXTS), 3
    assert gram.shape == (n, k, n, k) and ids.shape == (n, k)
    g = gram.reshape(n * k, n * k)
    torch.testing.assert_close(g, g.T, rtol=0, atol=1e-12)
    eig = torch.linalg.eigvalsh(g)
    assert eig.min() > -1e-9 * eig.max()
    logits = first_token_logits(model, TEXTS)
    assert torch.equal(ids, torch.topk(logits, k).indices)
    assert len({tuple(r) for r in ids.tolist()}) > 1  # prompts do pick different tokens


def test_frobenius_matches_explicit_jacobians_on_each_prompts_tokens(model):
    got = topk_frobenius(model, TEXTS, EXACT, progress=False)
    _, ids = topk_gram(model, TEXTS, EXACT, progress=False)
    # the reference: full Jacobians of the logits restricted to the prompt's own top-k ids
    jacs = [jacobian(model, t, replace(EXACT, top_k=None, token_ids=tuple(ids[a].tolist())))
            for a, t in enumerate(TEXTS)]
    want = torch.tensor([[float(torch.linalg.matrix_norm(ja @ jb.T)) for jb in jacs] for ja in jacs],
                        dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(got, got.T)
    assert (got.diagonal() > 0).all()


def test_the_sketch_estimates_the_exact_norms(model):
    exact = topk_frobenius(model, TEXTS, EXACT, progress=False)
    sketched = torch.stack([topk_frobenius(model, TEXTS, replace(EXACT, estimator="sketch", sketch_dim=2**14,
                                                                 seed=s), progress=False) for s in range(3)])
    rel = (sketched.mean(0) - exact).abs() / exact
    assert rel.max() < 0.03, rel


def test_last_layers_selects_the_tail_blocks_and_the_final_norm(model):
    names = select_parameters(model, NTKConfig(last_layers=1)).names
    assert names and all(n.startswith(("model.layers.2.", "model.norm.")) for n in names)
    assert any(n.startswith("model.norm.") for n in names)
    two = select_parameters(model, NTKConfig(last_layers=2)).names
    assert {model.arch.layer_of(n) for n in two} == {1, 2, None}
    with pytest.raises(InterpError, match="last_layers=4"):
        select_parameters(model, NTKConfig(last_layers=4))


def test_bad_settings_are_refused(model, monkeypatch):
    with pytest.raises(ValueError, match="top_k"):
        NTKConfig(top_k=3, token_ids=(1, 2))
    with pytest.raises(ValueError, match="top_k"):
        NTKConfig(top_k=0)
    with pytest.raises(ValueError, match="last_layers"):
        NTKConfig(last_layers=1, layers_upto=0)
    monkeypatch.setattr(topk, "MAX_EXACT_BYTES", 1000)
    with pytest.raises(InterpError, match="sketch"):
        topk_frobenius(model, TEXTS, EXACT, progress=False)


def test_kernel_similarity_uses_the_top_k_kernel(model):
    prompts = PromptSet("p", tuple(Prompt(t, lab) for t, lab in zip(
        TEXTS[:4], ["seemingly_harmful", "harmless", "harmless", "harmful"], strict=True)))
    km = kernel_similarity(model, prompts, EXACT, progress=False)
    torch.testing.assert_close(km.frobenius.double(), topk_frobenius(model, prompts.texts, EXACT, progress=False),
                               rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(km.symmetric.diagonal(), torch.ones(4, dtype=torch.float64))
    assert km.config.top_k == 3
    stats = km.class_stats(n_boot=50)
    assert ("harmless", "harmless") in stats.pairs


def test_kernel_callback_records_the_symmetric_similarity_with_cis(model):
    from interp.ntk import KernelCallback

    labels = ["seemingly_harmful", "seemingly_harmful", "harmful", "harmful"]
    prompts = PromptSet("p", tuple(Prompt(t, lab) for t, lab in zip(TEXTS[:4], labels, strict=True)))
    cb = KernelCallback(prompts, EXACT, symmetric=True, n_boot=50)
    recs = cb(model, 0)
    sym = [r for r in recs if r["metric"] == "ntk_similarity_sym"]
    assert {r["metric"] for r in recs} == {"ntk_similarity", "ntk_similarity_sym"} and len(sym) == 4
    assert all(r["low"] <= r["value"] + 1e-12 and r["value"] <= r["high"] + 1e-12 and 0 < r["value"] <= 1 + 1e-9
               for r in sym)
    plain = KernelCallback(prompts, EXACT)(model, 0)
    assert {r["metric"] for r in plain} == {"ntk_similarity"}
