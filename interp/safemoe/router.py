"""The safety router: a small network from one residual-stream vector per prompt to expert weights.

It reads the base model's ``resid_post`` of block ``layer`` at the prompt's last token (the
generation prompt's end, under left padding the last column) once per prompt, so routing costs one
partial forward per prompt and keeps the KV cache (:mod:`interp.safemoe.routing`). Inputs are
standardised with the training set's mean and spread (fixed buffers).

Weights: ``null`` mode is a softmax over the experts plus a "no expert" option whose share is dropped,
so a prompt can get no unsafe change at all; ``signed`` mode gives each expert ``tanh`` in (-1, 1), so
it can also subtract an expert. Training (:func:`train_router`) keeps the base model and the experts
frozen and minimises the response loss of the routed model on the curated safe-informative replies
plus harmless prompts with the model's own answers (so benign prompts learn "no expert").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from interp.errors import InterpError
from interp.hooks import Site, capture
from interp.io import atomic_dir
from interp.train.examples import SFTExample, collate
from interp.train.loss import check_finite, response_loss

log = logging.getLogger(__name__)

RouterMode = Literal["null", "signed"]


@dataclass(frozen=True)
class RouterConfig:
    """Shape and training of the router."""

    layer: int = 6
    """Block whose ``resid_post`` (last prompt token) the router reads."""
    hidden: int = 64
    """Hidden width of the 1-hidden-layer MLP (0: a linear router)."""
    mode: RouterMode = "null"
    """``null``: softmax over experts + a dropped "no expert" column; ``signed``: tanh per expert."""
    lr: float = 3e-3
    """AdamW learning rate."""
    steps: int = 150
    """Optimizer steps."""
    batch_size: int = 8
    """Examples per step."""
    max_length: int = 192
    """Tokens per training example (prompt + response)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    seed: int = 0
    """Seed of the initialisation and the data order."""

    def __post_init__(self) -> None:
        if self.layer < 0 or self.hidden < 0 or self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"invalid RouterConfig: {self}")
        if self.mode not in ("null", "signed"):
            raise ValueError(f"RouterConfig.mode must be 'null' or 'signed', got {self.mode!r}")


class Router(nn.Module):
    """Standardise, (MLP), then weights over ``n_experts``."""

    def __init__(self, d_model: int, n_experts: int, config: RouterConfig,
                 mean: Tensor | None = None, std: Tensor | None = None) -> None:
        super().__init__()
        self.config, self.n_experts = config, n_experts
        self.register_buffer("mean", torch.zeros(d_model) if mean is None else mean.float().clone())
        self.register_buffer("std", torch.ones(d_model) if std is None else std.float().clone())
        out = n_experts + (1 if config.mode == "null" else 0)
        if config.hidden:
            self.net = nn.Sequential(nn.Linear(d_model, config.hidden), nn.GELU(), nn.Linear(config.hidden, out))
        else:
            self.net = nn.Linear(d_model, out)

    def logits(self, h_BD: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch out"]:
        x = (h_BD.float() - self.mean) / self.std
        return self.net(x)

    def forward(self, h_BD: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch experts"]:
        z = self.logits(h_BD)
        if self.config.mode == "null":
            return torch.softmax(z, -1)[:, : self.n_experts]
        return torch.tanh(z)


@torch.no_grad()
def residual_features(model, layer: int, input_ids: Int[Tensor, "batch seq"],
                      attention_mask: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch d_model"]:
    """Block ``layer``'s ``resid_post`` at the last position of a left-padded batch (blocks after it skipped)."""
    from interp.train.contrastive import truncated

    if layer >= model.spec.n_layers:
        raise InterpError(f"router layer {layer} out of range: the model has {model.spec.n_layers} layers")
    got: dict = {}
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    with truncated(model, layer), model.hooks(fwd=[(Site("resid_post", layer), capture(got, "h"))]):
        model.arch.decoder_module(model.hf)(input_ids=input_ids, attention_mask=attention_mask,
                                            position_ids=position_ids, use_cache=False)
    return got["h"][:, -1].float()


def prompt_features(model, layer: int, prompts: Sequence[str], batch_size: int = 16,
                    system: str | None = None) -> Float[Tensor, "n d_model"]:
    """:func:`residual_features` of chat-formatted prompts (the generation prompt's last token), in order."""
    rows = []
    for i in range(0, len(prompts), batch_size):
        enc = model.encode_chat(list(prompts[i: i + batch_size]), system=system)
        rows.append(residual_features(model, layer, enc.input_ids, enc.attention_mask).cpu())
    return torch.cat(rows) if rows else torch.zeros(0, model.spec.d_model)


@dataclass
class RouterResult:
    """A trained router and how it got there."""

    router: Router
    experts: tuple[str, ...]
    """Expert adapter names, in the order of the router's outputs."""
    losses: list[float] = field(default_factory=list)
    """Response loss of the routed model at every step."""
    provenance: dict = field(default_factory=dict)
    """Model, data counts and config."""


def train_router(model, experts: Sequence[str], examples: Sequence[SFTExample], config: RouterConfig,
                 provenance: dict | None = None) -> RouterResult:
    """Fit a router with base and experts frozen (their weights are untouched, bitwise)."""
    from interp.safemoe.routing import fixed_weights

    if not examples:
        raise InterpError("no router training examples")
    feats = prompt_features(model, config.layer, [ex.prompt for ex in examples])
    torch.manual_seed(config.seed)
    router = Router(feats.shape[1], len(experts), config, feats.mean(0), feats.std(0).clamp(min=1e-4))
    router.to(model.device)
    feats = feats.to(model.device)
    frozen = [(p, p.requires_grad) for p in model.hf.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    opt = torch.optim.AdamW(router.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    g = torch.Generator().manual_seed(config.seed)
    order: list[int] = []
    losses = []
    try:
        for step in tqdm(range(config.steps), desc="router"):
            if len(order) < config.batch_size:
                order += torch.randperm(len(examples), generator=g).tolist()
            idx, order = order[: config.batch_size], order[config.batch_size:]
            batch = collate(model, [examples[i] for i in idx], config.max_length).to(model.device)
            with fixed_weights(model, experts, router(feats[idx])):
                loss = response_loss(model, batch)
            check_finite(loss, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        for p, req in frozen:
            p.requires_grad_(req)
    router.eval()
    meta = {"model": model.name, "n_examples": len(examples), "kinds": _kinds(examples),
            "config": asdict(config), "experts": list(experts), **(provenance or {})}
    return RouterResult(router, tuple(experts), losses, meta)


def _kinds(examples: Sequence[SFTExample]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ex in examples:
        out[ex.kind] = out.get(ex.kind, 0) + 1
    return out


def save_router(result: RouterResult, path: str | Path) -> Path:
    """``router.safetensors`` + ``router.json`` (config, experts, losses, provenance), atomically."""
    path = Path(path)
    r = result.router
    with atomic_dir(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in r.state_dict().items()}, tmp / "router.safetensors")
        (tmp / "router.json").write_text(json.dumps({
            "config": asdict(r.config), "experts": list(result.experts), "d_model": int(r.mean.shape[0]),
            "losses": result.losses, "provenance": result.provenance}, indent=1))
    return path


def load_router(path: str | Path, device=None) -> RouterResult:
    path = Path(path)
    meta = json.loads((path / "router.json").read_text())
    config = RouterConfig(**meta["config"])
    router = Router(meta["d_model"], len(meta["experts"]), config)
    router.load_state_dict(load_file(path / "router.safetensors"))
    router.eval()
    if device is not None:
        router.to(device)
    return RouterResult(router, tuple(meta["experts"]), meta["losses"], meta["provenance"])
