"""TRACE's stages as resumable steps that write JSON results: triage, score, train.

``OUT/triage.json`` (the policy, action counts overall and per category, the action of every pair by
prompt uid), ``OUT/impact.json`` (score and weight of every update item, seconds per scored pair; reused
by a later ``train`` stage when pairs and scoring settings are unchanged), ``OUT/train.json`` and
``OUT/model`` (the trainer's), and ``OUT/realign.json`` (a summary of all stages run). Responses are not
written: self-distilled answers to sensitive prompts stay out of result files.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Literal

from interp.data.preferences import LabelledPair
from interp.io import write_json
from interp.realign.config import RealignConfig
from interp.realign.impact import score_impact
from interp.realign.pipeline import RealignPlan, prepare
from interp.realign.plan import with_weights
from interp.realign.policy import Policy
from interp.realign.trainer import train_realign

Stage = Literal["triage", "score", "train"]
STAGES: tuple[str, ...] = ("triage", "score", "train")


def _triage_record(plan: RealignPlan, policy: Policy) -> dict:
    return {
        "policy": policy.to_dict(), "counts": plan.triage.counts(), "n_gold": len(plan.gold),
        "by_category": plan.triage.counts_by(plan.pairs, "category"),
        "by_label": plan.triage.counts_by(plan.pairs, "label"),
        "pairs": [{"uid": p.prompt.uid, "label": p.prompt.label, "category": p.prompt.category, "action": a.value}
                  for p, a in zip(plan.pairs, plan.triage.actions, strict=True)],
    }


def _score_key(model, plan: RealignPlan, config: RealignConfig) -> str:
    settings = {k: v for k, v in asdict(config).items()
                if k in ("loss", "beta", "params", "gold_fraction", "gold_scope", "seed", "max_length", "batch_size")}
    h = hashlib.sha1(json.dumps([model.name, settings], sort_keys=True, default=list).encode())
    for it in list(plan.updates) + [None] + [g for g in plan.gold]:
        pair = getattr(it, "pair", it)
        if pair is not None:
            h.update(f"{getattr(it, 'kind', 'gold')}\x00{pair.prompt.text}\x00{pair.chosen}\x00{pair.rejected}\x01"
                     .encode())
    return h.hexdigest()[:16]


def _score(model, plan: RealignPlan, config: RealignConfig, out: Path) -> tuple[RealignPlan, dict]:
    key = _score_key(model, plan, config)
    path = out / "impact.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            return replace(plan, updates=tuple(with_weights(plan.updates, saved["weights"]))), saved
    t0 = time.perf_counter()
    scores = score_impact(model, plan.updates, plan.gold, config)
    seconds = time.perf_counter() - t0
    record = {
        "key": key, **scores.to_dict(), "n_scored": len(plan.updates),
        "seconds_per_pair": scores.seconds_items / max(1, len(plan.updates)), "seconds": seconds,
        "items": [{"uid": it.pair.prompt.uid, "label": it.pair.prompt.label, "category": it.pair.prompt.category,
                   "kind": it.kind, "raw": r, "weight": w}
                  for it, r, w in zip(plan.updates, scores.raw, scores.weights, strict=True)],
    }
    write_json(path, record)
    return replace(plan, updates=tuple(with_weights(plan.updates, scores.weights)), impact=scores), record


def run_stages(
    model, pairs: Sequence[LabelledPair], policy: Policy, config: RealignConfig, out: str | Path,
    stage: Stage = "train", provenance: dict | None = None,
) -> dict:
    """Run the stages up to ``stage``; returns (and writes to ``OUT/realign.json``) their summary."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    out = Path(out)
    plan = prepare(model, pairs, policy, config, score=False)
    summary: dict = {"config": asdict(config), "n_pairs": len(pairs), **(provenance or {})}
    triage_rec = _triage_record(plan, policy)
    write_json(out / "triage.json", triage_rec)
    summary["triage"] = {k: triage_rec[k] for k in ("counts", "n_gold", "by_category")}
    if stage != "triage" and config.uses_impact:
        plan, rec = _score(model, plan, config, out)
        summary["impact"] = {k: rec[k] for k in ("n_scored", "n_gold", "seconds_per_pair", "seconds_gold",
                                                  "gold_loss", "gold_grad_norm", "n_params")}
        summary["impact"]["n_positive"] = sum(w > 0 for w in rec["weights"])
    if stage == "train":
        result = train_realign(model, plan.items, config, out, provenance={"policy": policy.to_dict(),
                                                                           **(provenance or {})})
        summary["train"] = {"steps": result.steps, "n_items": result.n_items, "model_dir": str(result.model_dir),
                            "seconds_per_step": result.seconds_per_step,
                            "first_loss": result.losses[0][1] if result.losses else None,
                            "last_loss": result.losses[-1][1] if result.losses else None}
    write_json(out / "realign.json", summary)
    return summary
