"""Evaluation records safe to publish: no harmful prompt or reply text, only ids and verdicts.

Figures and their JSON are committed; harmful benchmark prompts and a model's compliant answers to them
must not be. :func:`redact` replaces every prompt text by its stable id and drops the replies of
harmful prompts, keeping labels, sources, verdicts and scores, so :func:`interp.evaluate.compare.compare`
still pairs two redacted evaluations (the ids are the same for the same text).
"""

from __future__ import annotations

import copy
import hashlib

HARMFUL = "harmful"


def text_id(text: str) -> str:
    """Stable id of a prompt text (what a redacted record keeps instead of the text)."""
    return "sha1:" + hashlib.sha1(text.strip().encode()).hexdigest()[:16]


def redact(result: dict) -> dict:
    """A copy of an ``EvalResult.to_dict()`` with prompt texts replaced by ids, harmful replies removed."""
    out = copy.deepcopy(result)
    for r in out.get("records", []):
        r["prompt"] = text_id(r["prompt"])
        if r.get("label") == HARMFUL:
            r["response"] = None
    out.setdefault("provenance", {})["redacted"] = "prompt texts replaced by sha1 ids; harmful replies dropped"
    return out
