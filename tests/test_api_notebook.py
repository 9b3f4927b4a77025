"""The top-level API as a notebook uses it: a few lines per analysis, all on the tiny model."""

from __future__ import annotations

import subprocess
import sys

import pytest

import interp


def test_import_is_cheap_and_names_resolve_lazily():
    code = "import sys, interp; print(sorted(m for m in ('torch', 'transformer_lens', 'sae_lens') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # they come with the first name that needs them, not with `import interp`
    assert interp.HeadStudyConfig is __import__("interp.heads.study", fromlist=["x"]).HeadStudyConfig


def test_unknown_names_fail_naming_the_api():
    with pytest.raises(AttributeError, match="top-level API is .*load_model"):
        interp.load_modle  # noqa: B018
    assert {"load_model", "evaluate_model", "run_head_study", "train_sae", "refusal_directions"} <= set(dir(interp))


def test_no_export_is_shadowed_by_a_subpackage():
    """Importing ``interp.X`` binds ``X`` on the package, which would hide an export of that name."""
    from pathlib import Path

    package = Path(interp.__file__).parent
    submodules = {p.stem for p in package.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert not set(interp.__all__) & submodules


def test_a_notebook_on_the_tiny_model(tmp_path):
    model = interp.load_model("tiny")
    prompts = interp.builtin_prompts().split()

    # heads: refusal and truthfulness scores and their overlap
    study = interp.run_head_study(model, prompts.train, interp.HeadStudyConfig(n_prompts=3, n_permutations=20,
                                                                               batch_size=3, ks=(2, 4), figure_k=4))
    assert len(study.refusal.top_k(3)) == 3 and set(study.overlap.jaccard) == {2, 4}

    # a refusal direction, ablated while generating
    harmful, harmless = prompts.train.by_label("harmful").texts[:4], prompts.train.by_label("harmless").texts[:4]
    direction = interp.refusal_directions(model, harmful, harmless).at(1)
    before = interp.generate(model, harmful[:2], max_new_tokens=4, progress=False)
    with interp.ablate_direction(model, direction):
        after = interp.generate(model, harmful[:2], max_new_tokens=4, progress=False)
    assert len(before) == len(after) == 2

    # behaviour with confidence intervals
    result = interp.evaluate_model(model, prompts.test, interp.EvalConfig(max_prompts_per_class=2, max_new_tokens=4,
                                                                    n_boot=50, coherence=False))
    assert result.metrics["harmful/refusal_rate"].n == 2

    # an SAE on a head site
    site = interp.ActSite.parse("z:1", "0,1")
    store = interp.collect_activations(model, prompts.train.sample(12).texts, [site], tmp_path / "store")
    trained = interp.train_sae(store, tmp_path / "sae", interp.SAETrainConfig(d_sae=16, k=2, batch_size=32,
                                                                               training_rows=640))
    assert trained.sae.cfg.d_sae == 16
