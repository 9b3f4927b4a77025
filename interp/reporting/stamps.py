"""Stage stamps: what produced a stage's folder, so a rerun skips it and the report can name the command.

A stamp is written only after a stage succeeded, atomically, so an interrupted stage leaves none and runs
again. It records the exact command line; a stage whose stamp holds another command (other sizes, another
model, another data directory) is run again rather than trusted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

STAMP = "report_stage.json"
"""File name of the stamp inside a stage's output folder."""


@dataclass(frozen=True)
class StageStamp:
    """One finished stage."""

    stage: str
    """Stage name (``foundation``, ``align``, ...)."""
    profile: str
    """Profile the stage ran under (``quick`` / ``full``)."""
    command: tuple[str, ...]
    """The command line it ran, e.g. ``("python", "analyses/foundation_eval.py", "--out", ...)``."""
    seconds: float
    """Wall-clock time the stage took."""
    finished: str
    """UTC time it finished (ISO 8601)."""

    def to_dict(self) -> dict:
        return asdict(self) | {"command": list(self.command)}


def read_stamp(folder: str | Path) -> StageStamp | None:
    """The stamp in ``folder``, or None when there is none (the stage never finished there)."""
    path = Path(folder) / STAMP
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    try:
        return StageStamp(stage=raw["stage"], profile=raw["profile"], command=tuple(raw["command"]),
                          seconds=float(raw["seconds"]), finished=raw["finished"])
    except KeyError as exc:
        raise ValueError(f"stage stamp {path} lacks the field {exc.args[0]!r}; delete it to rerun the stage") from exc


def write_stamp(folder: str | Path, stamp: StageStamp) -> Path:
    from interp.io import write_json

    return write_json(Path(folder) / STAMP, stamp.to_dict())


def is_done(folder: str | Path, command: tuple[str, ...] | list[str]) -> bool:
    """Whether the stage in ``folder`` already finished with exactly this command."""
    stamp = read_stamp(folder)
    return stamp is not None and stamp.command == tuple(command)
