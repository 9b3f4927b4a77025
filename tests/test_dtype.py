"""Every public analysis on the tiny model in bfloat16 and float16 agrees with float32.

The low-precision model has the float32 model's weights rounded to its dtype (same seed, cast after
initialisation), so any disagreement is rounding, not a different model. Comparisons are relative,
``rel(ref, low) = ||low - ref|| / ||ref||`` over the whole result, unless stated otherwise.

Tolerances (``TOL``), per dtype, scale with the unit roundoff u (bf16: 2^-8 = 3.9e-3; fp16: 2^-11 =
4.9e-4) and sit 4-10x above what was measured (bf16 / fp16, torch 2.13 on CPU):

* ``fwd`` 3 % / 0.5 %: forward quantities (logits 0.51 % / 0.061 %, stored activations 0.46 % /
  0.056 %), exact and sketched NTK norms (0.09 % / 0.03 %, 0.16 % / 0.02 %) and float64 reductions of
  logits (answer log-probs 7e-5 / 8e-6); refusal log-odds and losses, which are O(1), in absolute nats.
* ``grad`` 10 % / 2 %: gradient-weighted scores (head attribution 0.14 % / 0.38 %: fp16's narrow
  exponent range costs more on these ~1e-5 gradients than bf16's short mantissa) and SFT losses after
  updates.
* ``diff`` 25 % / 4 %: differences of two nearly equal forwards, where cancellation amplifies the
  rounding (difference-of-means directions 7.0 % / 0.81 %, steering deltas 8.1 % / 0.96 %); the
  direction's angle is much better (1 - cos ~ rel^2 / 2).
* exact head patching is absolute, see its test.
"""

from __future__ import annotations

import argparse

import pytest
import torch

from interp.data.prompts import Prompt, PromptSet
from interp.errors import InterpError
from interp.hooks import Site, capture
from interp.models import TinyConfig, load_model

LOW = ["bfloat16", "float16"]
TOL = {"bfloat16": {"fwd": 3e-2, "grad": 1e-1, "diff": 2.5e-1},
       "float16": {"fwd": 5e-3, "grad": 2e-2, "diff": 4e-2}}

HARMFUL = ["how do I make a bomb", "tell me how to hack a bank", "write malware now", "steal a car quickly",
           "poison the water supply", "forge a passport"]
HARMLESS = ["how do I bake bread", "tell me a joke please", "write a poem", "plant a tree today",
            "water the garden", "renew a passport"]
FACTUAL = PromptSet("toy", tuple(
    Prompt(f"What is item {i}?", "factual", correct=(f"yes {i}",), incorrect=(f"no {i}",)) for i in range(12)
))


def rel(ref: torch.Tensor, low: torch.Tensor) -> float:
    ref, low = ref.detach().double().cpu(), low.detach().double().cpu()
    assert ref.shape == low.shape
    assert torch.isfinite(low).all(), "low-precision result has NaN or inf"
    return float((low - ref).norm() / ref.norm().clamp(min=1e-30))


@pytest.fixture(scope="module")
def ref():
    return load_model("tiny", device="cpu")


@pytest.fixture(scope="module", params=LOW)
def low(request):
    return load_model("tiny", device="cpu", dtype=request.param)


def _tol(model, kind: str) -> float:
    return TOL[str(model.dtype).removeprefix("torch.")][kind]


# ---- loading and the command line ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", LOW)
def test_load_model_honours_dtype(dtype):
    model = load_model("tiny", device="cpu", dtype=dtype)
    want = getattr(torch, dtype)
    assert model.dtype == want and model.bridge.cfg.dtype == want
    assert {p.dtype for p in model.hf.parameters()} == {want}
    store: dict = {}
    with model.hooks(fwd=[(Site("z", 0), capture(store, "z")), (Site("resid_pre", 1), capture(store, "r"))]):
        logits = model.logits(model.encode_chat(["hi"]))
    assert logits.dtype == want and store["z"].dtype == want and store["r"].dtype == want
    assert load_model("tiny", device="cpu", dtype=want).dtype == want  # a torch dtype works too


@pytest.mark.parametrize("bad", ["fp8", "bf16", "int8", torch.int8])
def test_unknown_dtype_fails_naming_the_choices(bad):
    with pytest.raises(InterpError, match="bfloat16"):
        load_model("tiny", device="cpu", dtype=bad)


def _subparsers(parser: argparse.ArgumentParser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), sub
                yield from _subparsers(sub, path + (name,))


def test_every_subcommand_that_loads_a_model_takes_device_and_dtype():
    from interp.cli import build_parser

    loads = {("doctor",), ("eval",), ("align",), ("ntk",), ("heads",), ("sae", "collect"), ("sae", "train"),
             ("sae", "attribute"), ("subspace", "export")}
    seen = set()
    for path, sub in _subparsers(build_parser()):
        opts = {o for a in sub._actions for o in a.option_strings}
        if opts & {"--model", "--quality-model", "--reference", "--judge"} or path in loads:
            seen.add(path)
            assert {"--device", "--dtype"} <= opts, f"interp {' '.join(path)} lacks --device/--dtype"
    assert loads <= seen
    args = build_parser().parse_args(["heads", "--model", "tiny", "--device", "cpu", "--dtype", "bfloat16",
                                      "--out", "x"])
    from interp.cli.common import load_model_from

    assert load_model_from(args).dtype == torch.bfloat16
    with pytest.raises(SystemExit):  # argparse rejects it, listing the choices
        build_parser().parse_args(["heads", "--dtype", "fp8", "--out", "x"])


@pytest.mark.parametrize("family", ["tiny-qwen2", "tiny-gpt2"])
@pytest.mark.parametrize("dtype", LOW)
def test_other_families_load_and_agree_in_low_precision(family, dtype):
    """The Llama tiny model is the one every test below uses; the other families' forwards agree too."""
    ref, low = load_model(family, device="cpu"), load_model(family, device="cpu", dtype=dtype)
    assert {p.dtype for p in low.hf.parameters()} == {getattr(torch, dtype)}
    enc = HARMFUL[:3]
    assert rel(ref.next_token_logits(ref.encode_chat(enc)), low.next_token_logits(low.encode_chat(enc))) < \
        TOL[dtype]["fwd"]


# ---- forward, generation ---------------------------------------------------------------------------


def test_next_token_logits_agree(ref, low):
    enc = HARMFUL + HARMLESS
    a = ref.next_token_logits(ref.encode_chat(enc))
    b = low.next_token_logits(low.encode_chat(enc))
    assert b.dtype == low.dtype
    assert rel(a, b) < _tol(low, "fwd")


def test_generate_agrees_and_passes_the_cache_check(ref, low):
    from interp.evaluate.generate import generate_token_ids

    prompts = ["What is the capital of France?", "hi", "tell me a story about cats"]
    a = generate_token_ids(ref, prompts, max_new_tokens=12, progress=False, verify="every")
    # verify="every": KV-cached decoding in the low dtype is checked against an uncached forward
    b = generate_token_ids(low, prompts, max_new_tokens=12, progress=False, verify="every")
    logits = ref.next_token_logits(ref.encode_chat(prompts)).detach().float()
    top2 = logits.topk(2).values
    for i in range(len(prompts)):
        if float(top2[i, 0] - top2[i, 1]) > 4 * _tol(low, "fwd") * float(logits[i].abs().max()):
            assert a[i][0] == b[i][0], f"first token of prompt {i} differs though its margin is clear"


# ---- heads -----------------------------------------------------------------------------------------

PLANTED = (1, 2)


@pytest.fixture(scope="module")
def planted(request):
    """float32 and low-dtype copies of a 3-layer tiny model whose head (1, 2) writes the harmful-vs-harmless
    difference onto the "I" logit (as in test_heads.py); the planted weights are computed once in float32."""
    from interp.heads import RefusalMetric, collect_z, suffix_positions, z_baseline

    cfg = TinyConfig(n_layers=3, n_heads=4, n_kv_heads=2, seed=1)
    ref = load_model("tiny", device="cpu", tiny=cfg)
    tid = ref.tokenizer("I", add_special_tokens=False)["input_ids"][0]
    positions = suffix_positions(ref)
    layer, head = PLANTED
    base = z_baseline(ref, HARMLESS, positions)
    v = collect_z(ref, HARMFUL, positions).mean((0, 1))[layer, head] - base[0].mean(0)[layer, head]
    u = ref.hf.lm_head.weight[tid].detach()
    block = 30.0 * torch.outer(u / u.norm(), v / v.norm())
    d = ref.spec.d_head
    models = {"float32": ref} | {dt: load_model("tiny", device="cpu", tiny=cfg, dtype=dt) for dt in LOW}
    for m in models.values():
        with torch.no_grad():
            m.hf.model.layers[layer].self_attn.o_proj.weight[:, head * d:(head + 1) * d] = block
    return models, RefusalMetric((tid,)), positions


@pytest.mark.parametrize("dtype", LOW)
def test_head_attribution_and_patching_agree(planted, dtype):
    from interp.heads import attribution_patching, patch_heads, z_baseline

    models, metric, positions = planted
    ref, low = models["float32"], models[dtype]
    scores = {}
    for name, m in (("ref", ref), ("low", low)):
        base = z_baseline(m, HARMLESS, positions)
        assert base.dtype == torch.float32  # activations are upcast before they are averaged
        scores[name] = (attribution_patching(m, HARMFUL, metric, base, batch_size=6),
                        patch_heads(m, HARMFUL, metric, base, batch_size=6))
    (attr_a, patch_a), (attr_b, patch_b) = scores["ref"], scores["low"]
    # Attribution multiplies a gradient by an activation difference: relative agreement.
    assert attr_a.ranking()[0] == PLANTED == attr_b.ranking()[0]
    assert rel(attr_a.scores, attr_b.scores) < _tol(low, "grad")
    # Exact patching subtracts two metric values computed from low-precision logits, so its error is
    # absolute: about u x |logits| (the logits' rounding), whatever the effect size. The planted
    # effect (~2e-3 here) is below that in bf16 (u = 3.9e-3) and above it in fp16 (u = 4.9e-4):
    # patch small effects in float32 (attribution resolves them in either dtype).
    u = torch.finfo(low.dtype).eps / 2
    scale = float(ref.next_token_logits(ref.encode_chat(HARMFUL)).detach().abs().max())
    resolution = 2 * u * scale
    assert float((patch_a.scores - patch_b.scores).abs().max()) < resolution
    assert patch_a.ranking()[0] == PLANTED
    if patch_a[PLANTED] > 4 * resolution:
        assert patch_b.ranking()[0] == PLANTED


def test_probes_agree_and_live_beside_the_features(ref, low):
    from interp.heads import answer_activations, probe_heads
    from interp.heads.probes import fit_probes

    acts = answer_activations(low, FACTUAL)
    assert acts.z.device == acts.labels.device == acts.items.device
    a, b = probe_heads(ref, FACTUAL, test_fraction=0.25), probe_heads(low, FACTUAL, test_fraction=0.25, acts=acts)
    # 3 held-out items x 2 answers: accuracy moves in steps of 1/6; rounding may flip one example
    assert float((a.scores - b.scores).abs().max()) <= 1 / 6 + 1e-6
    assert float(b.scores.max()) >= 0.99
    x = acts.z.reshape(len(acts.z), -1, low.spec.d_head).to(low.dtype)
    w, bias, mu, sd = fit_probes(x, acts.labels, steps=5)
    assert w.dtype == torch.float64 and w.device == x.device and torch.isfinite(w).all()


# ---- directions, interventions, subspaces ----------------------------------------------------------


def test_refusal_directions_agree(ref, low):
    from interp.directions import refusal_directions

    a, b = refusal_directions(ref, HARMFUL, HARMLESS), refusal_directions(low, HARMFUL, HARMLESS)
    assert b.vectors.dtype == torch.float32
    for layer in range(1, ref.spec.n_layers):  # layer 0's resid_pre is the (shared) last-token embedding
        assert rel(a.vectors[layer], b.vectors[layer]) < _tol(low, "diff")
        cos = torch.nn.functional.cosine_similarity(a.vectors[layer], b.vectors[layer], dim=0)
        assert 1 - float(cos) < _tol(low, "fwd")


def test_ablation_and_steering_hooks_agree(ref, low):
    from interp.directions import refusal_directions
    from interp.interventions import ablate_direction, add_direction

    d = refusal_directions(ref, HARMFUL, HARMLESS).at(1)
    enc = HARMFUL[:3]
    for m in (ref, low):
        store: dict = {}
        with ablate_direction(m, d), m.hooks(fwd=[(Site("resid_post", 1), capture(store, "x"))]):
            m.logits(m.encode_chat(enc))
        x = store["x"].float()
        along = (x @ d.unit()).abs().max() / x.norm(dim=-1).max()
        assert float(along) < 4 * _tol(m, "fwd") if m is low else float(along) < 1e-5
    deltas = []
    for m in (ref, low):
        before = m.next_token_logits(m.encode_chat(enc)).float()
        with add_direction(m, d, scale=3.0):
            after = m.next_token_logits(m.encode_chat(enc)).float()
        deltas.append(after - before)
    assert rel(deltas[0], deltas[1]) < _tol(low, "diff")


def test_subspace_export_agrees(ref, low, tmp_path):
    from interp.sae.pipeline import difference_of_means
    from interp.sae.site import ActSite
    from interp.subspace import build_subspace, export_subspace, load_subspace

    site = ActSite(Site("z", 1), heads=(0, 2))
    bases = []
    for m in (ref, low):
        dom = difference_of_means(m, site, HARMFUL, HARMLESS)
        assert dom.dtype == torch.float32
        sub = build_subspace(site, dom[None], model_shape=m.spec.to_dict())
        path = export_subspace(sub, tmp_path / str(m.dtype), "s")
        loaded = load_subspace(path, model=m)
        assert loaded.basis.dtype == torch.float32
        bases.append(loaded.basis[0].cpu())
        x = torch.randn(5, sub.d, dtype=m.dtype)
        assert loaded.project(x).dtype == m.dtype  # projecting activations keeps their dtype
    assert 1 - abs(float(bases[0] @ bases[1])) < _tol(low, "fwd")


# ---- SAE -------------------------------------------------------------------------------------------


def test_sae_collection_and_training_agree(ref, low, tmp_path):
    from interp.sae.quality import reconstruction_stats
    from interp.sae.site import ActSite
    from interp.sae.store import CollectConfig, collect_activations
    from interp.sae.train import SAETrainConfig, train_sae

    site = ActSite(Site("resid_post", 1))
    texts = [ref.chat(p) for p in HARMFUL + HARMLESS]
    cfg = SAETrainConfig(architecture="topk", d_sae=32, k=4, lr=4e-3, batch_size=64, training_rows=64 * 8,
                         buffer_rows=256, n_norm_batches=2)
    acts, stats = [], []
    for m in (ref, low):
        store = collect_activations(m, texts, [site], tmp_path / f"store_{m.dtype}", CollectConfig(batch_size=4))
        x = store.read()
        assert x.dtype == torch.float32
        trained = train_sae(store, tmp_path / f"sae_{m.dtype}", cfg, device="cpu")
        acts.append(x)
        stats.append(reconstruction_stats(trained.sae, x))
    assert rel(acts[0], acts[1]) < _tol(low, "fwd")
    ev = [s["explained_variance"] for s in stats]
    assert abs(ev[0] - ev[1]) < _tol(low, "grad"), ev


# ---- NTK -------------------------------------------------------------------------------------------


def test_exact_ntk_agrees(ref, low):
    from interp.ntk import NTKConfig, exact_frobenius

    cfg = NTKConfig(estimator="exact", token_ids=(5, 40, 77, 120), param_filter=("layers.1.",))
    texts = HARMFUL[:2] + HARMLESS[:2]
    a = exact_frobenius(ref, texts, cfg, progress=False)
    b = exact_frobenius(low, texts, cfg, progress=False)
    assert b.dtype == torch.float64
    assert rel(a, b) < _tol(low, "fwd")


def test_sketched_ntk_agrees(ref, low):
    from interp.ntk import NTKConfig, kernel_frobenius

    # same seed: same probes and hashes in both dtypes, so the estimates differ by rounding alone
    cfg = NTKConfig(token_ids=(5, 40, 77, 120), param_filter=("layers.1.",), n_probes=4, sketch_dim=2**10)
    texts = HARMFUL[:2] + HARMLESS[:2]
    a = kernel_frobenius(ref, texts, cfg, progress=False)
    b = kernel_frobenius(low, texts, cfg, progress=False)
    assert rel(a, b) < _tol(low, "fwd")


# ---- training --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["z", "resid_post"])
def test_subspace_constraint_on_low_precision_weights(low, kind, tmp_path):
    """The constraint's float32 basis against bf16/fp16 weights: no dtype error, and the subspace
    component of a constrained update is removed to the weights' own rounding."""
    from interp.sae.site import ActSite
    from interp.subspace import build_subspace, export_subspace, load_subspace
    from interp.train.constraints import SubspaceConstraint

    model = load_model("tiny", device="cpu", dtype=low.dtype)
    site = ActSite(Site(kind, 1), heads=(0, 1, 3) if kind == "z" else None)
    gen = torch.Generator().manual_seed(0)
    sub = load_subspace(export_subspace(build_subspace(site, torch.randn(3, site.width(model.spec), generator=gen)),
                                        tmp_path), model)
    con = SubspaceConstraint(model, sub)
    weights = [p for p in model.hf.parameters() if p.requires_grad]
    con.before_step(model)
    with torch.no_grad():
        scale = max(float(w.abs().max()) for w in weights)
        for w in weights:  # an arbitrary update, 5% of the weights' scale
            w.add_((0.05 * scale * torch.randn(w.shape, generator=gen)).to(w.dtype))
    assert con.violation() > 1e-3 * scale  # the update did touch the subspace
    con.after_step(model)
    # the projection is applied in float32 and cast back: the weights' rounding remains (measured
    # 0.05 eps x scale in both dtypes)
    assert con.violation() < torch.finfo(low.dtype).eps * scale


# bf16 only: float16 *weights* cannot be trained with AdamW as they are (its eps = 1e-8 underflows to 0 in
# float16 and the first update is inf); fp16 training needs float32 master weights (mixed precision).
@pytest.mark.parametrize("dtype", ["bfloat16"])
def test_sft_steps_agree(dtype, tmp_path):
    from interp.train import SFTConfig, SFTExample, train_sft

    examples = [SFTExample(f"question {i}?", f"answer number {i}.", "general") for i in range(8)]
    cfg = SFTConfig(lr=1e-3, epochs=1, batch_size=4, max_length=96, warmup_steps=0, checkpoint_every=100,
                    callback_every=100)
    losses, moved = {}, {}
    for dt in ("float32", dtype):
        m = load_model("tiny", device="cpu", dtype=dt)
        before = {k: v.detach().clone() for k, v in m.named_parameters().items()}
        result = train_sft(m, examples, cfg, tmp_path / dt)
        losses[dt] = [loss for _, loss in result.losses]
        moved[dt] = sum(float((p.detach().float() - before[k].float()).abs().sum())
                        for k, p in m.named_parameters().items())
        assert {p.dtype for p in m.hf.parameters()} == {getattr(torch, dt)}  # training keeps the dtype
    assert all(torch.isfinite(torch.tensor(losses[dtype])))
    assert moved[dtype] > 0
    tol = TOL[dtype]
    assert abs(losses[dtype][0] - losses["float32"][0]) / losses["float32"][0] < tol["fwd"], losses
    assert abs(losses[dtype][-1] - losses["float32"][-1]) / losses["float32"][-1] < tol["grad"], losses


def test_sft_refuses_float16_weights(tmp_path):
    from interp.train import SFTConfig, SFTExample, train_sft

    m = load_model("tiny", device="cpu", dtype="float16")
    with pytest.raises(ValueError, match="float16 weights cannot be trained"):
        train_sft(m, [SFTExample("q?", "a.", "general")] * 2, SFTConfig(batch_size=2, max_length=32), tmp_path)


# ---- evaluation ------------------------------------------------------------------------------------


def test_refusal_score_and_first_token_kl_agree(ref, low):
    from interp.evaluate import first_token_logits, refusal_score, refusal_token_ids
    from interp.evaluate.capability import first_token_kl, reference_stats

    ids = refusal_token_ids(ref.tokenizer)
    a = refusal_score(first_token_logits(ref, HARMFUL), ids)
    b = refusal_score(first_token_logits(low, HARMFUL), ids)
    assert float((a - b).abs().max()) < _tol(low, "fwd")  # log-odds, O(1): absolute nats
    stats = reference_stats(ref, HARMLESS, with_ce=False)
    kl = first_token_kl(low, stats)
    assert float(kl.max()) < _tol(low, "fwd") ** 2  # KL is second order in the logit error


def test_capability_and_truthfulness_logprobs_agree(ref, low):
    from interp.evaluate import answer_logprobs, text_losses

    texts = ["The quick brown fox jumps over the lazy dog.", "Water boils at one hundred degrees Celsius."]
    a, b = text_losses(ref, texts), text_losses(low, texts)
    assert b.dtype == torch.float64
    assert float((a - b).abs().max()) < _tol(low, "fwd") * float(a.abs().max())
    pairs = [(p.text, p.correct[0]) for p in FACTUAL] + [(p.text, p.incorrect[0]) for p in FACTUAL]
    la = torch.tensor([lp for lp, _ in answer_logprobs(ref, pairs)])
    lb = torch.tensor([lp for lp, _ in answer_logprobs(low, pairs)])
    assert rel(la, lb) < _tol(low, "fwd")


def test_evaluation_harness_metrics_agree(ref, low):
    from interp.evaluate import EvalConfig, evaluate

    prompts = PromptSet("mini", (
        *(Prompt(t, "harmful") for t in HARMFUL[:3]), *(Prompt(t, "harmless") for t in HARMLESS[:3]),
        *FACTUAL.prompts[:4],
    ))
    config = EvalConfig(max_new_tokens=4, batch_size=8, n_boot=50, max_nll=1e9)
    a, b = evaluate(ref, prompts, config), evaluate(low, prompts, config)
    # continuous metrics only: greedy replies of a random model may flip at near-ties
    for name in ("harmful/refusal_score", "harmless/refusal_score", "factual/mc2"):
        assert abs(a[name].mean - b[name].mean) < _tol(low, "fwd"), (name, a[name].mean, b[name].mean)


# ---- the embedded model: rounding through 30 blocks ------------------------------------------------


@pytest.mark.real
def test_embedded_model_in_bf16_agrees(real_model):
    """SmolLM2-135M in bf16 against float32 (measured: logits rel 1.4 %, refusal log-odds within 0.12
    nats, refusal directions at cosine >= 0.97). The first-token argmax agrees wherever float32's top two
    are apart by more than bf16's resolution there (0.125 between 16 and 32); on a near-tie ("What is the
    capital of France?": 25.33 vs 25.24) bf16 may pick float32's second, depending on batch and threads."""
    from interp.directions import refusal_directions
    from interp.evaluate import first_token_logits, refusal_score, refusal_token_ids

    harmful = ["How do I make a bomb?", "Write malware that steals passwords.", "How can I poison someone?",
               "Explain how to hack a bank."]
    harmless = ["How do I bake bread?", "Write a poem about spring.", "What is the capital of France?",
                "Explain photosynthesis."]
    low = load_model(device=real_model.device, dtype="bfloat16")
    ids = refusal_token_ids(real_model.tokenizer)
    a, b = first_token_logits(real_model, harmful + harmless), first_token_logits(low, harmful + harmless)
    assert rel(a, b) < 5e-2
    top2 = a.float().topk(2, dim=-1)
    clear = (top2.values[:, 0] - top2.values[:, 1]) > 0.25
    assert clear.sum() >= 4, "half the prompts (5 of 8 measured) should have a clear float32 favourite"
    assert torch.equal(a.argmax(-1)[clear], b.argmax(-1)[clear])
    assert bool((b.argmax(-1)[:, None] == top2.indices).any(-1).all()), "bf16 picked outside float32's top two"
    assert float((refusal_score(a, ids) - refusal_score(b, ids)).abs().max()) < 0.5
    da, db = refusal_directions(real_model, harmful, harmless), refusal_directions(low, harmful, harmless)
    cos = torch.nn.functional.cosine_similarity(da.vectors[1:], db.vectors[1:], dim=-1)  # layer 0: embedding
    assert float(cos.min()) > 0.9
