"""Safety-alignment recipes: STL, STL-aug and DCR (contrastive refinement, then STL).

STL (Safety-Tuned LLaMAs) mixes general instruction pairs with (harmful prompt, refusal) pairs. With
no instruction data offline, the general responses are the model's own greedy answers to harmless
prompts (self-distillation keeps its behaviour). STL-aug adds (seemingly harmful prompt, helpful
answer) pairs. DCR runs :func:`interp.train.contrastive.contrastive_refine` first, then STL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from interp.data.prompts import PromptSet
from interp.distributed import barrier, world
from interp.errors import EmptyPromptClassError
from interp.io import write_json
from interp.train.contrastive import ContrastiveConfig, contrastive_refine
from interp.train.examples import SFTExample
from interp.train.sft import Callback, SFTConfig, TrainResult, train_sft

log = logging.getLogger(__name__)

Recipe = Literal["stl", "stl-aug", "dcr"]
RECIPES: tuple[str, ...] = ("stl", "stl-aug", "dcr")


@dataclass(frozen=True)
class AlignConfig:
    """Which recipe, how much data of each kind, and the optimiser settings."""

    recipe: Recipe = "stl"
    """``stl``, ``stl-aug`` or ``dcr``."""
    n_refusal: int = 320
    """(harmful prompt, refusal) pairs."""
    n_general: int = 320
    """(harmless prompt, self-distilled answer) pairs."""
    n_helpful: int = 120
    """(seemingly harmful prompt, helpful answer) pairs, ``stl-aug`` only."""
    distill_tokens: int = 48
    """Length of the self-distilled general answers."""
    sft: SFTConfig = field(default_factory=SFTConfig)
    """Supervised stage."""
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    """Contrastive stage (``dcr`` only)."""
    seed: int = 0
    """Seed of the data sampling."""

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; expected one of {RECIPES}")


@dataclass(frozen=True)
class AlignData:
    """Training prompts of each role; callers pass training splits only (never evaluation prompts)."""

    harmful: PromptSet
    """Prompts answered with a refusal in SFT."""
    harmless: PromptSet
    """Prompts answered with the model's own greedy answer."""
    seemingly: PromptSet
    """Seemingly harmful prompts: helpful answers (stl-aug) and the contrastive stage's first class (dcr)."""
    contrast_harmful: PromptSet
    """Harmful prompts of the contrastive stage (disjoint from ``harmful``)."""
    refusals: Sequence[str]
    """Refusal responses to draw from."""

    def check(self, recipe: str) -> None:
        needed = {"harmful": self.harmful, "harmless": self.harmless}
        if recipe != "stl":
            needed["seemingly"] = self.seemingly
        if recipe == "dcr":
            needed["contrast_harmful"] = self.contrast_harmful
        for name, ps in needed.items():
            if not len(ps):
                raise EmptyPromptClassError(f"recipe {recipe!r} needs {name} prompts, got none")
        if not self.refusals:
            raise EmptyPromptClassError("no refusal responses given")
        overlap = {p.text.strip().lower() for p in self.harmful} & {
            p.text.strip().lower() for p in self.contrast_harmful}
        if recipe == "dcr" and overlap:
            raise ValueError(f"contrastive and SFT harmful prompts overlap ({len(overlap)} prompts)")


def _cache_key(model, prompts: Sequence[str], tokens: int) -> str:
    h = hashlib.sha1(f"{model.name}\x00{model.provenance.get('checkpoint', '')}\x00{tokens}".encode())
    for p in prompts:
        h.update(p.encode() + b"\x00")
    return h.hexdigest()[:16]


def self_distilled(model, prompts: Sequence[str], max_new_tokens: int, cache_dir: Path | None) -> list[str]:
    """The model's own greedy answers, cached on disk by (model, prompts, length)."""
    from interp.evaluate.generate import generate

    path = cache_dir / f"distill-{_cache_key(model, prompts, max_new_tokens)}.json" if cache_dir else None
    if path is not None and path.exists():
        return json.loads(path.read_text())
    answers = generate(model, list(prompts), max_new_tokens=max_new_tokens, batch_size=32)
    if path is not None and world().is_main:  # every process has the answers; one writes them
        write_json(path, answers)
    return answers


def _take(ps: PromptSet, n: int, seed: int) -> PromptSet:
    return ps.dedupe().sample(n, seed=seed)


def build_examples(model, data: AlignData, config: AlignConfig, cache_dir: Path | None) -> list[SFTExample]:
    """The SFT mixture of a recipe, shuffled."""
    rng = random.Random(config.seed)
    harmful = _take(data.harmful, config.n_refusal, config.seed)
    examples = [SFTExample(p.text, rng.choice(list(data.refusals)), "refusal") for p in harmful]
    harmless = _take(data.harmless, config.n_general, config.seed)
    answers = self_distilled(model, harmless.texts, config.distill_tokens, cache_dir)
    examples += [SFTExample(p.text, a, "general") for p, a in zip(harmless, answers, strict=True) if a.strip()]
    if config.recipe == "stl-aug":
        seem = _take(data.seemingly, config.n_helpful, config.seed)
        missing = [p.text for p in seem if not p.response]
        distilled = dict(zip(missing, self_distilled(model, missing, config.distill_tokens, cache_dir),
                             strict=True)) if missing else {}
        examples += [SFTExample(p.text, p.response or distilled[p.text], "helpful") for p in seem
                     if (p.response or distilled[p.text]).strip()]
    rng.shuffle(examples)
    return examples


def align(
    model,
    data: AlignData,
    config: AlignConfig,
    out_dir: str | Path,
    callbacks: Sequence[Callback] = (),
    cache_dir: str | Path | None = None,
) -> TrainResult:
    """Run a recipe on ``model`` in place; the aligned checkpoint lands in ``out_dir/model``.

    ``callbacks`` run during every stage; DCR's contrastive records come first in the history, at
    negative steps (0 is the start of the supervised stage).
    """
    data.check(config.recipe)
    out_dir = Path(out_dir)
    cache = Path(cache_dir) if cache_dir else out_dir.parent / "cache"
    # Self-distillation uses the model before any training, so all recipes share the same answers.
    examples = build_examples(model, data, config, cache)
    contrastive = None
    if config.recipe == "dcr":
        done = out_dir / "contrastive.json"
        stage_dir = out_dir / "contrastive_model"
        if (stage_dir / "config.json").exists() and done.exists():
            from interp.models.load import load_model

            model = load_model(str(stage_dir), device=model.device, dtype=model.dtype)  # not back to fp32
            contrastive = json.loads(done.read_text())
        else:
            contrastive = asdict(contrastive_refine(
                model, data.seemingly.dedupe(), data.contrast_harmful.dedupe(), config.contrastive, out_dir,
                callbacks=callbacks))
            if world().is_main:  # under accelerate launch every process ran the (replicated) stage alike
                model.save(stage_dir, extra={"stage": "dcr-contrastive"})
            barrier()
    provenance = {
        "recipe": config.recipe,
        "align_config": asdict(config),
        "data": {k: {"name": getattr(data, k).name, "n": len(getattr(data, k))}
                 for k in ("harmful", "harmless", "seemingly", "contrast_harmful")},
        "base_model": model.name,
    }
    if contrastive is not None:
        provenance["contrastive_final_loss"] = contrastive["losses"][-1] if contrastive["losses"] else None
    return train_sft(model, examples, config.sft, out_dir, callbacks=callbacks, provenance=provenance,
                     history_prefix=contrastive_prefix(contrastive))


def contrastive_prefix(contrastive: dict | None) -> list[dict]:
    """The contrastive stage's callback records at steps -S..-1 (S its length), so one history covers DCR.

    Its final record is left out: the SFT stage measures the same weights at its step 0.
    """
    if not contrastive:
        return []
    steps = contrastive["config"]["steps"]
    return [{**r, "step": r["step"] - steps, "stage": "contrastive"}
            for r in contrastive.get("history", []) if r["step"] < steps]


def suite_align_data(data_dir=None, n_contrast: int = 250, seed: int = 0) -> AlignData:
    """Alignment data from the standard suites' training halves (see :mod:`interp.data.suites`).

    The harmful training pool is split in two disjoint parts: ``n_contrast`` prompts for the
    contrastive stage and the rest for SFT refusals, so no prompt is used twice.
    """
    from interp.data.builtin import builtin_refusals
    from interp.data.suites import load_suite

    pool = load_suite("harmful", data_dir).train().dedupe()
    shuffled = pool.sample(len(pool), seed=seed).prompts
    order = random.Random(seed).sample(range(len(shuffled)), len(shuffled))
    n_contrast = min(n_contrast, len(order) // 2)
    contrast = PromptSet("harmful:contrast", tuple(shuffled[i] for i in order[:n_contrast]))
    sft = PromptSet("harmful:sft", tuple(shuffled[i] for i in order[n_contrast:]))
    return AlignData(
        harmful=sft,
        harmless=load_suite("harmless", data_dir).train().dedupe(),
        seemingly=load_suite("seemingly_harmful", data_dir).train().dedupe(),
        contrast_harmful=contrast,
        refusals=builtin_refusals(),
    )


def align_data_selection(data_dir=None, seed: int = 0, probes_per_class: int = 12):
    """Every pool a recipe trains on (``suite_align_data``) and the held-out probes tracked during training."""
    from interp.data.selection import DataSelection
    from interp.train.tracking import probe_prompts

    data = suite_align_data(data_dir, seed=seed)
    train = {k: getattr(data, k) for k in ("harmful", "harmless", "seemingly", "contrast_harmful")}
    return DataSelection("align", train, {"probes": probe_prompts(data_dir, probes_per_class),
                                          "kernel_probes": probe_prompts(data_dir, probes_per_class, seed=1)})
