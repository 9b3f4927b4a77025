"""Data parallelism across the processes of ``accelerate launch``: who does which batch, and gathering.

Outside ``accelerate launch`` (or ``torchrun``) there is one process and every helper here is the
identity, so library code calls them unconditionally. Under a launcher *every* process must call the
same data-parallel function with the same arguments: they exchange results, and one process that
skips the call leaves the others waiting.

Work is split by whole batches. Batches are formed exactly as one process would form them and each
process runs every N-th one, so a left-padded batch holds the same rows (and padding) as it would in
a single process and the gathered results are bitwise those of one process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from torch import Tensor

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the launched ones."""

    rank: int
    """Index of this process (0 is the main one)."""
    size: int
    """Number of processes."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
"""Where torchrun (``accelerate launch --multi_gpu``) and the MPI launchers put the number of processes."""


def launched() -> bool:
    """Whether this process is one of several started by a launcher (the same test accelerate makes)."""
    return any(int(os.environ.get(var, "1") or "1") > 1 for var in _SIZE_VARS)


def world() -> World:
    """Rank and number of processes; starts accelerate's process group when launched and not yet started."""
    if not launched():
        return World(0, 1)
    from accelerate import PartialState

    state = PartialState()
    return World(state.process_index, state.num_processes)


def strided(items: Sequence[T], w: World | None = None) -> list[tuple[int, T]]:
    """This process's share of ``items`` as (position, item): positions rank, rank + N, rank + 2N, ..."""
    w = w or world()
    return [(i, items[i]) for i in range(w.rank, len(items), w.size)]


def gather_in_order(local: Sequence[tuple[int, T]], n: int) -> list[T]:
    """Every process's (position, value) pairs, put back in position order 0..n-1, on every process."""
    if not launched():
        pairs = list(local)
    else:
        from accelerate.utils import gather_object

        pairs = gather_object(list(local))
    out: list = [None] * n
    seen = [False] * n
    for i, value in pairs:
        out[i], seen[i] = value, True
    if not all(seen):
        missing = [i for i, s in enumerate(seen) if not s]
        raise RuntimeError(f"data-parallel gather lost positions {missing[:5]} of {n}; every process must make "
                           "the same call with the same inputs")
    return out


def map_batches(batches: Sequence[T], run: Callable[[int, T], object]) -> list:
    """``run(b, batch)`` for every batch, each process running its stride; results in batch order, everywhere."""
    w = world()
    local = [(b, run(b, batch)) for b, batch in strided(batches, w)]
    return gather_in_order(local, len(batches))


def split_evenly(items: Sequence[T], parts: int) -> list[list[T]]:
    """``items`` cut into ``parts`` contiguous pieces whose sizes differ by at most one (some may be empty)."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    q, r = divmod(len(items), parts)
    out, start = [], 0
    for k in range(parts):
        size = q + (k < r)
        out.append(list(items[start:start + size]))
        start += size
    return out


def input_batches(n: int, batch_size: int) -> list[list[int]]:
    """Positions 0..n-1 in contiguous chunks of ``batch_size`` (how unsorted batching cuts its inputs)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]


def whole_batch_share(lengths: Sequence[int] | None, batch_size: int, w: World | None = None,
                      n: int | None = None) -> list[int]:
    """Positions of this process's items: every N-th batch, the batches formed as one process forms them.

    With ``lengths`` the batches are ``sorted_batches(lengths, batch_size)``; with ``lengths=None``
    they are contiguous chunks of the ``n`` inputs. Either way a function that batches its inputs so
    re-forms exactly these batches from the share alone (each batch is a contiguous run of the order,
    and all but the globally last one are full), so it can run unchanged on the share.
    """
    from interp.evaluate.batching import sorted_batches

    w = w or world()
    if lengths is None:
        if n is None:
            raise ValueError("whole_batch_share needs lengths or n")
        batches = input_batches(n, batch_size)
    else:
        batches = sorted_batches(lengths, batch_size)
    return sorted(i for _, idx in strided(batches, w) for i in idx)


def run_sharded(fn: Callable[[list[T]], Sequence | Tensor], items: Sequence[T], batch_size: int,
                lengths: Sequence[int] | None = None) -> list | Tensor:
    """``fn(items)`` computed data-parallel: each process calls ``fn`` on its whole batches, results gathered.

    ``fn`` returns one result per item (a list, or a tensor with one row per item) and must batch its
    inputs by ``batch_size`` as :func:`whole_batch_share` describes: ``sorted_batches`` over ``lengths``
    (generation, first-token logits, ...) or, with ``lengths=None``, contiguous chunks in input order
    (activation collection). Then every result equals one process's bitwise. In one process this is
    ``fn(items)`` itself; launched, a list of per-item results (tensor rows on the CPU).
    """
    if lengths is not None and len(lengths) != len(items):
        raise ValueError(f"{len(lengths)} lengths for {len(items)} items")
    if not launched():
        return fn(list(items))
    mine = whole_batch_share(lengths, batch_size, n=len(items))
    results = fn([items[i] for i in mine]) if mine else []
    if len(results) != len(mine):
        raise ValueError(f"{getattr(fn, '__name__', fn)} returned {len(results)} results for {len(mine)} items")
    rows = [r.cpu() if hasattr(r, "cpu") else r for r in results]
    return gather_in_order(list(zip(mine, rows, strict=True)), len(items))


def barrier() -> None:
    """Wait until every process gets here (e.g. until the main one has written a file the others read)."""
    if launched():
        from accelerate import PartialState

        PartialState().wait_for_everyone()
