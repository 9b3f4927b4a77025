"""LoRA experts as peft adapters: train one per domain, put many on one model, save and load them.

Training goes through the workbench's trainer (:func:`interp.train.sft.train_sft` with
``SFTConfig.lora``), which writes ``out_dir/adapter`` in PEFT's plain-HF layout (keys without the
bridge's ``_original_component``), loadable by ``PeftModel.from_pretrained`` into a plain HF model.
An expert is trained with ``SFTConfig(save_model=False)``: only its adapter is written.

On the routed model every expert is a named peft adapter of one ``LoraModel`` (peft's multi-adapter
support): :func:`load_experts` injects them and copies the saved weights in, mapping the plain keys
onto the bridged module names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from interp.errors import DataFormatError, InterpError
from interp.train.examples import SFTExample
from interp.train.lora import ADAPTER_FILE, LoRAConfig, adapter_config, adapter_params


@dataclass(frozen=True)
class ExpertSpec:
    """Where one trained expert lives."""

    name: str
    """Adapter name on the routed model (the harm domain)."""
    path: Path
    """Folder with ``adapter_model.safetensors``, ``adapter_config.json`` and ``interp.json``."""


def train_expert(load_base: Callable[[], object], examples: Sequence[SFTExample], sft_config, out_dir: str | Path,
                 provenance: dict | None = None) -> Path:
    """Train one expert on a fresh base model; returns its adapter folder (``out_dir/adapter``).

    Resumable: a finished adapter is returned as is; an interrupted run resumes from the trainer's
    checkpoint. Only the adapter is written (``save_model=False``).
    """
    from interp.train.sft import train_sft

    if sft_config.lora is None:
        raise InterpError("an expert is a LoRA adapter: SFTConfig.lora must be set")
    out_dir = Path(out_dir)
    adapter = out_dir / "adapter"
    if (adapter / ADAPTER_FILE).exists():
        return adapter
    train_sft(load_base(), examples, replace(sft_config, save_model=False), out_dir, provenance=provenance)
    return adapter


def _add_adapter(model, tuner, name: str, config: LoRAConfig, seed: int):
    from peft.tuners.lora import LoraModel

    peft_config = config.peft_config(model.hf)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if tuner is None:
            return LoraModel(model.hf, peft_config, name)
        tuner.peft_config[name] = peft_config
        tuner.inject_adapter(model.hf, name)
        return tuner


def load_experts(model, experts: Sequence[ExpertSpec], tuner=None):
    """Inject every expert as a named adapter (frozen) and load its weights; returns the peft tuner.

    Pass ``tuner`` to add to a model that already has adapters. Missing or extra keys fail loudly.
    """
    names = [e.name for e in experts]
    if len(set(names)) != len(names):
        raise InterpError(f"expert names must be unique, got {names}")
    for i, spec in enumerate(experts):
        tuner = _add_adapter(model, tuner, spec.name, adapter_config(spec.path), seed=i)
        saved = load_file(spec.path / ADAPTER_FILE)
        wanted = adapter_params(model.hf, spec.name)
        if set(wanted) != set(saved):
            extra, missing = sorted(set(saved) - set(wanted)), sorted(set(wanted) - set(saved))
            raise DataFormatError(f"adapter {spec.path} does not fit the model: {len(missing)} missing keys "
                                  f"(e.g. {missing[:1]}), {len(extra)} unexpected (e.g. {extra[:1]})")
        with torch.no_grad():
            for key, p in wanted.items():
                p.copy_(saved[key].to(p.device, p.dtype))
    for raw, p in model.hf.named_parameters():
        if "lora_" in raw:
            p.requires_grad_(False)
    return tuner


def add_random_experts(model, tuner, like: Mapping[str, str], seed: int = 0) -> list[str]:
    """Control experts: for each ``new name -> trained expert``, Gaussian A and B with the trained one's norms.

    peft's own initialisation sets B = 0 (a no-op expert); these change the model by as much as the
    trained experts do, in random directions.
    """
    from peft.tuners.lora import LoraLayer

    g = torch.Generator().manual_seed(seed)
    for i, (new, src) in enumerate(like.items()):
        config = tuner.peft_config[src]
        tuner.peft_config[new] = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + i)
            tuner.inject_adapter(model.hf, new)
        with torch.no_grad():
            for m in model.hf.modules():
                if isinstance(m, LoraLayer) and new in m.lora_A:
                    for mats in (m.lora_A, m.lora_B):
                        ref, w = mats[src].weight, mats[new].weight
                        r = torch.randn(w.shape, generator=g, dtype=torch.float32)
                        w.copy_((r * ref.float().norm() / r.norm()).to(w.device, w.dtype))
    for raw, p in model.hf.named_parameters():
        if "lora_" in raw:
            p.requires_grad_(False)
    return list(like)


MERGES: dict[str, Callable[[int], list[float]]] = {
    "uniform": lambda n: [1.0 / n] * n,
    "negation": lambda n: [-1.0 / n] * n,
}
"""Static merges of the experts with peft's ``add_weighted_adapter``: name -> weights for n experts."""


def add_merges(tuner, experts: Sequence[str], merges: Sequence[str] = tuple(MERGES)) -> list[str]:
    """Add ``merge_<name>`` adapters (``cat``: the exact weighted sum of the experts' updates)."""
    out = []
    for m in merges:
        if m not in MERGES:
            raise InterpError(f"unknown merge {m!r}; known: {sorted(MERGES)}")
        name = f"merge_{m}"
        tuner.add_weighted_adapter(list(experts), MERGES[m](len(experts)), name, combination_type="cat")
        out.append(name)
    for raw, p in tuner.model.named_parameters():
        if "lora_" in raw:
            p.requires_grad_(False)
    return out
