"""Which parameters theta the kernel differentiates, and the forward pass to the first-token logits.

The decoder-only families the workbench supports (:mod:`interp.models.arch`) compute the first-token
logits as ``z = W_U u + b`` from the final normed hidden state ``u``. The sketched estimator treats the
*head role* of ``W_U``/``b`` analytically (its Jacobian is ``I (x) u^T`` and ``I``), so
:func:`first_token_state` returns ``u`` and :func:`head_logits` applies the head with or without
gradient through ``W_U``/``b``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import InterpError
from interp.models import Encoding, Model
from interp.ntk.config import NTKConfig


@dataclass(frozen=True)
class ParamSelection:
    """The parameters theta of J = dz/dtheta, in a fixed order."""

    names: tuple[str, ...]
    """Clean parameter names (``model.layers.3.mlp.up_proj.weight``; GPT-2: ``transformer.h.3.mlp.c_fc.weight``)."""
    params: tuple[torch.nn.Parameter, ...]
    """The parameter tensors themselves (tied tensors appear once)."""
    head_weight: bool
    """The output-embedding matrix W_U is selected (its head role is then part of the kernel)."""
    head_bias: bool
    """The output bias b is selected."""

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.params)

    def index_of(self, param: Tensor) -> int | None:
        return next((i for i, p in enumerate(self.params) if p is param), None)


def output_head(model: Model) -> tuple[Tensor, Tensor | None]:
    """The unembedding weight W_U [vocab, d_model] and bias (None when the head has none)."""
    head = model.hf.get_output_embeddings()
    return head.weight, getattr(head, "bias", None)


def _upto_ids(model: Model, layers_upto: int) -> set[int]:
    """The embeddings (token and, where learned, position) and blocks ``0..layers_upto``."""
    layers = model.arch.block_list(model.hf)
    if layers_upto >= len(layers):
        raise InterpError(f"layers_upto={layers_upto} out of range: the model has {len(layers)} layers")
    keep = {id(p) for emb in model.arch.embedding_modules(model.hf) for p in emb.parameters()}
    for layer in list(layers)[: layers_upto + 1]:
        keep |= {id(p) for p in layer.parameters()}
    return keep


def _last_ids(model: Model, last_layers: int) -> set[int]:
    """The last ``last_layers`` blocks and the final norm (not the unembedding, tied to the embedding in
    the tiny models, SmolLM2 and GPT-2)."""
    n = model.spec.n_layers
    if last_layers > n:
        raise InterpError(f"last_layers={last_layers} out of range: the model has {n} layers")
    arch = model.arch
    return {id(p) for name, p in model.named_parameters().items()
            if (arch.layer_of(name) is not None and arch.layer_of(name) >= n - last_layers)
            or name.startswith(arch.final_norm_prefix)}


def select_parameters(model: Model, config: NTKConfig) -> ParamSelection:
    """Parameters kept by ``config.layers_upto`` or ``config.last_layers``, and ``config.param_filter``
    (all that are set must hold)."""
    upto = _upto_ids(model, config.layers_upto) if config.layers_upto is not None else None
    if config.last_layers is not None:
        upto = _last_ids(model, config.last_layers)
    names, params = [], []
    # tied tensors once; fused tensors no gradient reaches (GPT-2's c_attn, run as split q/k/v) left out
    for name, p in model.named_parameters().items():
        if upto is not None and id(p) not in upto:
            continue
        if config.param_filter is not None and not any(f in name for f in config.param_filter):
            continue
        names.append(name)
        params.append(p)
    if not params:
        example = next(iter(model.named_parameters()))
        raise InterpError(
            f"no parameter of model {model.name!r} matches layers_upto={config.layers_upto}, "
            f"last_layers={config.last_layers}, "
            f"param_filter={config.param_filter}; names look like {example!r}"
        )
    weight, bias = output_head(model)
    ids = {id(p) for p in params}
    has_bias = bias is not None and id(bias) in ids
    return ParamSelection(tuple(names), tuple(params), id(weight) in ids, has_bias)


@contextmanager
def differentiable(model: Model, selection: ParamSelection) -> Iterator[None]:
    """Eval mode, grad enabled, selected parameters requiring grad; everything restored on exit."""
    was_training = model.hf.training
    flags = [(p, p.requires_grad) for p in selection.params]
    model.hf.eval()
    try:
        for p, _ in flags:
            p.requires_grad_(True)
        with torch.enable_grad():
            yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.hf.train(was_training)


def encode_prompt(model: Model, text: str, config: NTKConfig) -> Encoding:
    """One chat-formatted prompt; truncation keeps the end (the assistant prefix is what z reads)."""
    enc = model.encode([model.chat(text, system=config.system)])
    if config.max_tokens is not None and enc.input_ids.shape[1] > config.max_tokens:
        enc = Encoding(enc.input_ids[:, -config.max_tokens:], enc.attention_mask[:, -config.max_tokens:])
    return enc


def first_token_state(model: Model, enc: Encoding) -> Float[Tensor, "batch d_model"]:
    """Final normed hidden state u at the last position (the input of the unembedding)."""
    out = model.arch.decoder_module(model.hf)(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                                              position_ids=enc.position_ids, use_cache=False)
    return out.last_hidden_state[:, -1]


def token_index(model: Model, config: NTKConfig) -> Tensor | None:
    """Vocabulary ids the logits are restricted to (None: the full vocabulary)."""
    if config.token_ids is None:
        return None
    ids = torch.tensor(config.token_ids, dtype=torch.long, device=model.device)
    if int(ids.max()) >= model.spec.d_vocab:
        raise InterpError(f"token id {int(ids.max())} out of range: vocabulary size {model.spec.d_vocab}")
    return ids


def head_logits(
    model: Model, u: Float[Tensor, "batch d_model"], tokens: Tensor | None, detach_head: bool
) -> Float[Tensor, "batch vocab_sel"]:
    """z = W_U u + b on the selected tokens; ``detach_head`` drops the head role from the gradient."""
    weight, bias = output_head(model)
    if detach_head:
        weight = weight.detach()
        bias = bias.detach() if bias is not None else None
    if tokens is not None:
        weight = weight[tokens]
        bias = bias[tokens] if bias is not None else None
    z = u @ weight.T
    return z + bias if bias is not None else z
