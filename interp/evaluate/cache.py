"""A cached evaluation is reused only if it scored exactly these prompts with these settings.

Analyses that evaluate several models write each full :class:`~interp.evaluate.harness.EvalResult` as JSON
(under ``runs/``: it holds harmful replies) and, when rerun after an interruption, read it back instead of
generating again. A cache made with other settings, another dtype, other prompts or another model is an
error naming what differs, never silently reused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path


def _as_config_dict(config) -> dict:
    """``config`` (an EvalConfig or its dict) as it reads back from a cached JSON."""
    return json.loads(json.dumps(asdict(config) if is_dataclass(config) else config))


def load_cached_eval(path: str | Path, config, prompts, dtype: str = "float32",
                     model_provenance: dict | None = None) -> dict:
    """The evaluation cached at ``path``, only if it used ``config``, ``dtype``, exactly ``prompts`` and (when
    given) a model with ``model_provenance``; else a ValueError naming the difference. Evaluations cached
    before the dtype was recorded were float32."""
    path = Path(path)
    saved = json.loads(path.read_text())
    prov = saved["provenance"]
    hint = "delete it or run without reusing"
    if prov.get("dtype", "float32") != dtype:
        raise ValueError(f"{path} was evaluated in {prov.get('dtype', 'float32')}, not {dtype}; {hint}")
    config = _as_config_dict(config)
    if prov.get("config") != config:
        old = prov.get("config", {})
        differ = sorted(k for k in config.keys() | old.keys() if old.get(k) != config.get(k))
        raise ValueError(f"{path} was evaluated with other settings (differing: {', '.join(differ)}); {hint}")
    want = sorted((p.label, p.source, p.text) for p in prompts)
    got = sorted((r["label"], r["source"], r["prompt"]) for r in saved["records"])
    if want != got:
        raise ValueError(f"{path} scored other prompts ({len(got)} cached vs {len(want)} now); {hint}")
    if model_provenance is not None:
        now = _as_config_dict(model_provenance)
        if prov.get("model_provenance") != now:
            raise ValueError(f"{path} evaluated another model ({prov.get('model_provenance', {}).get('checkpoint')!r},"
                             f" provenance differs from {now.get('checkpoint')!r}'s); {hint}")
    return saved


def evaluate_to(path: str | Path, model, prompts, config, judge_model=None, dtype: str = "float32") -> dict:
    """``evaluate(model, prompts, config, judge_model=...)`` written to ``path`` atomically, with the dtype and
    device in its provenance (what :func:`load_cached_eval` checks); returns the JSON's dict, so a first run
    and a rerun that reads the cache see the same."""
    from interp.evaluate.harness import evaluate
    from interp.io import write_json

    saved = evaluate(model, prompts, config, judge_model=judge_model).to_dict()
    saved["provenance"] |= {"dtype": dtype, "device": str(model.device)}
    write_json(path, saved)
    return json.loads(Path(path).read_text())


def evaluate_cached(path: str | Path, model, prompts, config, judge_model=None, dtype: str = "float32") -> dict:
    """The evaluation at ``path`` when it holds this very one (:func:`load_cached_eval`, checked against
    ``model``'s provenance), else :func:`evaluate_to` ``path``."""
    if Path(path).exists():
        return load_cached_eval(path, config, prompts, dtype, model.provenance)
    return evaluate_to(path, model, prompts, config, judge_model, dtype)
