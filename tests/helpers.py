"""Small pieces several test files share (the tests folder is on sys.path under pytest)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


class Kill:
    """A training callback that interrupts the run at step ``at`` (as a kill would), for resume tests."""

    def __init__(self, at: int):
        self.at = at

    def __call__(self, model, step):
        if step == self.at:
            raise KeyboardInterrupt


def load_analysis(name: str):
    """Import ``analyses/NAME.py`` as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"analysis_{name}", ANALYSES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def train_with_constraint(model, constraint, texts, steps: int = 2, lr: float = 3e-2) -> None:
    """A few Adam steps of next-token loss on ``texts``, with an update constraint around each step."""
    import torch

    opt = torch.optim.Adam([p for p in model.hf.parameters() if p.requires_grad], lr=lr)
    enc = model.encode(texts)
    for _ in range(steps):
        logits = model.logits(enc)
        lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, enc.input_ids[:, 1:, None])[..., 0]
        loss = -(lp * enc.attention_mask[:, 1:]).sum() / enc.attention_mask[:, 1:].sum()
        loss.backward()
        if constraint:
            constraint.before_step(model)
        opt.step()
        if constraint:
            constraint.after_step(model)
        opt.zero_grad(set_to_none=True)


def planted_sae_setup(site, token: int, planted: int, d_sae: int = 8):
    """Tiny model, three prompts and an SAE at ``site`` whose feature ``planted`` lies along the gradient of
    the metric (logit of ``token`` at the last position): ablating it moves the metric most.

    Every feature is active everywhere with similar activations (large encoder bias), so only the
    direction tells the planted feature apart. Returns (model, sae, [MetricBatch]).
    """
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig

    from interp.models import load_model
    from interp.sae.attribution import MetricBatch

    model = load_model("tiny")
    enc = model.encode_chat(["tell me a story", "what is two plus two", "hello"])

    def fn(logits, enc):
        return logits[:, -1, token].sum()

    grads = {}  # gradient of the metric w.r.t. the site activation, summed over positions and prompts

    def grab(act, *, hook):
        act.register_hook(lambda g: grads.update(g=g))
        return act

    with model.hooks(fwd=[(site.site, grab)]):
        fn(model.logits(enc), enc).backward()
    model.hf.zero_grad(set_to_none=True)
    g = site.extract(grads["g"]).sum((0, 1)).detach()
    d = site.width(model.spec)
    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=d_sae, apply_b_dec_to_input=False))
    w = torch.randn(d_sae, d, generator=torch.Generator().manual_seed(0))
    w[planted] = g
    w = w / w.norm(dim=1, keepdim=True)
    with torch.no_grad():
        sae.W_dec.copy_(w)
        sae.W_enc.copy_(w.T * 0.1)
        sae.b_enc.fill_(5.0)
        sae.b_dec.zero_()
    return model, sae, [MetricBatch(enc, fn)]
