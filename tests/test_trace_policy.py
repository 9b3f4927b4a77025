"""TRACE policies as data: TOML rules, first match wins, default, loud errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from interp.data.builtin import builtin_prompts
from interp.data.prompts import Prompt
from interp.realign.policy import PolicyError, load_policy, policy_from_dict, prompt_metadata, requirement_of

POLICIES = Path(__file__).resolve().parents[1] / "analyses" / "policies"

TOML = """
name = "demo"
default = "comply"

[[rule]]
label = "seemingly_harmful"
category = ["history", "definition"]
require = "comply"

[[rule]]
label = "seemingly_harmful"
require = "refuse"

[[rule]]
style = "roleplay"
require = "any"
"""


def _meta(label="harmless", category=None, style=None):
    return prompt_metadata(Prompt("x?", label, "builtin", category=category, style=style))


def test_first_match_wins_and_default(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(TOML)
    pol = load_policy(path)
    assert pol.name == "demo"
    assert pol(_meta("seemingly_harmful", "history")) == "comply"  # rule 1 before rule 2
    assert pol(_meta("seemingly_harmful", "homonym")) == "refuse"  # rule 2
    assert pol(_meta("harmless", "math", "roleplay")) == "any"  # rule 3
    assert pol(_meta("harmless", "math", "question")) == "comply"  # default
    assert policy_from_dict(pol.to_dict()) == pol


@pytest.mark.parametrize("body, needle", [
    ('[[rule]]\ncolour = "red"\nrequire = "refuse"\n', "unknown field 'colour'"),
    ('[[rule]]\nlabel = "harmful"\nrequire = "block"\n', "unknown requirement 'block'"),
    ('[[rule]]\nlabel = "harmful"\n', "missing 'require'"),
    ('[[rule]]\nrequire = "refuse"\n', "at least one condition"),
    ('[[rule]]\nlabel = []\nrequire = "refuse"\n', "non-empty list of strings"),
    ('default = "maybe"\n', "unknown default 'maybe'"),
    ('rules = 3\n', "unknown top-level keys ['rules']"),
    ('[[rule]\n', "not valid TOML"),
])
def test_bad_policy_files_name_file_rule_and_key(tmp_path, body, needle):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)
    if "rule]]\n" in body and "TOML" not in needle:
        assert "rule 1" in str(err.value)


def test_missing_file_and_bad_callable(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "nope.toml")

    def sloppy(meta):
        return "maybe"

    with pytest.raises(PolicyError, match="'sloppy' returned 'maybe'"):
        requirement_of(sloppy, _meta())
    assert requirement_of(lambda m: "refuse" if m["category"] == "math" else "any", _meta(category="math")) == "refuse"


def test_unknown_metadata_field_is_refused():
    pol = policy_from_dict({"name": "p", "rule": [{"label": "harmful", "require": "refuse"}]})
    with pytest.raises(PolicyError, match="unknown metadata fields \\['topic'\\]"):
        pol({"label": "harmful", "topic": "x"})


@pytest.mark.parametrize("name", ["loosen_educational.toml", "loosen_wordplay.toml", "tighten_medical.toml"])
def test_example_policies_load_and_name_real_categories(name, data_dir):
    """Every (label, category) a rule names exists in the built-in prompts or in XSTest / TruthfulQA."""
    from interp.data.registry import load_prompts

    pol = load_policy(POLICIES / name)
    prompts = [*builtin_prompts(), *load_prompts("xstest", data_dir), *load_prompts("truthfulqa", data_dir)]
    cats = {(p.label, p.category) for p in prompts}
    by_source = {(p.source, p.category) for p in prompts}
    for rule in pol.rules:
        when = dict(rule.when)
        for cat in when.get("category", ()):
            for label in when.get("label", ()):
                assert (label, cat) in cats, f"{name}: no {label}/{cat} prompts"
            for source in when.get("source", ()):
                assert (source, cat) in by_source, f"{name}: no {source}/{cat} prompts"
