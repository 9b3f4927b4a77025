"""``interp explore``: an interactive head and feature explorer (Dash) over a figures folder.

:func:`load_results` reads what the pipeline saved; :func:`build_app` makes the app; live actions run on a
lazily loaded model through :class:`LiveRunner`, one at a time.
"""

from interp.explore.app import build_app
from interp.explore.results import Results, load_results
from interp.explore.runner import LiveRunner

__all__ = ["LiveRunner", "Results", "build_app", "load_results"]
