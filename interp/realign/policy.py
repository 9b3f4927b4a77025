"""A content policy as data: ordered rules over prompt metadata that say whether a reply must refuse.

A policy maps a prompt's metadata (``label``, ``source``, ``category``, ``subcategory``, ``style``) to a
requirement, ``refuse``, ``comply`` or ``any``. Rules are tried in order and the first whose every
condition matches decides; a prompt no rule matches gets the default. A researcher writes one as TOML::

    name = "loosen-history"
    default = "any"

    [[rule]]                      # educational history questions must now be answered
    label = "seemingly_harmful"
    category = ["history", "definition"]
    require = "comply"

A condition's value is a string or a list of strings (the field must equal one of them). Any callable
with the same interface (metadata in, requirement out) serves as a policy too; :func:`requirement_of`
checks what it returns.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from interp.data.prompts import Prompt
from interp.errors import InterpError

Requirement = Literal["refuse", "comply", "any"]
REQUIREMENTS: tuple[str, ...] = ("refuse", "comply", "any")
FIELDS: tuple[str, ...] = ("label", "source", "category", "subcategory", "style")
"""Metadata a rule may condition on (``subcategory`` is None for prompts whose data set has none)."""

Metadata = Mapping[str, str | None]
PolicyFn = Callable[[Metadata], str]
"""The callable interface: a prompt's metadata in, ``refuse``/``comply``/``any`` out."""


class PolicyError(InterpError):
    """A policy file or rule that is malformed: names the file, the rule and the bad key or value."""


def prompt_metadata(prompt: Prompt, subcategory: str | None = None) -> dict[str, str | None]:
    """The fields a policy sees for one prompt."""
    return {"label": prompt.label, "source": prompt.source, "category": prompt.category,
            "subcategory": subcategory, "style": prompt.style}


@dataclass(frozen=True)
class Rule:
    """Conditions on metadata fields (all must hold) and what a matching prompt requires."""

    when: tuple[tuple[str, tuple[str, ...]], ...]
    """(field, allowed values) pairs; the field must equal one of the values."""
    require: Requirement
    """What a reply to a matching prompt must do."""

    def __post_init__(self) -> None:
        if self.require not in REQUIREMENTS:
            raise PolicyError(f"unknown requirement {self.require!r}; expected one of {REQUIREMENTS}")
        for name, values in self.when:
            if name not in FIELDS:
                raise PolicyError(f"unknown metadata field {name!r}; expected one of {FIELDS}")
            if not values:
                raise PolicyError(f"condition on {name!r} lists no values")

    def matches(self, meta: Metadata) -> bool:
        return all(meta.get(name) in values for name, values in self.when)


@dataclass(frozen=True)
class Policy:
    """Ordered rules, first match wins, and the requirement of prompts no rule matches."""

    name: str
    """Short name, recorded with results."""
    rules: tuple[Rule, ...]
    """Tried in order."""
    default: Requirement = "any"
    """Requirement when no rule matches."""

    def __post_init__(self) -> None:
        if self.default not in REQUIREMENTS:
            raise PolicyError(f"policy {self.name!r}: unknown default {self.default!r}; expected one of "
                              f"{REQUIREMENTS}")

    def __call__(self, meta: Metadata) -> Requirement:
        unknown = sorted(set(meta) - set(FIELDS))
        if unknown:
            raise PolicyError(f"policy {self.name!r} was given unknown metadata fields {unknown}; "
                              f"expected a subset of {FIELDS}")
        for rule in self.rules:
            if rule.matches(meta):
                return rule.require
        return self.default

    def to_dict(self) -> dict:
        return {"name": self.name, "default": self.default,
                "rule": [{**{k: list(v) for k, v in r.when}, "require": r.require} for r in self.rules]}


def requirement_of(policy: Policy | PolicyFn, meta: Metadata) -> Requirement:
    """What ``policy`` requires for ``meta``; a callable returning anything else fails, naming it."""
    out = policy(meta)
    if out not in REQUIREMENTS:
        name = getattr(policy, "name", None) or getattr(policy, "__name__", repr(policy))
        raise PolicyError(f"policy {name!r} returned {out!r} for {dict(meta)}; expected one of {REQUIREMENTS}")
    return out


def _rule_from(raw: object, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: a rule must be a table, got {type(raw).__name__}")
    if "require" not in raw:
        raise PolicyError(f"{where}: missing 'require' (one of {REQUIREMENTS})")
    require = raw["require"]
    if require not in REQUIREMENTS:
        raise PolicyError(f"{where}: unknown requirement {require!r}; expected one of {REQUIREMENTS}")
    when = []
    for key, value in raw.items():
        if key == "require":
            continue
        if key not in FIELDS:
            raise PolicyError(f"{where}: unknown field {key!r}; expected one of {FIELDS} or 'require'")
        values = (value,) if isinstance(value, str) else value
        if not isinstance(values, list | tuple) or not values or not all(isinstance(v, str) for v in values):
            raise PolicyError(f"{where}: {key!r} must be a string or a non-empty list of strings, got {value!r}")
        when.append((key, tuple(values)))
    if not when:
        raise PolicyError(f"{where}: a rule needs at least one condition (use 'default' for the rest)")
    return Rule(tuple(when), require)


def policy_from_dict(data: Mapping, where: str = "policy") -> Policy:
    """A policy from the parsed TOML structure; every error names ``where`` and the rule."""
    unknown = sorted(set(data) - {"name", "default", "rule"})
    if unknown:
        raise PolicyError(f"{where}: unknown top-level keys {unknown}; expected 'name', 'default' and "
                          "[[rule]] tables")
    default = data.get("default", "any")
    if default not in REQUIREMENTS:
        raise PolicyError(f"{where}: unknown default {default!r}; expected one of {REQUIREMENTS}")
    rules = data.get("rule", [])
    if not isinstance(rules, list):
        raise PolicyError(f"{where}: 'rule' must be an array of tables ([[rule]])")
    parsed = tuple(_rule_from(r, f"{where}, rule {i + 1}") for i, r in enumerate(rules))
    return Policy(str(data.get("name", Path(where).stem)), parsed, default)


def load_policy(path: str | Path) -> Policy:
    """Read a policy TOML file (standard-library ``tomllib``)."""
    path = Path(path)
    if not path.is_file():
        raise PolicyError(f"policy file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{path}: not valid TOML ({e})") from e
    return policy_from_dict(data, str(path))
