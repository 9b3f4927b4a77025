"""DCR's contrastive refinement stage: Circle loss on pooled layer-``l`` representations, tail frozen.

Seemingly harmful and truly harmful prompts form two classes; same-class pairs are positives and
cross-class pairs negatives. Only blocks ``<= l`` run (the tail is cut off for the stage, which both
freezes it and saves its compute), and a class-balanced sampler draws every batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.data.prompts import PromptSet
from interp.errors import EmptyPromptClassError
from interp.hooks import Site, capture
from interp.io import write_json
from interp.models.chat_spans import user_token_mask
from interp.train.freeze import freeze, tail_parameter_names
from interp.train.loss import check_finite
from interp.train.sft import Callback, run_callbacks

log = logging.getLogger(__name__)

Pooling = Literal["user", "mean", "last"]
POOLINGS: tuple[str, ...] = get_args(Pooling)


@dataclass(frozen=True)
class ContrastiveConfig:
    """Settings of the contrastive refinement stage."""

    layer: int = 12
    """Intermediate layer l whose output (resid_post) is pooled; every later parameter is frozen."""
    steps: int = 40
    """Optimizer steps."""
    per_class: int = 8
    """Prompts of each class in every batch (class-balanced sampling)."""
    lr: float = 5e-6
    """AdamW learning rate (2e-5 for 60 steps raised SmolLM2's loss on the first SFT batch from 2.42 to 6.77)."""
    margin: float = 0.25
    """Circle-loss relaxation margin m."""
    gamma: float = 64.0
    """Circle-loss scale gamma (pytorch-metric-learning's default is 80)."""
    pooling: Pooling = "user"
    """``user``: mean over the user's own tokens (no template or system-prompt tokens); ``mean``: over
    every token of the chat-formatted prompt; ``last``: the last token (the assistant header's end)."""
    seed: int = 0
    """Seed of the sampler."""
    max_tokens: int = 160
    """Prompts longer than this (chat-formatted) are left out: attention memory grows with length squared."""
    callback_every: int = 10
    """Steps between callback calls (also called before the first and after the last step)."""

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.callback_every < 1:
            raise ValueError(f"callback_every must be >= 1, got {self.callback_every}")
        if self.per_class < 2:
            raise ValueError("per_class must be >= 2 so that every batch has positive pairs")


@dataclass
class ContrastiveResult:
    losses: list[float]
    """Circle loss at every step."""
    frozen: list[str]
    """Names of the tail parameters kept frozen."""
    config: dict = field(default_factory=dict)
    """The :class:`ContrastiveConfig` as a dict."""
    history: list[dict] = field(default_factory=list)
    """Callback records (``{step, metric, label, value}``) at steps 0, ``callback_every``, ..., ``steps``."""


def balanced_batches(n_a: int, n_b: int, per_class: int, steps: int, seed: int) -> Iterator[tuple[list, list]]:
    """Indices of ``per_class`` items from each class per step, cycling through seeded permutations."""
    g = torch.Generator().manual_seed(seed)

    def stream(n: int) -> Iterator[int]:
        while True:
            yield from torch.randperm(n, generator=g).tolist()

    sa, sb = stream(n_a), stream(n_b)
    for _ in range(steps):
        yield [next(sa) for _ in range(per_class)], [next(sb) for _ in range(per_class)]


@contextmanager
def truncated(model, layer: int) -> Iterator[None]:
    """Run only blocks ``0..layer`` inside the block (the model's forward stops early)."""
    with model.arch.truncated(model.hf, layer + 1):
        yield


def pooled(model, prompts: list[str], layer: int, pooling: Pooling) -> Float[Tensor, "batch d_model"]:
    """Pooled output of block ``layer`` (its ``resid_post``, before any final norm) on chat-formatted
    prompts (call inside :func:`truncated`); ``pooling`` as in :class:`ContrastiveConfig`."""
    enc = model.encode_chat(prompts)
    got: dict = {}
    # The hook, not ``hidden_states[layer + 1]``: transformers replaces the last hidden state by the
    # final-normed one, and under truncation block ``layer`` is the last.
    with model.hooks(fwd=[(Site("resid_post", layer), capture(got, "h", detach=False))]):
        model.arch.decoder_module(model.hf)(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                                            position_ids=enc.position_ids, use_cache=False)
    h = got["h"]
    if pooling == "last":
        return h[:, -1]
    if pooling == "user":
        keep_BS = user_token_mask(model, prompts)
        if keep_BS.shape != enc.attention_mask.shape or (keep_BS & ~enc.attention_mask.bool()).any():
            raise ValueError(f"user-token mask {tuple(keep_BS.shape)} does not fit the encoded batch "
                             f"{tuple(enc.attention_mask.shape)}")
    else:
        keep_BS = enc.attention_mask.bool()
    mask = keep_BS.unsqueeze(-1).to(h.dtype)
    return (h * mask).sum(1) / mask.sum(1)


def _short(model, prompts: PromptSet, max_tokens: int) -> PromptSet:
    keep = prompts.filter(lambda p: len(model.tokenizer.encode(model.chat(p.text), add_special_tokens=False))
                          <= max_tokens)
    if len(keep) < len(prompts):
        log.info("contrastive stage: %d of %d %s prompts are longer than %d tokens and left out",
                 len(prompts) - len(keep), len(prompts), prompts.name, max_tokens)
    return keep


def circle_loss(margin: float, gamma: float):
    from pytorch_metric_learning.losses import CircleLoss

    return CircleLoss(m=margin, gamma=gamma)


def contrastive_refine(
    model, seemingly: PromptSet, harmful: PromptSet, config: ContrastiveConfig, out_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
) -> ContrastiveResult:
    """Push seemingly harmful and harmful prompts apart at layer ``config.layer``; tail frozen.

    ``callbacks`` (the trainer's, e.g. refusal probability or gradient-kernel similarity) see the whole
    model, so they run between steps, outside the truncated forward.
    """
    seemingly, harmful = (_short(model, ps, config.max_tokens) for ps in (seemingly, harmful))
    for name, ps in (("seemingly_harmful", seemingly), ("harmful", harmful)):
        if len(ps) < 2:
            raise EmptyPromptClassError(f"contrastive stage needs >= 2 {name} prompts, got {len(ps)}")
    frozen = tail_parameter_names(model, config.layer)
    freeze(model, frozen)
    params = [p for p in model.hf.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    loss_fn = circle_loss(config.margin, config.gamma)
    labels = torch.tensor([0] * config.per_class + [1] * config.per_class, device=model.device)
    losses: list[float] = []
    history: list[dict] = []
    run_callbacks(callbacks, model, 0, history)
    model.hf.train()
    batches = balanced_batches(len(seemingly), len(harmful), config.per_class, config.steps, config.seed)
    for step, (ia, ib) in enumerate(tqdm(batches, total=config.steps, desc="dcr contrastive")):
        texts = [seemingly[i].text for i in ia] + [harmful[i].text for i in ib]
        with truncated(model, config.layer):
            emb = pooled(model, texts, config.layer, config.pooling)
        loss = loss_fn(emb.float(), labels)
        check_finite(loss, step)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % config.callback_every == 0 or step + 1 == config.steps:
            run_callbacks(callbacks, model, step + 1, history)
    model.hf.eval()
    for p in model.hf.parameters():
        p.requires_grad_(True)
    result = ContrastiveResult(losses, frozen, asdict(config), history)
    if out_dir is not None:
        write_json(Path(out_dir) / "contrastive.json", asdict(result))
    return result
