"""Settings of a SafeMoE run (corpora, experts, routers, evaluation)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from interp.safemoe.domains import DOMAINS
from interp.safemoe.router import RouterConfig
from interp.train.lora import LoRAConfig
from interp.train.sft import SFTConfig

HARM_SOURCES: tuple[str, ...] = ("catqa", "harmfulqa", "jbb", "builtin")
"""Prompt sources with harm domains (corpora and expert training use their training halves)."""
EVAL_HARMFUL: tuple[str, ...] = ("advbench", "harmbench", "catqa", "harmfulqa")
"""Harmful benchmarks scored on their held-out halves."""


def _expert_sft() -> SFTConfig:
    return SFTConfig(lr=2e-4, epochs=2, batch_size=8, max_length=256, warmup_steps=4, checkpoint_every=20,
                     lora=LoRAConfig(rank=8, alpha=16.0))


@dataclass(frozen=True)
class SafeMoEConfig:
    """What a SafeMoE run builds and scores."""

    domains: tuple[str, ...] = DOMAINS
    """Harm domains that get an expert."""
    harm_sources: tuple[str, ...] = HARM_SOURCES
    """Sources of the per-domain corpora (their training halves)."""
    train_per_domain: int = 64
    """Training prompts per domain (seeded subsample of the training halves)."""
    heldout_per_domain: int = 16
    """Held-out prompts per domain for the expert-isolation loss matrix."""
    corpus_tokens: int = 96
    """Tokens generated per corpus reply."""
    harmless_train: int = 80
    """Harmless training prompts (with the model's own answers) in the router's data."""
    expert_sft: SFTConfig = field(default_factory=_expert_sft)
    """Trainer settings of every expert (and of the no-expert safe LoRA control); ``lora`` must be set."""
    router: RouterConfig = field(default_factory=RouterConfig)
    """Router shape and training."""
    zero_shot_holdout: tuple[str, ...] = ("privacy", "sexual", "misinformation")
    """Domains whose safe-informative replies the zero-shot router never sees."""
    eval_harmful: tuple[str, ...] = EVAL_HARMFUL
    """Harmful benchmarks evaluated (held-out halves)."""
    eval_per_source: int = 40
    """Held-out prompts per evaluated source (seeded subsample)."""
    eval_tokens: int = 64
    """Tokens generated per evaluated reply."""
    batch_size: int = 16
    """Generation batch size."""
    seed: int = 0
    """Seed of subsampling and random-expert controls."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.domains) - set(DOMAINS))
        if unknown or len(self.domains) < 2:
            raise ValueError(f"SafeMoEConfig.domains must be >= 2 of {list(DOMAINS)}, got {list(self.domains)}")
        if self.expert_sft.lora is None:
            raise ValueError("SafeMoEConfig.expert_sft.lora must be set: experts are LoRA adapters")
        if not set(self.zero_shot_holdout) <= set(self.domains):
            raise ValueError(f"zero_shot_holdout {list(self.zero_shot_holdout)} must be among domains "
                             f"{list(self.domains)}")
        if len(self.zero_shot_holdout) >= len(self.domains):
            raise ValueError("zero_shot_holdout must leave at least one domain to train the router on")
        bad = sorted(set(self.harm_sources) - set(HARM_SOURCES))
        if bad:
            raise ValueError(f"unknown harm sources {bad}; known: {list(HARM_SOURCES)}")
        if min(self.train_per_domain, self.heldout_per_domain, self.eval_per_source, self.harmless_train) < 1:
            raise ValueError(f"per-domain and per-source counts must be >= 1: {self}")

    def to_dict(self) -> dict:
        return asdict(self)
