"""Is the installed stack the tested one? Compare installed versions with the lock file.

The workbench's numbers depend on exact versions (``transformers`` 5.24.0 renamed the KV-cache argument
that transformer-lens 3.9's attention reads, which silently broke cached generation until
``interp.models.load`` routed it), so ``workbench.sh`` installs ``requirements.lock`` and
checks the result with :func:`lock_mismatches`; ``interp doctor`` runs the same check by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from interp.errors import DataFormatError

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


@dataclass(frozen=True)
class Mismatch:
    """A locked package whose installed version differs (``installed`` None: not installed)."""

    package: str
    locked: str
    installed: str | None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: str | Path) -> dict[str, str]:
    """``name==version`` pins of a pip-compile / uv style lock file (comments and hashes skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lock file {path} not found")
    pins: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "-", "--hash")):
            continue
        m = _PIN.match(line)
        if m is None:
            raise DataFormatError(f"{path}:{n}: expected 'name==version', got {line!r}")
        pins[_canonical(m.group(1))] = m.group(2)
    if not pins:
        raise DataFormatError(f"lock file {path} pins no packages")
    return pins


def _same(locked: str, installed: str) -> bool:
    # A local build label (torch 2.13.0+cpu) satisfies a pin without one, as pip's == does.
    return installed == locked or ("+" not in locked and installed.split("+", 1)[0] == locked)


def lock_mismatches(pins: dict[str, str]) -> list[Mismatch]:
    """Locked packages that are missing or installed at another version."""
    out = []
    for name, locked in sorted(pins.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or not _same(locked, installed):
            out.append(Mismatch(name, locked, installed))
    return out
