"""Parameter names as Hugging Face writes them, whatever wrappers the TransformerBridge adds.

The bridge wraps every Hugging Face module in a component whose own child ``_original_component`` is
the wrapped module, and adds aliases beside it (``attn.o`` for GPT-2's ``attn.c_proj``). A parameter's
Hugging Face name is the path that goes through ``_original_component`` at every wrapper, with those
segments removed; that is the name checkpoints use and the one prefixes (``SFTConfig.frozen``) match.

Fused projections are special: the GPT-2 bridge splits ``c_attn`` into three ``nn.Linear`` copies
``attn.q/k/v`` (views of ``c_attn``'s storage) and runs only those. The copies are what trains, so
:func:`named_parameters` lists them (under the bridge's path, as they have no Hugging Face name) and
leaves out ``c_attn``, which no gradient reaches; :func:`hf_state_dict` writes the copies back into
``c_attn`` first, so a saved checkpoint holds the trained values even if a device or dtype move gave
the copies storage of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

_WRAPPED = "_original_component"
_WRAPPER = "." + _WRAPPED


def clean_name(name: str) -> str:
    """``model.layers.0._original_component.mlp...`` -> ``model.layers.0.mlp...``."""
    return name.replace(_WRAPPER, "")


def _is_wrapper(module: torch.nn.Module) -> bool:
    return _WRAPPED in module._modules


def _is_hf_path(root: torch.nn.Module, raw: str) -> bool:
    """The path enters every wrapper through ``_original_component`` (so it exists without the bridge)."""
    module = root
    for seg in raw.split(".")[:-1]:
        if _is_wrapper(module) and seg != _WRAPPED:
            return False
        module = module._modules[seg]
    return not _is_wrapper(module)


def _fused_qkv(hf_model: torch.nn.Module) -> list:
    """The bridge's joint-QKV attention components (their ``qkv`` weights are split into q/k/v)."""
    try:
        from transformer_lens.model_bridge.generalized_components import JointQKVAttentionBridge
    except ImportError:  # pragma: no cover - transformer-lens is a hard dependency of Model
        return []
    return [m for m in hf_model.modules() if isinstance(m, JointQKVAttentionBridge)]


def _inert_ids(hf_model: torch.nn.Module) -> set[int]:
    return {id(p) for m in _fused_qkv(hf_model) for p in m.qkv.parameters()}


def _names(hf_model: torch.nn.Module, tensors) -> dict[int, str]:
    """id -> preferred clean name: the Hugging Face path when there is one, else the first path seen."""
    out: dict[int, str] = {}
    hf_named: set[int] = set()
    for raw, t in tensors:
        key = id(t)
        if key in hf_named:
            continue
        if _is_hf_path(hf_model, raw):
            out[key] = clean_name(raw)
            hf_named.add(key)
        else:
            out.setdefault(key, clean_name(raw))
    return out


def named_parameters(hf_model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Clean name -> parameter for every parameter the forward pass uses, tied tensors once, in the
    order ``named_parameters()`` first lists them."""
    inert = _inert_ids(hf_model)
    raw = list(hf_model.named_parameters(remove_duplicate=False))
    names = _names(hf_model, raw)
    out: dict[str, torch.nn.Parameter] = {}
    seen: set[int] = set()
    for _, p in raw:
        if id(p) in seen or id(p) in inert:
            continue
        seen.add(id(p))
        out[names[id(p)]] = p
    return out


@torch.no_grad()
def sync_fused_qkv(hf_model: torch.nn.Module) -> None:
    """Write GPT-2's split q/k/v copies back into the fused ``c_attn`` Conv1D ([in, 3 * out])."""
    from transformers.pytorch_utils import Conv1D

    for attn in _fused_qkv(hf_model):
        fused = attn.qkv.original_component
        if not isinstance(fused, Conv1D):
            raise NotImplementedError(
                f"cannot write the split q/k/v of a {type(fused).__name__} fused projection back; only "
                "GPT-2's Conv1D c_attn is supported")
        q, k, v = (getattr(attn, n).original_component for n in ("q", "k", "v"))
        fused.weight.copy_(torch.cat([q.weight.T, k.weight.T, v.weight.T], dim=1))
        if fused.bias is not None:
            fused.bias.copy_(torch.cat([q.bias, k.bias, v.bias]))


def hf_state_dict(hf_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A state dict that ``from_pretrained`` reads back: Hugging Face names, each tensor once.

    Tensors only the bridge has (GPT-2's split q/k/v, written back into ``c_attn`` first) are left out.
    The bridge gives the unembedding a zero bias that Llama checkpoints do not have; it is dropped
    (and must stay zero: it is frozen in training).
    """
    sync_fused_qkv(hf_model)
    items = list(hf_model.state_dict(keep_vars=True).items())
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for raw, t in items:
        if not _is_hf_path(hf_model, raw) or id(t) in seen:
            continue
        name = clean_name(raw)
        if name in out:
            continue
        seen.add(id(t))
        out[name] = t.detach().contiguous().cpu()
    bias = out.get("lm_head.bias")
    if bias is not None and not getattr(hf_model.config, "mlp_bias", False):
        if torch.count_nonzero(bias):
            raise ValueError("the unembedding bias added by the bridge was changed; it must stay frozen")
        del out["lm_head.bias"]
    if getattr(hf_model.config, "tie_word_embeddings", False):
        out.pop("lm_head.weight", None)
    return out


@contextmanager
def only_these_require_grad(model, params: dict[str, torch.nn.Parameter]) -> Iterator[None]:
    """Within the block only ``params`` require grad (no wasted backward work); flags restored after."""
    before = {n: p.requires_grad for n, p in model.named_parameters().items()}
    keep = {id(p) for p in params.values()}
    try:
        for p in model.named_parameters().values():
            p.requires_grad_(id(p) in keep)
        yield
    finally:
        for n, p in model.named_parameters().items():
            p.requires_grad_(before[n])
