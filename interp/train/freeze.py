"""Tail freezing: every parameter that acts after layer ``l`` stays fixed."""

from __future__ import annotations

from interp.models.arch import LLAMA, Architecture


def layer_of(param_name: str, arch: Architecture = LLAMA) -> int | None:
    """Block index of a clean parameter name in ``arch``'s layout (None outside the blocks)."""
    return arch.layer_of(param_name)


def tail_parameter_names(model, layer: int) -> list[str]:
    """Parameters after block ``layer``: later blocks, the final norm and the unembedding.

    SmolLM2, the tiny models and GPT-2 tie their unembedding to the token embedding, so the token
    embedding counts as tail there too: updating it would change the (frozen) readout. Untied
    embeddings and learned position embeddings (GPT-2's ``wpe``) act before block ``layer`` and train.
    """
    if not 0 <= layer < model.spec.n_layers:
        raise ValueError(f"layer {layer} out of range for a {model.spec.n_layers}-layer model")
    arch = model.arch
    tied = model.hf.get_input_embeddings().weight is model.hf.get_output_embeddings().weight
    upstream = tuple(p for p in arch.embedding_prefixes if not (tied and p == arch.token_embedding_prefix))
    names = []
    for name in model.named_parameters():
        idx = arch.layer_of(name)
        # outside the blocks only the (untied) embeddings act first; anything else there is tail
        if (idx is not None and idx > layer) or (idx is None and not name.startswith(upstream)):
            names.append(name)
    return names


def freeze(model, names: list[str]) -> None:
    wanted = set(names)
    for name, p in model.named_parameters().items():
        if name in wanted:
            p.requires_grad_(False)
