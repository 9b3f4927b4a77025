"""``interp safemoe`` end to end on a tiny model: every stage, resume, a settings guard, the analysis."""

from __future__ import annotations

import json

import pytest
from helpers import load_analysis
from test_evaluate_generate import lively_tiny

from interp.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("safemoe")
    lively_tiny().save(root / "model")  # the plain tiny model answers every prompt with a stop token
    args = ["safemoe", "--model", str(root / "model"), "--device", "cpu", "--out", str(root / "run"),
            "--domains", "cyber", "fraud", "--harm-sources", "builtin", "--eval-harmful", "builtin",
            "--train-per-domain", "4", "--heldout-per-domain", "2", "--harmless-train", "4",
            "--eval-per-source", "3", "--corpus-tokens", "12", "--eval-tokens", "6", "--expert-epochs", "1",
            "--expert-max-length", "200", "--router-layer", "1", "--router-steps", "3", "--router-hidden", "8",
            "--zero-shot-holdout", "fraud", "--variants", "base", "expert:cyber", "safe_data_lora", "router:main",
            "router:zeroshot"]
    assert main(args) == 0
    return root, args


def test_every_stage_writes_its_outputs(run):
    root, _ = run
    out = root / "run"
    for d in ("cyber", "fraud"):
        assert (out / "experts" / d / "adapter" / "adapter_model.safetensors").exists()
        assert (out / "cache" / "corpora" / f"{d}.train.jsonl").exists()
    assert (out / "controls" / "safe_data_lora" / "adapter" / "adapter_config.json").exists()
    assert {p.name for p in (out / "routers").iterdir()} == {"main", "zeroshot", "random"}
    zs = json.loads((out / "routers" / "zeroshot" / "router.json").read_text())
    assert zs["provenance"]["trained_domains"] == ["cyber"]
    lm = json.loads((out / "loss_matrix.json").read_text())
    assert lm["rows"] == ["base", "expert:cyber", "expert:fraud"] and len(lm["loss"][0]) == 2
    scored = json.loads((out / "eval" / "router_main.json").read_text())
    harmful = [r for r in scored["records"] if r["label"] == "harmful"]
    assert harmful and all(len(r["weights"]) == 2 and 0 <= sum(r["weights"]) <= 1 + 1e-6 for r in harmful)
    assert {"harmful/safe", "harmless/complied"} <= set(scored["summary"])
    assert json.loads((out / "eval" / "base.json").read_text())["records"][0]["weights"] is None


def test_rerun_resumes_and_other_settings_are_refused(run, capsys):
    root, args = run
    out = root / "run"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    assert main(args + ["--stage", "eval"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if p in before and p.name != "eval.json"} == \
           {p: t for p, t in before.items() if p.name != "eval.json"}
    i = args.index("--router-steps")
    changed = args[: i + 1] + ["4"] + args[i + 2:]
    assert main(changed) == 2
    assert "router" in capsys.readouterr().err


def test_analysis_writes_table_heatmaps_and_verdict(run, tmp_path):
    root, _ = run
    analysis = load_analysis("safemoe_eval")
    analysis.main(["--run", str(root / "run"), "--out", str(tmp_path), "--no-png"])
    rows = json.loads((tmp_path / "table.json").read_text())
    mine = [r for r in rows if r["system"] == "router:main" and r["metric"] == "harmful/safe"]
    assert mine and "diff" in mine[0] and mine[0]["n"] >= 1
    heat = json.loads((tmp_path / "routing_weights.json").read_text())
    assert heat["rows"] and len(heat["weights"][0]) == 2
    assert (tmp_path / "loss_matrix.html").exists()
    assert "verdict" in json.loads((tmp_path / "thesis.json").read_text())
    zero = json.loads((tmp_path / "zero_shot.json").read_text())
    assert zero["held_out_domains"] == ["fraud"]
