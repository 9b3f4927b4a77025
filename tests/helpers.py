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
