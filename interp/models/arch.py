"""Where each architecture family keeps its blocks, projections, embeddings and norms.

Everything in the workbench that reaches into the Hugging Face modules (the training loss, the
contrastive stage's truncation, the subspace constraints, the NTK parameter groups, tail and upstream
freezing) goes through one :class:`Architecture` per family, chosen from ``config.model_type`` by
:func:`architecture`. Hook sites need none of this: the transformer-lens bridge names them alike for
every family (``blocks.L.attn.hook_z``).

Module paths below are as the *bridged* forward pass runs them. That matters for GPT-2: its bridge
splits the fused ``c_attn`` Conv1D into three ``nn.Linear`` copies ``attn.q/k/v`` (views of the same
storage, so an in-place update of one writes through to ``c_attn``) and runs those; ``c_attn`` itself
then receives no gradient. The value projection of a GPT-2 block is therefore ``attn.v``, in the
``nn.Linear`` [out, in] layout, while its output projections are Conv1D ([in, out]).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import InterpError


class UnsupportedArchitectureError(InterpError, NotImplementedError):
    """A model family (``config.model_type``) the workbench has no module adapter for."""


@dataclass(frozen=True)
class Projection:
    """One linear map of a block as the forward pass uses it, with its output axis made explicit."""

    name: str
    """Clean parameter-name prefix of the module (``model.layers.3.self_attn.o_proj``)."""
    short: str
    """Short label for logs and constraint terms (``layers.3.o_proj``)."""
    weight: torch.nn.Parameter
    """The weight as stored: [out, in] for ``nn.Linear``, [in, out] for GPT-2's ``Conv1D``."""
    bias: torch.nn.Parameter | None
    """The bias [out] (None when the module has none)."""
    conv1d: bool
    """The weight is stored [in, out] (transformers' ``Conv1D``)."""

    def out_in(self) -> Float[Tensor, "d_out d_in"]:
        """The weight's data as an [out, in] view: in-place writes to it change the parameter."""
        w = self.weight.data
        return w.T if self.conv1d else w


@dataclass(frozen=True)
class Architecture:
    """Module layout of one decoder-only family, as attribute paths (strings) and a few facts.

    Paths are relative: ``decoder`` to the causal-LM model, ``blocks``/``embeddings``/``final_norm`` to
    the decoder, and the per-block paths to one block.
    """

    family: str
    """Family name used in messages (``llama``, ``qwen2``, ``gpt2``)."""
    model_types: tuple[str, ...]
    """``config.model_type`` values this layout serves."""
    decoder: str
    """Attribute of the causal-LM model holding the decoder stack (``model`` / ``transformer``)."""
    blocks: str
    """Attribute of the decoder holding the ``ModuleList`` of blocks (``layers`` / ``h``)."""
    embeddings: tuple[str, ...]
    """Decoder attributes of the embeddings that write into the residual stream; the token one first."""
    final_norm: str
    """Decoder attribute of the final norm (``norm`` / ``ln_f``)."""
    unembed: str
    """Causal-LM attribute of the unembedding (``lm_head``)."""
    input_norm: str
    """Block path of the norm in front of attention (``input_layernorm`` / ``ln_1``)."""
    mlp_norm: str
    """Block path of the norm in front of the MLP (``post_attention_layernorm`` / ``ln_2``)."""
    value: str
    """Block path of the value projection the forward runs (``self_attn.v_proj`` / ``attn.v``)."""
    attn_out: str
    """Block path of the attention output projection (``self_attn.o_proj`` / ``attn.c_proj``)."""
    mlp_out: str
    """Block path of the MLP output projection (``mlp.down_proj`` / ``mlp.c_proj``)."""
    pattern: tuple[str, ...]
    """Block paths of the modules besides ``input_norm`` that set the attention pattern (q, k and
    their norms where the family has them)."""

    # ---- modules ---------------------------------------------------------------------------------

    def decoder_module(self, hf: torch.nn.Module) -> torch.nn.Module:
        """The decoder stack; its forward returns the final-normed ``last_hidden_state``."""
        return getattr(hf, self.decoder)

    def block_list(self, hf: torch.nn.Module) -> torch.nn.ModuleList:
        return getattr(self.decoder_module(hf), self.blocks)

    def block(self, hf: torch.nn.Module, layer: int) -> torch.nn.Module:
        blocks = self.block_list(hf)
        if not 0 <= layer < len(blocks):
            raise InterpError(f"layer {layer} out of range: the model has {len(blocks)} blocks")
        return blocks[layer]

    def value_projection(self, hf: torch.nn.Module, layer: int) -> Projection:
        return self._projection(hf, layer, self.value)

    def attn_out_projection(self, hf: torch.nn.Module, layer: int) -> Projection:
        return self._projection(hf, layer, self.attn_out)

    def mlp_out_projection(self, hf: torch.nn.Module, layer: int) -> Projection:
        return self._projection(hf, layer, self.mlp_out)

    def residual_embeddings(self, hf: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
        """(clean name, [rows, d_model] weight) of every embedding added into the residual stream."""
        dec = self.decoder_module(hf)
        return [(f"{self.decoder}.{e}.weight", getattr(dec, e).weight) for e in self.embeddings]

    def embedding_modules(self, hf: torch.nn.Module) -> list[torch.nn.Module]:
        dec = self.decoder_module(hf)
        return [getattr(dec, e) for e in self.embeddings]

    def unembedding(self, hf: torch.nn.Module) -> torch.nn.Module:
        return getattr(hf, self.unembed)

    @contextmanager
    def truncated(self, hf: torch.nn.Module, n_blocks: int) -> Iterator[None]:
        """Inside the block the decoder runs only its first ``n_blocks`` blocks (restored on exit)."""
        dec = self.decoder_module(hf)
        blocks = getattr(dec, self.blocks)
        if not 1 <= n_blocks <= len(blocks):
            raise InterpError(f"cannot keep {n_blocks} of the model's {len(blocks)} blocks")
        setattr(dec, self.blocks, blocks[:n_blocks])
        try:
            yield
        finally:
            setattr(dec, self.blocks, blocks)

    # ---- parameter names -------------------------------------------------------------------------

    def block_prefix(self, layer: int) -> str:
        """``model.layers.3.``: the trailing dot keeps ``layers.1.`` from matching ``layers.10.``."""
        return f"{self.decoder}.{self.blocks}.{layer}."

    def layer_of(self, name: str) -> int | None:
        """Block index of a clean parameter name (None for embeddings, final norm, unembedding)."""
        m = re.match(rf"{re.escape(self.decoder)}\.{re.escape(self.blocks)}\.(\d+)\.", name)
        return int(m.group(1)) if m else None

    @property
    def embedding_prefixes(self) -> tuple[str, ...]:
        return tuple(f"{self.decoder}.{e}." for e in self.embeddings)

    @property
    def token_embedding_prefix(self) -> str:
        return self.embedding_prefixes[0]

    @property
    def final_norm_prefix(self) -> str:
        return f"{self.decoder}.{self.final_norm}."

    @property
    def unembed_prefix(self) -> str:
        return f"{self.unembed}."

    @property
    def default_frozen(self) -> tuple[str, ...]:
        """What SFT keeps frozen by default: the token embedding and the unembedding (tied in the
        tiny models, SmolLM2 and GPT-2, so freezing one alone would still move the other)."""
        return (self.token_embedding_prefix, self.unembed_prefix)

    def norm_prefixes(self, n_layers: int) -> tuple[str, ...]:
        """Every residual-stream norm: each block's two and the final one."""
        return (*(f"{self.block_prefix(i)}{n}." for i in range(n_layers) for n in (self.input_norm, self.mlp_norm)),
                self.final_norm_prefix)

    @property
    def lora_targets(self) -> tuple[str, ...]:
        """Module names (last path part) of the query and value projections the forward runs: what a
        q/v LoRA adapts (GPT-2: the bridge's split ``q``/``v``; its fused ``c_attn`` never runs)."""
        return (self.pattern[0].rsplit(".", 1)[-1], self.value.rsplit(".", 1)[-1])

    def upstream_prefixes(self, layer: int) -> tuple[str, ...]:
        """Everything upstream of block ``layer``'s ``hook_z`` that is not its value projection: the
        embeddings, every earlier block, the block's input norm and what sets its attention pattern."""
        blk = self.block_prefix(layer)
        return (*self.embedding_prefixes, *(self.block_prefix(i) for i in range(layer)),
                *(f"{blk}{p}." for p in (self.input_norm, *self.pattern)))

    # ---- internals -------------------------------------------------------------------------------

    def _projection(self, hf: torch.nn.Module, layer: int, path: str) -> Projection:
        from transformers.pytorch_utils import Conv1D

        mod = functools.reduce(getattr, path.split("."), self.block(hf, layer))
        inner = getattr(mod, "original_component", None) or mod  # a bridge forwards to its module
        leaves = [p.rsplit(".", 1)[-1] for p in (self.value, self.attn_out, self.mlp_out)]
        label = path.rsplit(".", 1)[-1] if leaves.count(path.rsplit(".", 1)[-1]) == 1 else path
        return Projection(
            name=f"{self.block_prefix(layer)}{path}", short=f"layers.{layer}.{label}",
            weight=inner.weight, bias=getattr(inner, "bias", None), conv1d=isinstance(inner, Conv1D),
        )


_LLAMA_LIKE = dict(
    decoder="model", blocks="layers", embeddings=("embed_tokens",), final_norm="norm", unembed="lm_head",
    input_norm="input_layernorm", mlp_norm="post_attention_layernorm", value="self_attn.v_proj",
    attn_out="self_attn.o_proj", mlp_out="mlp.down_proj",
)

LLAMA = Architecture(family="llama", model_types=("llama", "mistral"), pattern=("self_attn.q_proj",
                     "self_attn.k_proj"), **_LLAMA_LIKE)
"""Llama and Mistral: RMSNorm, rotary, SwiGLU, grouped-query attention, no biases."""

QWEN2 = Architecture(family="qwen2", model_types=("qwen2",), pattern=("self_attn.q_proj", "self_attn.k_proj"),
                     **_LLAMA_LIKE)
"""Qwen2 / Qwen2.5: the Llama layout with q/k/v biases."""

QWEN3 = Architecture(family="qwen3", model_types=("qwen3",), pattern=(
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.q_norm", "self_attn.k_norm"), **_LLAMA_LIKE)
"""Qwen3: the Llama layout with per-head RMSNorms on q and k (part of what sets the pattern)."""

GPT2 = Architecture(
    family="gpt2", model_types=("gpt2",), decoder="transformer", blocks="h", embeddings=("wte", "wpe"),
    final_norm="ln_f", unembed="lm_head", input_norm="ln_1", mlp_norm="ln_2", value="attn.v", attn_out="attn.c_proj",
    mlp_out="mlp.c_proj", pattern=("attn.q", "attn.k"),
)
"""GPT-2: LayerNorm, learned positions, fused c_attn (split by the bridge), Conv1D projections."""

ARCHITECTURES: tuple[Architecture, ...] = (LLAMA, QWEN2, QWEN3, GPT2)


def supported_model_types() -> list[str]:
    return [t for a in ARCHITECTURES for t in a.model_types]


def architecture(config) -> Architecture:
    """The adapter for a Hugging Face config (or a ``model_type`` string); unknown families fail."""
    model_type = config if isinstance(config, str) else getattr(config, "model_type", None)
    for arch in ARCHITECTURES:
        if model_type in arch.model_types:
            return arch
    raise UnsupportedArchitectureError(
        f"model_type {model_type!r} has no module adapter in interp.models.arch; supported model types: "
        f"{', '.join(supported_model_types())}"
    )


def all_default_frozen() -> tuple[str, ...]:
    """Union of every family's :attr:`Architecture.default_frozen`: prefixes of one family never match
    another's parameter names, so this one tuple freezes the right tensors on any supported model."""
    out: list[str] = []
    for arch in ARCHITECTURES:
        out += [p for p in arch.default_frozen if p not in out]
    return tuple(out)
