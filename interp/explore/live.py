"""Live actions on a loaded model: the reply, refusal score and next-token top-k of one prompt, with and
without an intervention (a head ablated or scaled, a direction ablated or added), attention patterns
and a prompt's top SAE features.

Plain functions of a :class:`interp.models.Model`; the explorer runs them one at a time through
:class:`interp.explore.runner.LiveRunner`. Interventions reuse :mod:`interp.interventions`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from interp.directions import Direction
from interp.errors import InterpError
from interp.evaluate.first_token import first_token_logits
from interp.evaluate.generate import generate
from interp.evaluate.refusal import refusal_score, refusal_token_ids
from interp.heads.activations import head_patterns
from interp.heads.plots import attention_view
from interp.hooks import Site
from interp.interventions import ablate_direction, add_direction, mean_ablate_heads
from interp.models import Model
from interp.sae.site import ActSite


@dataclass(frozen=True)
class NextTokens:
    """The first reply token's distribution: top-k tokens and the refusal score."""

    tokens: list[str]
    """Top-k tokens, most likely first."""
    probs: list[float]
    """Their probabilities."""
    refusal_score: float
    """Log-odds that the first token is a refusal token (:func:`interp.evaluate.refusal.refusal_score`)."""


@dataclass(frozen=True)
class Snapshot:
    """What the model does on one prompt."""

    reply: str
    """Greedy reply."""
    next: NextTokens
    """First-token distribution."""


@dataclass(frozen=True)
class Intervention:
    """One live edit of the forward pass."""

    target: Literal["head", "direction"]
    """Edit one attention head's output, or a residual-stream direction."""
    action: Literal["ablate", "scale", "add"]
    """head: ``ablate`` (z set to zero) or ``scale`` (z times ``scale``); direction: ``ablate``
    (projected out at every layer) or ``add`` (``scale`` x the direction added at its layer)."""
    head: tuple[int, int] | None = None
    """(layer, head) for a head target."""
    direction: str | None = None
    """Folder of a saved :class:`interp.directions.Direction`, for a direction target."""
    scale: float = 1.0
    """Multiplier of ``scale`` and ``add``."""

    def __post_init__(self) -> None:
        allowed = {"head": ("ablate", "scale"), "direction": ("ablate", "add")}
        if self.target not in allowed:
            raise InterpError(f"intervention target must be 'head' or 'direction', got {self.target!r}")
        if self.action not in allowed[self.target]:
            raise InterpError(f"a {self.target} intervention takes action {allowed[self.target]}, "
                              f"got {self.action!r}")
        if self.target == "head" and self.head is None:
            raise InterpError("a head intervention needs head=(layer, head)")
        if self.target == "direction" and not self.direction:
            raise InterpError("a direction intervention needs a direction folder")

    @property
    def label(self) -> str:
        what = f"L{self.head[0]}H{self.head[1]}" if self.head else str(self.direction)
        return f"{self.action} {what}" + (f" x {self.scale:g}" if self.action != "ablate" else "")


@dataclass(frozen=True)
class Comparison:
    """A prompt's snapshot before and after an intervention."""

    prompt: str
    """The user prompt."""
    intervention: Intervention
    """What was changed."""
    before: Snapshot
    """Unchanged model."""
    after: Snapshot
    """With the intervention."""


def _scale_head(layer: int, head: int, scale: float):
    def hook(act: Tensor, *, hook) -> Tensor:
        act = act.clone()
        act[:, :, head] = act[:, :, head] * scale
        return act

    return hook


def intervention_scope(model: Model, iv: Intervention) -> AbstractContextManager:
    """The context manager that applies ``iv`` to ``model`` (hooks removed on exit)."""
    if iv.target == "head":
        layer, head = iv.head  # type: ignore[misc]
        if not (0 <= layer < model.spec.n_layers and 0 <= head < model.spec.n_heads):
            raise InterpError(f"head L{layer}H{head} out of range for {model.spec.n_layers} layers x "
                              f"{model.spec.n_heads} heads")
        if iv.action == "ablate":
            zeros = torch.zeros(model.spec.n_layers, model.spec.n_heads, model.spec.d_head)
            return mean_ablate_heads(model, [(layer, head)], zeros)
        return model.hooks(fwd=[(Site("z", layer), _scale_head(layer, head, iv.scale))])
    direction = Direction.load(iv.direction)  # type: ignore[arg-type]
    if iv.action == "ablate":
        return ablate_direction(model, direction)
    return add_direction(model, direction, scale=iv.scale)


def next_tokens(model: Model, prompt: str, k: int = 10) -> NextTokens:
    """Top-k first reply tokens and the refusal score (hooks attached by the caller apply)."""
    logits_V = first_token_logits(model, [prompt])[0]
    probs_V = torch.softmax(logits_V.double(), -1)
    top = torch.topk(probs_V, min(k, probs_V.numel()))
    score = float(refusal_score(logits_V[None], refusal_token_ids(model.tokenizer))[0])
    return NextTokens([model.tokenizer.decode([int(i)]) for i in top.indices], top.values.tolist(), score)


def snapshot(model: Model, prompt: str, k: int = 10, max_new_tokens: int = 32) -> Snapshot:
    """Reply and first-token distribution of ``prompt``."""
    if not prompt.strip():
        raise InterpError("the prompt is empty")
    reply = generate(model, [prompt], max_new_tokens=max_new_tokens, batch_size=1, progress=False)[0]
    return Snapshot(reply, next_tokens(model, prompt, k))


def compare(model: Model, prompt: str, iv: Intervention, k: int = 10, max_new_tokens: int = 32) -> Comparison:
    """Snapshots of ``prompt`` without and with ``iv``."""
    before = snapshot(model, prompt, k, max_new_tokens)
    with intervention_scope(model, iv):
        after = snapshot(model, prompt, k, max_new_tokens)
    return Comparison(prompt, iv, before, after)


def chat_tokens(model: Model, prompt: str) -> list[str]:
    """The tokens of the chat-formatted prompt, as the model reads them."""
    enc = model.encode_chat([prompt])
    return [model.tokenizer.decode([t]) for t in enc.input_ids[0].tolist()]


def attention_html(model: Model, prompt: str, heads: list[tuple[int, int]]) -> str:
    """circuitsvis view (local JavaScript bundle, no CDN) of ``heads``' attention on ``prompt``."""
    if not heads:
        raise InterpError("no heads chosen for the attention view")
    for layer, head in heads:
        if not (0 <= layer < model.spec.n_layers and 0 <= head < model.spec.n_heads):
            raise InterpError(f"head L{layer}H{head} out of range for {model.spec.n_layers} layers x "
                              f"{model.spec.n_heads} heads")
    tokens, pats = head_patterns(model, prompt, heads)
    return attention_view(tokens, pats, heads)


@dataclass(frozen=True)
class PromptFeature:
    """One SAE feature's strongest activation on a prompt."""

    feature: int
    """Feature index."""
    activation: float
    """Its largest activation over the prompt's tokens."""
    position: int
    """Where it is largest."""
    token: str
    """The token there."""


@torch.no_grad()
def prompt_features(model: Model, sae, site: ActSite, prompt: str, k: int = 10) -> list[PromptFeature]:
    """The ``k`` SAE features that fire hardest anywhere on the chat-formatted ``prompt``."""
    enc = model.encode_chat([prompt])
    got: dict = {}

    def grab(act, *, hook):
        got["a"] = act.detach()

    with model.hooks(fwd=[(site.site, grab)]):
        model.run_hooks(enc, stop_after=site.site)
    x_TD = site.extract(got["a"])[0]
    f_TF = sae.encode(x_TD.to(next(sae.parameters()).device, sae.dtype)).float().cpu()
    best_F, where_F = f_TF.max(0)
    top = torch.topk(best_F, min(k, best_F.numel()))
    ids = enc.input_ids[0].tolist()
    return [PromptFeature(int(f), float(v), int(where_F[f]), model.tokenizer.decode([ids[int(where_F[f])]]))
            for v, f in zip(top.values, top.indices, strict=True) if float(v) > 0]
