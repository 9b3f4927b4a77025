"""LoRA adapters (peft) on the bridged model: inject in place, save as a plain PEFT adapter, merge.

The TransformerBridge wraps every ``nn.Linear`` in a ``LinearBridge`` that peft refuses to adapt, so
the adapters go onto the wrapped ``._original_component`` linears; the bridge's hooks keep firing
because the wrappers stay where they are. peft's ``LoraModel`` injects into ``model.hf`` in place
(``get_peft_model`` would wrap it in a ``PeftModel`` the bridge knows nothing about).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from interp.errors import DataFormatError, InterpError
from interp.io import atomic_dir
from interp.models.params import clean_name

_WRAPPER = "._original_component"
ADAPTER_PREFIX = "base_model.model."
"""How PEFT names the keys of a saved adapter (``PeftModel`` -> ``LoraModel`` -> the HF model)."""
ADAPTER_FILE = "adapter_model.safetensors"
"""PEFT's file name of an adapter's weights."""


@dataclass(frozen=True)
class LoRAConfig:
    """Low-rank adapters trained instead of the full weights."""

    rank: int = 8
    """Rank r of every adapter."""
    alpha: float = 16.0
    """Scale numerator: the update is ``(alpha / rank) * B @ A``."""
    dropout: float = 0.0
    """Dropout on the adapter input (0 keeps training deterministic)."""
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    """Names of the linear modules that get an adapter (the last part of the module name)."""

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha <= 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"invalid LoRAConfig: {self}")
        if isinstance(self.targets, str) or not self.targets:
            raise ValueError(f"LoRAConfig.targets must be a non-empty tuple of module names, got {self.targets!r}")

    def peft_config(self, hf_model: torch.nn.Module | None = None):
        """The peft ``LoraConfig``; given the (bridged) model, its targets point inside the bridge wrappers."""
        from peft import LoraConfig

        names = "|".join(self.targets)
        wrapped = hf_model is not None and any(n.endswith(_WRAPPER) and n[: -len(_WRAPPER)].rsplit(".", 1)[-1]
                                               in self.targets for n, _ in hf_model.named_modules())
        targets = rf".*\.({names}){_WRAPPER.replace('.', chr(92) + '.')}" if wrapped else list(self.targets)
        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets,
                          bias="none", task_type="CAUSAL_LM")


def apply_lora(model, config: LoRAConfig, seed: int = 0):
    """Inject adapters into ``model.hf`` in place and freeze every other weight; returns the peft tuner.

    The adapters' random initialisation is seeded, so every process (and a resumed run) starts alike.
    """
    from peft.tuners.lora import LoraModel

    if lora_layers(model.hf):
        raise ValueError(f"model {model.name!r} already has LoRA adapters")
    peft_config = config.peft_config(model.hf)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            tuner = LoraModel(model.hf, peft_config, "default")
        except ValueError as e:
            raise ValueError(f"cannot put LoRA adapters on modules {list(config.targets)} of {model.name!r}: "
                             f"{e}") from e
    for name, p in model.hf.named_parameters():
        p.requires_grad_("lora_" in name)
    return tuner


def lora_layers(hf_model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Raw module name -> peft LoRA layer."""
    from peft.tuners.lora import LoraLayer

    return {n: m for n, m in hf_model.named_modules() if isinstance(m, LoraLayer)}


def adapter_params(hf_model: torch.nn.Module, adapter_name: str = "default") -> dict[str, torch.nn.Parameter]:
    """Adapter ``adapter_name``'s parameters under the keys ``PeftModel.from_pretrained`` reads for a plain
    HF model: ``...q_proj._original_component.lora_A.NAME.weight`` -> ``base_model.model....q_proj.lora_A.weight``."""
    tag = f".{adapter_name}."
    return {ADAPTER_PREFIX + clean_name(raw).replace(tag, "."): p
            for raw, p in hf_model.named_parameters() if "lora_" in raw and tag in raw}


def adapter_state_dict(hf_model: torch.nn.Module, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """Detached CPU copies of :func:`adapter_params` (what an adapter file holds)."""
    out = {k: p.detach().contiguous().cpu() for k, p in adapter_params(hf_model, adapter_name).items()}
    if not out:
        raise InterpError(f"the model has no LoRA adapter named {adapter_name!r} to save")
    return out


def save_adapter(model, config: LoRAConfig, path: str | Path, adapter_name: str = "default") -> Path:
    """Write adapter ``adapter_name`` as ``adapter_model.safetensors`` and ``adapter_config.json`` (PEFT's
    layout, for models without the bridge) plus ``interp.json`` (its :class:`LoRAConfig`), atomically."""
    path = Path(path)
    peft_config = config.peft_config()  # plain module names: the file is for models without the bridge
    peft_config.base_model_name_or_path = model.provenance.get("checkpoint") or model.name
    with atomic_dir(path) as tmp:
        save_file(adapter_state_dict(model.hf, adapter_name), tmp / ADAPTER_FILE, metadata={"format": "pt"})
        peft_config.save_pretrained(tmp)
        (tmp / "interp.json").write_text(json.dumps({"lora": config.__dict__ | {"targets": list(config.targets)}}))
    return path


def adapter_config(path: str | Path) -> LoRAConfig:
    """The :class:`LoRAConfig` that :func:`save_adapter` recorded in ``path/interp.json``."""
    meta = Path(path) / "interp.json"
    if not meta.is_file():
        raise DataFormatError(f"{path} has no interp.json: not an adapter written by interp")
    try:
        lora = json.loads(meta.read_text())["lora"]
        return LoRAConfig(**{**lora, "targets": tuple(lora["targets"])})
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataFormatError(f"{meta} is not an interp adapter record: {e!r}") from e


def merge_lora(model) -> int:
    """Fold every adapter into its base weight and remove it (so ``Model.save`` writes plain weights).

    Returns the number of merged layers. The bridge wrapper gets its original linear back.
    """
    layers = lora_layers(model.hf)
    for name, layer in layers.items():
        layer.merge(safe_merge=True)
        parent_name, _, attr = name.rpartition(".")
        parent = model.hf.get_submodule(parent_name)
        base = layer.get_base_layer()
        if attr == "_original_component" and hasattr(parent, "set_original_component"):
            parent.set_original_component(base)
        else:
            setattr(parent, attr, base)
    for attr in ("peft_config", "_hf_peft_config_loaded"):
        if attr in model.hf.__dict__:
            delattr(model.hf, attr)
    for p in model.hf.parameters():
        p.requires_grad_(True)
    return len(layers)
