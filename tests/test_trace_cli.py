"""``interp realign`` on the tiny model: stages write their JSON, scores are reused by the train stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interp.cli import main

POLICIES = Path(__file__).resolve().parents[1] / "analyses" / "policies"


def test_stages_write_results_and_reuse_scores(tmp_path):
    out = tmp_path / "run"
    base = ["realign", "--model", "tiny", "--device", "cpu", "--policy", str(POLICIES / "loosen_educational.toml"),
            "--old-policy", str(POLICIES / "stl_old.toml"), "--per-class", "8", "--answer-tokens", "4",
            "--max-length", "512", "--batch-size", "4", "--gold-fraction", "0.3", "--out", str(out)]
    assert main(base + ["--stage", "score"]) == 0
    triage = json.loads((out / "triage.json").read_text())
    assert sum(triage["counts"].values()) == len(triage["pairs"]) > 0
    # the loosened categories are the only ones inverted (their pairs preferred a refusal yesterday)
    inverted = {p["category"] for p in triage["pairs"] if p["action"] == "invert"}
    assert inverted and inverted <= {"history", "definition", "safety_info"}
    impact = json.loads((out / "impact.json").read_text())
    assert len(impact["items"]) == triage["counts"]["invert"]
    assert not (out / "model").exists()
    stamp = (out / "impact.json").stat().st_mtime_ns
    assert main(base + ["--stage", "train", "--steps", "2"]) == 0
    assert (out / "impact.json").stat().st_mtime_ns == stamp  # scores reused, not recomputed
    summary = json.loads((out / "realign.json").read_text())
    assert summary["train"]["steps"] <= 2 and (out / "model" / "model.safetensors").exists()


def test_bad_policy_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\ncolor = "x"\nrequire = "refuse"\n')
    assert main(["realign", "--model", "tiny", "--policy", str(bad)]) == 2
    assert "unknown field 'color'" in capsys.readouterr().err


def test_trace_shift_analysis_pairs_before_and_after(tmp_path):
    from helpers import load_analysis

    out = tmp_path / "run"
    policy = str(POLICIES / "loosen_educational.toml")
    assert main(["realign", "--model", "tiny", "--device", "cpu", "--policy", policy, "--per-class", "8",
                 "--answer-tokens", "4", "--max-length", "512", "--batch-size", "4",
                 "--gold-fraction", "0.3", "--variant", "no_impact", "--steps", "1", "--out", str(out)]) == 0
    figs = tmp_path / "figs"
    analysis = load_analysis("trace_shift")
    argv = ["--base", "tiny", "--run", f"trace={out}", "--policy", str(POLICIES / "loosen_educational.toml"),
            "--old-policy", str(POLICIES / "stl_old.toml"), "--advbench", "0", "--mc", "0", "--max-new-tokens", "3",
            "--device", "cpu", "--out", str(figs), "--cache", str(tmp_path / "cache")]
    assert analysis.main(argv) == 0
    result = json.loads((figs / "summary.json").read_text())["result"]
    before, after = result["agreement"]["before"], result["agreement"]["trace"]
    assert before["changed"]["n"] == after["changed"]["n"] > 0  # held-out history/definition/safety_info
    assert before["unchanged"]["n"] > before["changed"]["n"]
    paired = result["paired"]["trace"]["changed"]
    assert paired["n"] == before["changed"]["n"]
    assert paired["diff"] == pytest.approx(after["changed"]["rate"] - before["changed"]["rate"])
    assert result["capability"]["trace"]["first_token_kl"]["mean"] >= 0
    assert "| trace |" in (figs / "table.md").read_text()
    cached = sorted((tmp_path / "cache").glob("*.json"))
    assert len(cached) == 2 and not (figs / "eval").exists()  # replies stay out of the figures
    assert analysis.main(argv) == 0 and sorted((tmp_path / "cache").glob("*.json")) == cached  # reused
