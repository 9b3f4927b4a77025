"""A small figures folder for the explorer tests, made by the real pipeline functions on the tiny model.

``heads/``: :func:`run_head_study` + :func:`write_head_study` (with probes and candidate patching);
``sae/``: activation store -> sae-lens SAE -> quality -> attribution (with feature pages);
``direction/``: a difference-of-means refusal direction. No hand-written result JSON.
"""

from __future__ import annotations

import functools
from pathlib import Path
from unittest import mock

import torch

import interp.heads.study
from interp.data.registry import load_prompt_sets
from interp.directions import refusal_directions
from interp.figures import save_figure
from interp.heads.study import HeadStudyConfig, run_head_study, write_head_study
from interp.hooks import Site
from interp.io import write_json
from interp.models import load_model
from interp.sae.attribution import ClassifyConfig
from interp.sae.pipeline import corpus_texts, run_attribution, write_attribution
from interp.sae.quality import sae_quality
from interp.sae.site import ActSite
from interp.sae.store import CollectConfig, collect_activations
from interp.sae.train import SAETrainConfig, train_sae

PROMPTS = ("builtin:harmful", "builtin:harmless", "builtin:factual")


_BUILT: dict[str, Path] = {}


def shared_figures(tmp_path_factory) -> Path:
    """The fixture folder, built once per test session (both explorer test files use it)."""
    if "figures" not in _BUILT:
        _BUILT["figures"] = build_figures(tmp_path_factory.mktemp("explore"))
    return _BUILT["figures"]


def build_figures(root: Path) -> Path:
    """Write the fixture figures folder under ``root`` and return it (about 15 s on one core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _build(Path(root))
    finally:
        torch.set_num_threads(threads)


def _build(root: Path) -> Path:
    figures = root / "figures"
    model = load_model("tiny", device="cpu")
    prompts = load_prompt_sets(PROMPTS)
    cfg = HeadStudyConfig(n_prompts=4, ks=(2, 4), figure_k=4, n_permutations=20, batch_size=4, probes=True,
                          candidate_k=2)
    # No PNGs: kaleido would start a Chromium per figure; the explorer reads the JSON only.
    with mock.patch.object(interp.heads.study, "save_figure", functools.partial(save_figure, png=False)):
        write_head_study(model, run_head_study(model, prompts, cfg), figures / "heads")

    # The store (and so every feature page's examples) holds harmless and factual prompts only, so no
    # harmful text reaches the pages or their screenshots.
    corpus = (prompts.by_label("harmless") + prompts.by_label("factual")).sample(24, seed=0)
    texts, labels = corpus_texts(model, corpus)
    site = ActSite(Site("z", 1), heads=(0, 2))
    store = collect_activations(model, texts, [site], root / "runs" / "store", CollectConfig(batch_size=8),
                                labels, {"prompts": corpus.name})
    tcfg = SAETrainConfig(architecture="topk", d_sae=32, k=4, batch_size=64, training_rows=3200, lr=3e-3,
                          buffer_rows=1024)
    trained = train_sae(store, root / "runs" / "sae", tcfg, device="cpu")
    q = sae_quality(trained.sae, trained.site, store.read(), model, texts[:4], provenance=trained.provenance)
    write_json(figures / "sae" / "sae_quality.json", q.to_dict())
    attr, checks = run_attribution(model, trained.sae, trained.site, prompts, 3, "full",
                                   ClassifyConfig(hi=0.05, lo=0.05))
    attr.provenance["sae"] = str(trained.path)
    write_attribution(attr, checks, figures / "sae", trained.sae, store, model.tokenizer, model=model)

    harmful = prompts.by_label("harmful").sample(4, seed=0).texts
    harmless = prompts.by_label("harmless").sample(4, seed=0).texts
    refusal_directions(model, harmful, harmless).at(1).save(figures / "direction" / "refusal_direction")
    return figures
