"""One lazily loaded model (and SAE) for the explorer's live actions, run one at a time under a lock.

Dash serves callbacks from several threads; a forward pass with hooks attached must not interleave with
another, so every live action takes the lock for its whole duration (the page shows a spinner).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from interp.errors import InterpError

log = logging.getLogger(__name__)
T = TypeVar("T")


class LiveRunner:
    """Loads ``model_name`` on the first live action; runs actions serially.

    ``sae_path``: an SAE folder (``interp sae train``) for the Prompt lab's top features, loaded on
    first use; relative paths are tried against the working directory, then ``base``.
    """

    def __init__(self, model_name: str, sae_path: str | None = None, device: str | None = "cpu",
                 base: Path | None = None, loader: Callable | None = None):
        self.model_name = model_name
        self.sae_path = sae_path
        self.device = device
        self.base = base
        self._loader = loader
        self._model = None
        self._sae = None
        self._lock = threading.Lock()
        self.calls = 0
        """Live actions run so far (the tests read it)."""

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self):
        if self._model is None:
            from interp.models import load_model

            log.info("explorer: loading model %s", self.model_name)
            loader = self._loader or (lambda name: load_model(name, device=self.device))
            self._model = loader(self.model_name)
        return self._model

    def run(self, fn: Callable[..., T]) -> T:
        """``fn(model)`` with the model loaded, holding the lock (one live action at a time)."""
        with self._lock:
            self.calls += 1
            return fn(self._load())

    def run_with_sae(self, fn: Callable[..., T]) -> T:
        """``fn(model, trained_sae)``; fails clearly when no SAE folder is known or it cannot be found."""
        with self._lock:
            self.calls += 1
            model = self._load()
            if self._sae is None:
                from interp.sae.train import load_sae

                self._sae = load_sae(self._sae_folder(), device=model.device)
                self._sae.site.check(model.spec)
            return fn(model, self._sae)

    def _sae_folder(self) -> Path:
        if not self.sae_path:
            raise InterpError("no SAE known: the figures have no feature_attribution.json naming one "
                              "(pass --sae DIR)")
        for cand in (Path(self.sae_path), *(([self.base / self.sae_path]) if self.base else [])):
            if cand.is_dir():
                return cand
        raise InterpError(f"SAE folder {self.sae_path!r} not found (relative to the working directory"
                          f"{' or ' + str(self.base) if self.base else ''}; pass --sae DIR)")
