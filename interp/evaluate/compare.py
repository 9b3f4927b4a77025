"""Compare two evaluations prompt by prompt: every shared metric as a paired difference.

Works on :class:`~interp.evaluate.harness.EvalResult` objects or their JSON (``EvalResult.to_dict``),
so cached evaluations of different checkpoints can be compared later. Prompts are matched by
(class, source, text); only prompts both evaluations scored enter a comparison.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from interp.evaluate.harness import GENERATION_LABELS, OUTCOMES
from interp.evaluate.paired import PairedComparison, paired_rates, paired_scores


def _as_dict(result) -> dict:
    if isinstance(result, str | Path):
        return json.loads(Path(result).read_text())
    return result if isinstance(result, dict) else result.to_dict()


def _records(result: dict) -> dict[tuple[str, str, str], dict]:
    out = {}
    for r in result["records"]:
        out[(r["label"], r["source"], r["prompt"])] = r
    return out


def _groups(keys: list[tuple[str, str, str]]) -> dict[str, list[tuple[str, str, str]]]:
    """Pooled per class (``harmful``) and per source (``harmful[source=advbench]``)."""
    groups: dict[str, list] = defaultdict(list)
    for k in keys:
        groups[k[0]].append(k)
        groups[f"{k[0]}[source={k[1]}]"].append(k)
    return groups


def _metric(group: str, name: str) -> str:
    label, _, rest = group.partition("[")
    return f"{label}/{name}" + (f"[{rest}" if rest else "")


def compare(a, b, alpha: float = 0.05, min_n: int = 2) -> list[PairedComparison]:
    """``b - a`` for rates of each outcome, first-token refusal log-odds, and MC1/MC2, pooled and per source.

    ``a`` and ``b``: EvalResults, their dicts or JSON paths. Groups with fewer than ``min_n`` shared
    prompts are left out. Rates use the exact McNemar test; scores the paired t-test.
    """
    da, db = _as_dict(a), _as_dict(b)
    ra, rb = _records(da), _records(db)
    shared = sorted(set(ra) & set(rb))
    if not shared:
        raise ValueError("the two evaluations share no prompts; compare models on the same prompt set")
    out: list[PairedComparison] = []
    for group, keys in sorted(_groups(shared).items(), key=lambda kv: ("[" in kv[0], kv[0])):
        if len(keys) < min_n:
            continue
        x, y = [ra[k] for k in keys], [rb[k] for k in keys]
        if keys[0][0] in GENERATION_LABELS and all(r.get("outcome") for r in x + y):
            for kind in OUTCOMES:
                out.append(paired_rates([r["outcome"] == kind for r in x], [r["outcome"] == kind for r in y],
                                        _metric(group, f"{kind}_rate"), alpha))
        out.append(paired_scores([r["refusal_score"] for r in x], [r["refusal_score"] for r in y],
                                 _metric(group, "refusal_score"), alpha))
    out += _compare_mc(da, db, alpha, min_n)
    return out


def _compare_mc(da: dict, db: dict, alpha: float, min_n: int) -> list[PairedComparison]:
    ma = {(r["source"], r["prompt"]): r for r in da.get("mc_records", [])}
    mb = {(r["source"], r["prompt"]): r for r in db.get("mc_records", [])}
    shared = sorted(set(ma) & set(mb))
    groups: dict[str, list] = defaultdict(list)
    for k in shared:
        groups["factual"].append(k)
        groups[f"factual[source={k[0]}]"].append(k)
    out = []
    for group, keys in sorted(groups.items(), key=lambda kv: ("[" in kv[0], kv[0])):
        if len(keys) < min_n:
            continue
        out.append(paired_rates([bool(ma[k]["mc1"]) for k in keys], [bool(mb[k]["mc1"]) for k in keys],
                                _metric(group, "mc1"), alpha))
        out.append(paired_scores([float(ma[k]["mc2"]) for k in keys], [float(mb[k]["mc2"]) for k in keys],
                                 _metric(group, "mc2"), alpha))
    return out
