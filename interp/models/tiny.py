"""Tiny randomly initialised models (Llama, Qwen2, GPT-2 families) with a byte-level tokenizer: for tests,
in seconds, offline. ``load_model("tiny")`` is the Llama one; ``tiny-qwen2`` and ``tiny-gpt2`` the others."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

# Same ChatML template as SmolLM2-Instruct, so prompts are formatted identically in tests.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

TinyFamily = Literal["llama", "qwen2", "gpt2"]
TINY_MODELS: dict[str, TinyFamily] = {"tiny": "llama", "tiny-qwen2": "qwen2", "tiny-gpt2": "gpt2"}
"""Built-in tiny model names and the family each builds."""


@dataclass(frozen=True)
class TinyConfig:
    """Architecture of a tiny test model.

    ``llama``: RMSNorm, rotary, SwiGLU, GQA. ``qwen2``: the same with q/k/v biases. ``gpt2``: LayerNorm,
    learned positions, GELU MLP, fused QKV, no GQA (``n_kv_heads`` must equal ``n_heads``; use
    :meth:`for_family` for defaults that fit).
    """

    n_layers: int = 2
    """Transformer blocks."""
    n_heads: int = 4
    """Query heads per layer."""
    n_kv_heads: int = 2
    """Key/value heads per layer (grouped-query attention when fewer than ``n_heads``)."""
    d_head: int = 16
    """Width of one head."""
    d_mlp: int = 128
    """Hidden width of the MLP."""
    seed: int = 0
    """Seed of the random initialisation."""
    family: TinyFamily = "llama"
    """Architecture family: ``llama``, ``qwen2`` or ``gpt2``."""

    def __post_init__(self) -> None:
        if self.family not in get_args(TinyFamily):
            raise ValueError(f"unknown tiny family {self.family!r}; expected one of {list(get_args(TinyFamily))}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads}")
        if self.family == "gpt2" and self.n_kv_heads != self.n_heads:
            raise ValueError(f"GPT-2 has no grouped-query attention: n_kv_heads={self.n_kv_heads} must equal "
                             f"n_heads={self.n_heads}")

    @classmethod
    def for_family(cls, family: TinyFamily, **overrides) -> TinyConfig:
        """Defaults of a family (GPT-2: one KV head per query head), with ``overrides`` applied."""
        base = {"n_kv_heads": overrides.get("n_heads", cls.n_heads)} if family == "gpt2" else {}
        return cls(family=family, **{**base, **overrides})


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with no merges (259 tokens) and the ChatML chat template."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.chat_template = CHATML_TEMPLATE
    # transformer-lens re-loads tokenizers by name to add BOS unless this flag is set; ours is in memory.
    fast.init_kwargs.update(name_or_path="tiny", add_bos_token=True)
    return fast


def _special_ids(tokenizer) -> dict:
    return {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}


def _llama_like(config: TinyConfig, vocab: int, special: dict) -> dict:
    return dict(
        vocab_size=vocab, hidden_size=config.n_heads * config.d_head, intermediate_size=config.d_mlp,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads, head_dim=config.d_head, max_position_embeddings=512,
        tie_word_embeddings=True, **special,
    )


def _hf_model(config: TinyConfig, vocab: int, special: dict) -> PreTrainedModel:
    if config.family == "llama":
        return LlamaForCausalLM(LlamaConfig(**_llama_like(config, vocab, special)))
    if config.family == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**_llama_like(config, vocab, special)))
    # dropout off: the training tests compare steps exactly, and train() would otherwise sample masks
    return GPT2LMHeadModel(GPT2Config(
        vocab_size=vocab, n_embd=config.n_heads * config.d_head, n_inner=config.d_mlp, n_layer=config.n_layers,
        n_head=config.n_heads, n_positions=512, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=True, **special,
    ))


def tiny_model(config: TinyConfig = TinyConfig()) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Build a tiny random model of ``config.family`` and its tokenizer."""
    tokenizer = byte_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = _hf_model(config, len(tokenizer), _special_ids(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval(), tokenizer


def tiny_llama(config: TinyConfig = TinyConfig()) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Build a tiny random Llama model and its tokenizer."""
    if config.family != "llama":
        raise ValueError(f"tiny_llama builds Llama models; got family {config.family!r} (use tiny_model)")
    return tiny_model(config)


def tiny_config(name: str, config: TinyConfig | None = None) -> TinyConfig:
    """The config of built-in tiny model ``name`` (:data:`TINY_MODELS`): ``config`` when given (its
    family must be the name's), else the family's defaults."""
    family = TINY_MODELS[name]
    if config is None:
        return TinyConfig.for_family(family)
    if config.family != family:
        names = {f: n for n, f in TINY_MODELS.items()}
        raise ValueError(f"{name!r} is the tiny {family} model but TinyConfig.family is {config.family!r}; "
                         f"load {names[config.family]!r} instead")
    return config
