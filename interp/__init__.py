"""interp: a workbench for the overlap of refusal and hallucination machinery in language models.

Data flows one way: prompts -> hooks/activations -> heads, directions, SAE features, kernels ->
exported subspaces -> interventions and fine-tuning -> evaluation -> figures.

The main analyses are importable from here, so a notebook is a few lines::

    import interp
    model = interp.load_model("tiny")                    # or the embedded default: interp.load_model()
    prompts = interp.builtin_prompts().split().train
    study = interp.run_head_study(model, prompts, interp.HeadStudyConfig(n_prompts=8))
    study.refusal.top_k(5), study.overlap.jaccard

Names resolve lazily (PEP 562), so ``import interp`` stays cheap: torch and transformer-lens load on the
first use of a name that needs them.
"""

from __future__ import annotations

import importlib

from interp.errors import InterpError

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # models, prompts, hooks
    "load_model": "interp.models", "Model": "interp.models",
    "load_prompts": "interp.data.registry", "load_prompt_sets": "interp.data.registry",
    "builtin_prompts": "interp.data.builtin", "PromptSet": "interp.data.prompts", "concat": "interp.data.prompts",
    "Site": "interp.hooks",
    # behaviour: generation, refusal, the evaluation harness, paired comparisons
    "generate": "interp.evaluate.generate", "is_refusal": "interp.evaluate.refusal",
    "refusal_score": "interp.evaluate.refusal", "evaluate_model": "interp.evaluate.harness",
    "EvalConfig": "interp.evaluate.harness", "compare": "interp.evaluate.compare",
    # heads, directions, interventions
    "run_head_study": "interp.heads.study", "write_head_study": "interp.heads.study",
    "HeadStudyConfig": "interp.heads.study", "refusal_directions": "interp.directions",
    "truth_directions": "interp.directions", "add_direction": "interp.interventions",
    "ablate_direction": "interp.interventions", "steer_heads": "interp.interventions",
    "mean_ablate_heads": "interp.interventions",
    # SAEs and subspaces
    "ActSite": "interp.sae.site", "collect_activations": "interp.sae.store", "CollectConfig": "interp.sae.store",
    "train_sae": "interp.sae.train", "load_sae": "interp.sae.train", "SAETrainConfig": "interp.sae.train",
    "run_attribution": "interp.sae.pipeline", "subspace_from_sae": "interp.subspace",
    "export_subspace": "interp.subspace", "load_subspace": "interp.subspace",
    # gradient kernels, training, the report
    "kernel_similarity": "interp.ntk.similarity", "NTKConfig": "interp.ntk.config",
    "align": "interp.train.align", "AlignConfig": "interp.train.align", "train_sft": "interp.train.sft",
    "SFTConfig": "interp.train.sft", "write_report": "interp.reporting.html",
}
"""Public name -> module that defines it."""

__all__ = ["InterpError", *_EXPORTS]


_RENAMED = {"evaluate_model": "evaluate"}
"""Exports named apart from their definition: ``interp.evaluate`` is the subpackage (importing any of it binds
that name on this package), so its harness function is ``interp.evaluate_model`` (= ``interp.evaluate.evaluate``)."""


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'interp' has no attribute {name!r}; the top-level API is {sorted(__all__)}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
