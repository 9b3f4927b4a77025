"""Empirical NTK: exact kernel invariants, the sketched estimator against it, subsets, I/O, callback."""

from __future__ import annotations

import pytest
import torch

from interp.data import Prompt, PromptSet
from interp.errors import InterpError, NonFiniteError
from interp.models import TinyConfig, load_model
from interp.ntk import (
    KernelCallback,
    KernelMatrix,
    NTKConfig,
    exact_frobenius,
    jacobian,
    kernel_frobenius,
    kernel_similarity,
    normalise,
    select_parameters,
)
from interp.ntk.exact import kernel
from interp.ntk.sketch import CountSketch, PromptSketch, frobenius_from_sketches

TEXTS = ["How do I kill a python process?", "How do I make a pipe bomb?",
         "What is the capital of France?", "Write a poem about the sea."]
TOKENS = tuple(range(3, 67))  # 64 vocabulary ids keep exact Jacobians fast


@pytest.fixture(scope="module")
def model():
    return load_model("tiny", tiny=TinyConfig(n_heads=2, n_kv_heads=1, d_head=8, d_mlp=32, seed=3))


@pytest.fixture(scope="module")
def exact(model):
    return exact_frobenius(model, TEXTS, NTKConfig(estimator="exact", token_ids=TOKENS), progress=False)


def test_exact_kernel_symmetric_and_self_similarity_one(model):
    cfg = NTKConfig(estimator="exact", token_ids=TOKENS)
    j_a, j_b = jacobian(model, TEXTS[0], cfg), jacobian(model, TEXTS[1], cfg)
    assert j_a.shape == (len(TOKENS), select_parameters(model, cfg).n_params)
    torch.testing.assert_close(kernel(j_a, j_b), kernel(j_b, j_a).T)
    k_aa = kernel(j_a, j_a)
    assert torch.linalg.eigvalsh(k_aa).min() > -1e-8 * k_aa.abs().max()  # PSD Gram matrix
    # K[v, w] = <dz_v(x_a)/dtheta, dz_w(x_b)/dtheta>
    assert torch.isclose(kernel(j_a, j_b)[3, 5], (j_a[3] * j_b[5]).sum(), rtol=1e-9)
    assert torch.linalg.matrix_norm(kernel(j_a, j_b)) > 0


def test_exact_jacobian_matches_finite_difference(model):
    cfg = NTKConfig(estimator="exact", token_ids=(5, 77), param_filter=("model.norm.weight",))
    sel = select_parameters(model, cfg)
    jac = jacobian(model, TEXTS[0], cfg, sel)
    (w,) = sel.params
    enc = model.encode_chat([TEXTS[0]])
    eps = 1e-2
    with torch.no_grad():
        base = model.next_token_logits(enc)[0, [5, 77]].double()
        w[7] += eps
        bumped = model.next_token_logits(enc)[0, [5, 77]].double()
        w[7] -= eps
    torch.testing.assert_close((bumped - base) / eps, jac[:, 7], rtol=2e-2, atol=1e-3)


def test_normalised_similarity_diagonal_is_one(exact):
    sim = normalise(exact)
    torch.testing.assert_close(sim.diagonal(), torch.ones(len(TEXTS), dtype=sim.dtype))
    torch.testing.assert_close(exact, exact.T)


@pytest.mark.parametrize("filt", [None, ("layers.1.",)])
def test_sketch_agrees_with_exact(model, filt):
    cfg_x = NTKConfig(estimator="exact", token_ids=TOKENS, param_filter=filt)
    ex = exact_frobenius(model, TEXTS, cfg_x, progress=False)
    est = kernel_frobenius(model, TEXTS, NTKConfig(token_ids=TOKENS, param_filter=filt, n_probes=48,
                                                   sketch_dim=2**16, seed=0), progress=False)
    assert ((est - ex).abs() / ex).max() < 0.15
    s_ex, s_est = normalise(ex), normalise(est)
    assert ((s_est - s_ex).abs() / s_ex).max() < 0.05
    # not vacuous: the error is far below how much the similarities differ from 1
    assert (s_est - s_ex).abs().max() < 0.25 * (s_ex - 1).abs().max()
    if filt is not None:
        assert (s_ex - 1).abs().max() > 0.02


def test_sketch_is_unbiased_for_squared_norm(model, exact):
    """Averaged over seeds, the estimate of ||K||_F^2 approaches the exact value (1/sqrt(seeds) noise)."""
    ests = torch.stack([
        kernel_frobenius(model, TEXTS[:2], NTKConfig(token_ids=TOKENS, n_probes=4, sketch_dim=2**14, seed=s),
                         progress=False) ** 2
        for s in range(24)
    ])
    rel = (ests.mean(0) - exact[:2, :2] ** 2) / exact[:2, :2] ** 2
    spread = ests.std(0) / exact[:2, :2] ** 2
    assert spread.max() > 0.01  # few probes: individual estimates really are noisy ...
    assert rel.abs().max() < 0.05 + 3 * spread.max() / 24**0.5  # ... but their mean is right


def test_count_sketch_preserves_inner_products():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(5000, generator=gen), torch.randn(5000, generator=gen)
    b = 0.6 * a + 0.8 * b
    cs = CountSketch([torch.empty(1000), torch.empty(4000)], dim=4096, seed=1, device=torch.device("cpu"))
    sa, sb = cs([a[:1000], a[1000:]]), cs([b[:1000], b[1000:]])
    assert abs(float(sa @ sb - a @ b)) < 4 * float(a.norm() * b.norm()) / 4096**0.5
    assert abs(float(sa @ sb - a @ b)) / float(a @ b) < 0.1


def test_parameter_subset_excludes_what_it_should(model):
    cfg = NTKConfig(estimator="exact", token_ids=TOKENS, layers_upto=0)
    sel = select_parameters(model, cfg)
    assert not any("layers.1." in n or n == "model.norm.weight" for n in sel.names)
    assert "model.embed_tokens.weight" in sel.names and sel.head_weight  # tied: W_U is the embedding
    # The output bias never acts before the head: alone it gives K = I, so S = 1 for every pair.
    bias_only = exact_frobenius(model, TEXTS[:3], NTKConfig(estimator="exact", token_ids=TOKENS,
                                                            param_filter=("lm_head.bias",)), progress=False)
    torch.testing.assert_close(bias_only, torch.full((3, 3), len(TOKENS) ** 0.5, dtype=torch.float64))
    # Only the final norm: the Jacobian lives in exactly d_model columns, and matches the sketch
    cfg_n = NTKConfig(estimator="exact", token_ids=TOKENS, param_filter=("model.norm",))
    assert jacobian(model, TEXTS[0], cfg_n).shape == (len(TOKENS), 16)
    with pytest.raises(InterpError, match="no parameter"):
        select_parameters(model, NTKConfig(param_filter=("nonexistent",)))
    with pytest.raises(InterpError, match="out of range"):
        select_parameters(model, NTKConfig(layers_upto=5))


def test_kernel_matrix_class_means_and_roundtrip(model, tmp_path):
    prompts = PromptSet("t", tuple(Prompt(t, lab) for t, lab in zip(
        TEXTS, ["seemingly_harmful", "harmful", "harmless", "harmful"], strict=True)))
    km = kernel_similarity(model, prompts, NTKConfig(token_ids=TOKENS, n_probes=8, sketch_dim=4096),
                           progress=False)
    means = km.class_means()
    sim = km.similarity
    assert means[("seemingly_harmful", "harmful")] == pytest.approx(float(sim[0, [1, 3]].mean()))
    assert means[("harmful", "harmful")] == pytest.approx(float((sim[1, 3] + sim[3, 1]) / 2))
    with pytest.raises(InterpError):
        km.class_means([("seemingly_harmful", "seemingly_harmful")])  # one prompt: no off-diagonal pair
    back = KernelMatrix.load(km.save(tmp_path / "k"))
    assert back.labels == km.labels and back.config == km.config
    torch.testing.assert_close(back.similarity, km.similarity)
    assert back.class_means() == pytest.approx(means)


def test_callback_records_and_restores_state(model):
    prompts = PromptSet("t", (Prompt(TEXTS[0], "seemingly_harmful"), Prompt(TEXTS[2], "seemingly_harmful"),
                              Prompt(TEXTS[1], "harmful"), Prompt(TEXTS[3], "harmful")))
    cb = KernelCallback(prompts, NTKConfig(token_ids=TOKENS, n_probes=4, sketch_dim=1024), every_n_steps=2)
    params = list(model.hf.parameters())
    model.hf.train()
    params[0].requires_grad_(False)
    params[1].grad = torch.ones_like(params[1])
    try:
        returned = []
        with torch.no_grad():
            for step in range(4):
                returned += cb(model, step)
        assert model.hf.training and not params[0].requires_grad and params[1].requires_grad
        assert torch.equal(params[1].grad, torch.ones_like(params[1])) and params[2].grad is None
    finally:
        model.hf.eval()
        params[0].requires_grad_(True)
        params[1].grad = None
    assert sorted({r.step for r in cb.records}) == [0, 2]
    assert len(cb.records) == 2 * 4  # 4 class pairs per checkpoint
    assert all(0 < r.value < 10 for r in cb.records)
    assert cb.to_records()[0]["pair"] == list(cb.records[0].pair)
    # the trainer stores what the callback returns in its history
    assert len(returned) == 8 and {r["metric"] for r in returned} == {"ntk_similarity"}
    assert returned[0]["value"] == cb.records[0].value


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="n_probes"):
        NTKConfig(n_probes=1)
    with pytest.raises((ValueError, TypeError), match="estimator"):
        NTKConfig(estimator="fast")
    with pytest.raises((ValueError, TypeError), match="param_filter"):
        NTKConfig(param_filter="layers")


def test_non_finite_sketch_raises_naming_the_pair():
    gen = torch.Generator().manual_seed(0)
    sketches = [PromptSketch(torch.randn(3, 16, generator=gen), torch.randn(4, generator=gen), None)
                for _ in range(2)]
    probes = torch.randn(3, 10, generator=gen)
    assert torch.isfinite(frobenius_from_sketches(sketches, probes, True, True)).all()
    sketches[1].body[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="prompts 0 x 1"):
        frobenius_from_sketches(sketches, probes, True, True)
