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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

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
Protect = Literal["none", "freeze", "lr"]
PROTECTS: tuple[str, ...] = get_args(Protect)


PAPER_MIXTURE = {"n_refusal": 64, "n_general": 1216}
"""The DCR paper's STL mixture, ~5% refusals (1k refusals in 21k examples), at this workbench's scale."""


@dataclass(frozen=True)
class AlignConfig:
    """Which recipe, how much data of each kind, and the optimiser settings."""

    recipe: Recipe = "stl"
    """``stl``, ``stl-aug`` or ``dcr``."""
    n_refusal: int = 320
    """(harmful prompt, refusal) pairs. The default 320 + 320 (half refusals) is the STL model the README's
    numbers describe; it teaches a global refusal prior that DCR cannot undo. The paper's mixture is ~5%
    refusals (1k in 21k): ``n_refusal=64, n_general=1216`` (``PAPER_MIXTURE``, ``--refusal-fraction 0.05``)."""
    n_general: int = 320
    """(harmless prompt, self-distilled answer) pairs; the answers are cached per prompt (see
    :func:`self_distilled`), so every recipe and seed reuses them."""
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
    protect: Protect = "none"
    """What the supervised stage does to the layers that hold the contrastive stage's separation (the
    embeddings and blocks ``0..l``): ``none`` trains them like the rest, ``freeze`` keeps them fixed,
    ``lr`` trains them at ``protect_lr_scale`` times the learning rate."""
    protect_lr_scale: float = 0.1
    """Learning-rate factor of the protected layers under ``protect="lr"``."""
    protect_layer: int | None = None
    """The ``l`` protected (None: ``contrastive.layer``)."""

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; expected one of {RECIPES}")
        if self.protect not in PROTECTS:
            raise ValueError(f"protect must be one of {PROTECTS}, got {self.protect!r}")
        if not 0 < self.protect_lr_scale <= 1:
            raise ValueError(f"protect_lr_scale must be in (0, 1], got {self.protect_lr_scale}")
        if self.n_refusal < 0 or self.n_general < 0 or self.n_helpful < 0 or self.n_refusal + self.n_general == 0:
            raise ValueError(f"example counts must be >= 0 and not all zero, got n_refusal={self.n_refusal}, "
                             f"n_general={self.n_general}, n_helpful={self.n_helpful}")

    @property
    def refusal_share(self) -> float:
        """Refusals' share of the STL mixture (refusals over refusals plus general examples)."""
        return self.n_refusal / (self.n_refusal + self.n_general)

    @property
    def protected_layer(self) -> int:
        return self.contrastive.layer if self.protect_layer is None else self.protect_layer


def protected_sft(model, config: AlignConfig) -> SFTConfig:
    """``config.sft`` with the protection of :attr:`AlignConfig.protect` applied to ``model``'s layers.

    The protected parameters are the embeddings and blocks ``0..l``: everything that computes block
    ``l``'s output, where the contrastive stage separated the classes (tied embeddings are frozen by
    default anyway). Prefixes end in a dot, so LoRA adapters inside those blocks are covered too.
    """
    if config.protect == "none":
        return config.sft
    layer = config.protected_layer
    if not 0 <= layer < model.spec.n_layers:
        raise ValueError(f"protected layer {layer} out of range for a {model.spec.n_layers}-layer model")
    arch = model.arch
    head = (*arch.embedding_prefixes, *(arch.block_prefix(i) for i in range(layer + 1)))
    if config.protect == "freeze":
        return replace(config.sft, frozen=tuple(dict.fromkeys((*config.sft.frozen, *head))))
    return replace(config.sft, lr_scales=(*((p, config.protect_lr_scale) for p in head), *config.sft.lr_scales))


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


def _cache_key(model, tokens: int) -> str:
    h = hashlib.sha1(f"{model.name}\x00{model.provenance.get('checkpoint', '')}\x00{tokens}".encode())
    return h.hexdigest()[:16]


def distill_cache_path(model, max_new_tokens: int, cache_dir: Path) -> Path:
    """Where :func:`self_distilled` keeps ``model``'s answers of this length (one file per model)."""
    return Path(cache_dir) / f"distill-{_cache_key(model, max_new_tokens)}.json"


def self_distilled(model, prompts: Sequence[str], max_new_tokens: int, cache_dir: Path | None,
                   chunk: int = 64) -> list[str]:
    """The model's own greedy answers, in the order of ``prompts``, cached per prompt and resumable.

    The cache (one JSON object ``{"answers": {prompt: answer}}`` per model and answer length) grows
    ``chunk`` prompts at a time, so an interrupted generation resumes after the last chunk written, and
    recipes and seeds that draw other prompts from the same pool generate only the answers still missing.
    """
    from interp.evaluate.generate import generate

    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    path = distill_cache_path(model, max_new_tokens, cache_dir) if cache_dir else None
    cached: dict[str, str] = {}
    if path is not None and path.exists():
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict) or not isinstance(saved.get("answers"), dict):
            raise ValueError(f"{path} is not a self-distillation cache ({{'answers': {{prompt: answer}}}}); delete it")
        cached = saved["answers"]
    missing = list(dict.fromkeys(p for p in prompts if p not in cached))
    if missing:
        log.info("self-distilling %d answers (%d cached) of %s", len(missing), len(cached), model.name)
    for start in range(0, len(missing), chunk):
        part = missing[start:start + chunk]
        cached.update(zip(part, generate(model, part, max_new_tokens=max_new_tokens, batch_size=32,
                                         progress=False), strict=True))
        if path is not None and world().is_main:  # every process has the answers; one writes them
            write_json(path, {"model": model.name, "max_new_tokens": max_new_tokens, "answers": cached})
    return [cached[p] for p in prompts]


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
    contrastive_callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Run a recipe on ``model`` in place; the aligned checkpoint lands in ``out_dir/model``.

    ``callbacks`` run during every stage, ``contrastive_callbacks`` (e.g. a
    :class:`~interp.train.contrastive_diagnostic.SeparationCallback`) during DCR's contrastive stage
    only; the contrastive records come first in the history, at negative steps (0 is the start of the
    supervised stage). ``config.protect`` shields the layers ``<= l`` in the supervised stage.
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
                callbacks=(*callbacks, *map(_stage_only, contrastive_callbacks))))
            if world().is_main:  # under accelerate launch every process ran the (replicated) stage alike
                model.save(stage_dir, extra={"stage": "dcr-contrastive"})
            barrier()
    provenance = {
        "recipe": config.recipe,
        "align_config": asdict(config),
        "data": {k: {"name": getattr(data, k).name, "n": len(getattr(data, k))}
                 for k in ("harmful", "harmless", "seemingly", "contrast_harmful")},
        "base_model": model.name,
        "refusal_share": config.refusal_share,
    }
    if contrastive is not None:
        provenance["contrastive_final_loss"] = contrastive["losses"][-1] if contrastive["losses"] else None
    return train_sft(model, examples, protected_sft(model, config), out_dir, callbacks=callbacks,
                     provenance=provenance,
                     history_prefix=contrastive_prefix(contrastive))


def contrastive_prefix(contrastive: dict | None) -> list[dict]:
    """The contrastive stage's callback records at steps -S..0 (S its length), so one history covers DCR.

    Its final records are left out where the SFT stage measures the same weights at its step 0 (the
    shared callbacks); those of stage-only callbacks (marked ``stage_only``) are kept, at step 0.
    """
    if not contrastive:
        return []
    steps = contrastive["config"]["steps"]
    return [{**r, "step": r["step"] - steps, "stage": "contrastive"}
            for r in contrastive.get("history", []) if r["step"] < steps or r.get("stage_only")]


def _stage_only(callback: Callback) -> Callback:
    """``callback`` with its records marked ``stage_only`` (see :func:`contrastive_prefix`)."""

    def run(model, step: int) -> list[dict]:
        return [{**r, "stage_only": True} for r in callback(model, step) or []]

    return run


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
