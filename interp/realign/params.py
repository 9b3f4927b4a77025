"""The parameter subset TRACE scores and trains, chosen by name patterns."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import torch

from interp.errors import InterpError
from interp.models.params import only_these_require_grad

__all__ = ["only_these_require_grad", "select_parameters"]


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
