"""The parameter subset TRACE scores and trains, chosen by name patterns."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from interp.errors import InterpError


def select_parameters(model, patterns: Sequence[str]) -> dict[str, torch.nn.Parameter]:
    """Clean name -> parameter for every name matching a pattern; a pattern matching nothing fails."""
    named = model.named_parameters()
    out: dict[str, torch.nn.Parameter] = {}
    for pattern in patterns:
        hits = [n for n in named if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            sample = ", ".join(list(named)[:6])
            raise InterpError(f"parameter pattern {pattern!r} matches no parameter of {model.name!r} "
                              f"(names look like: {sample}, ...)")
        out.update((n, named[n]) for n in hits)
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
