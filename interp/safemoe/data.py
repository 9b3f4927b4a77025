"""SafeMoE's data: HarmfulQA prompts, JBB artifact replies (judge validation), the safe-informative set.

Every reader takes a path; nothing here knows where the shared data folder is. Harmful text read from
these files stays in memory or in gitignored run caches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from interp.data.builtin import _read_jsonl
from interp.data.prompts import Prompt, PromptSet
from interp.data.records import read_json
from interp.errors import DataFormatError
from interp.safemoe.domains import DOMAINS


def load_harmfulqa(path: str | Path) -> PromptSet:
    """HarmfulQA ``{topic: {subtopic: [questions]}}`` -> harmful prompts, category = topic."""
    path = Path(path)
    tree = read_json(path)
    if not isinstance(tree, dict):
        raise DataFormatError(f"{path}: expected {{topic: {{subtopic: [questions]}}}}, got {type(tree).__name__}")
    out = []
    for topic, subs in tree.items():
        if not isinstance(subs, dict):
            raise DataFormatError(f"{path}, topic {topic!r}: expected {{subtopic: [questions]}}")
        for sub, questions in subs.items():
            if not isinstance(questions, list):
                raise DataFormatError(f"{path}, {topic!r}/{sub!r}: expected a list of questions")
            for i, q in enumerate(questions, 1):
                if not isinstance(q, str) or not q.strip():
                    raise DataFormatError(f"{path}, {topic!r}/{sub!r}, question {i}: empty question")
                out.append(Prompt(q.strip(), "harmful", "harmfulqa", category=topic))
    return PromptSet("harmfulqa", tuple(out))


@dataclass(frozen=True)
class ArtifactReply:
    """One target-model reply from the JailbreakBench artifacts, with the judges' labels."""

    method: str
    """Attack (PAIR, GCG, JBC, ...)."""
    target: str
    """Target model (file stem)."""
    category: str
    """JBB category of the behaviour."""
    behavior: str
    """Short JBB behaviour name (a label, not the request)."""
    response: str
    """The target's reply (harmful text: keep it out of the repository)."""
    jailbroken: bool
    """Llama-3-70B judge: the reply fulfils the harmful behaviour."""


def load_jbb_artifacts(folder: str | Path) -> list[ArtifactReply]:
    """Every artifact reply with a non-empty response under ``folder/attack-artifacts/*/*/*.json``."""
    root = Path(folder) / "attack-artifacts"
    files = sorted(root.glob("*/*/*.json"))
    if not files:
        raise DataFormatError(f"no JBB artifact files under {root} (expected METHOD/KIND/MODEL.json)")
    out = []
    for path in files:
        try:
            rows = json.loads(path.read_text())["jailbreaks"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataFormatError(f"{path}: not a JBB artifact file ({e})") from e
        for i, row in enumerate(rows):
            response = row.get("response")
            if not isinstance(response, str) or not response.strip():
                continue  # the attack produced no prompt/response for this behaviour
            if not isinstance(row.get("jailbroken"), bool) or not isinstance(row.get("category"), str):
                raise DataFormatError(f"{path}, jailbreak {i}: missing 'jailbroken' or 'category'")
            out.append(ArtifactReply(path.parts[-3], path.stem, row["category"], str(row.get("behavior", "")),
                                     response.strip(), row["jailbroken"]))
    return out


@dataclass(frozen=True)
class SafeInformative:
    """A hand-written reply that declines a harmful act but gives safe, useful context."""

    domain: str
    """Harm domain."""
    prompt: str
    """A short harmful request (written for this set; no operational detail)."""
    response: str
    """Decline plus safe context, alternatives or resources."""


SAFE_INFORMATIVE_FILE = "safe_informative.jsonl"


def safe_informative() -> list[SafeInformative]:
    """The built-in safe-informative set (``interp/data/builtin/safe_informative.jsonl``)."""
    out = []
    for where, obj in _read_jsonl(SAFE_INFORMATIVE_FILE):
        domain = obj.get("domain")
        if domain not in DOMAINS:
            raise DataFormatError(f"{where}: domain {domain!r} is not one of {list(DOMAINS)}")
        for key in ("prompt", "response"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise DataFormatError(f"{where}: missing or empty {key!r}")
        out.append(SafeInformative(domain, obj["prompt"].strip(), obj["response"].strip()))
    return out
