"""Smoke run of analyses/refusal_preserving_ft.py on tiny models: every new variant in one table."""

from __future__ import annotations

import json

import torch
from helpers import load_analysis

from interp.models import load_model


def test_refusal_preserving_ft_runs_every_variant_on_tiny_models(tmp_path):
    aligned = load_model("tiny")  # "aligned" = the tiny model moved a little; "pre-alignment" = tiny itself
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in aligned.named_parameters().items():
            if ".layers." in name and p.ndim == 2:
                p.add_(0.02 * torch.randn(p.shape, generator=g))
    aligned.save(tmp_path / "aligned", extra={"name": "tiny-aligned"})
    variants = ["unconstrained", "upstream-frozen", "lora", "safe-lora", "residual", "null-space", "anchor"]
    args = [
        "--model", str(tmp_path / "aligned"), "--pre-model", "tiny", "--out", str(tmp_path / "out"),
        "--runs", str(tmp_path / "runs"), "--n-train", "4", "--batch-size", "4", "--per-source", "2",
        "--max-new-tokens", "2", "--freeze-layer", "1", "--n-subspace", "4", "--null-space-prompts", "2",
        "--device", "cpu", "--variants", *variants]
    rc = load_analysis("refusal_preserving_ft").main(args)
    assert rc == 0
    table = json.loads((tmp_path / "out" / "finetune.json").read_text())["table"]
    assert set(table) == {"aligned", *(f"{v}/seed0" for v in variants)}
    free, ns, lora = table["unconstrained/seed0"], table["null-space/seed0"], table["lora/seed0"]
    assert table["residual/seed0"]["trained_parameters"] == free["trained_parameters"]  # no freezing
    assert table["upstream-frozen/seed0"]["trained_parameters"] < free["trained_parameters"]
    assert ns["trained_parameters"] == lora["trained_parameters"] < free["trained_parameters"]
    assert ns["refusal_component_drift"] < lora["refusal_component_drift"]  # first-order protection
    assert table["safe-lora/seed0"]["safe_lora"]["n_weights"] == 4  # q/v of two layers
    assert not (tmp_path / "runs" / "safe-lora").exists()  # it post-processes the LoRA run, not a second one
    assert json.loads((tmp_path / "runs" / "lora" / "seed0" / "done.json").read_text())["n_train"] == 4
    for key, row in table.items():
        assert "factual/mc2" in row["metrics"] and row["general_text_loss"] > 0
        if key != "aligned":
            assert {"factual/mc1", "harmful/refusal_rate"} <= set(row["vs_aligned"])
            assert "refusal_gap" in row["criterion"] and "passed" in row["criterion"]
    assert "factual/mc2" in table["anchor/seed0"]["vs_unconstrained"]
    md = (tmp_path / "out" / "table.md").read_text()
    assert md.count("\n| ") == 2 + len(variants)  # the rule line, aligned, every variant
    assert "| null-space/seed0 |" in md and "Held-out n: harmful" in md

    # every evaluation is cached under --runs; a rerun after a cut reuses fine-tunes and evaluations alike
    cached = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("eval*.json")}
    assert len(cached) == 1 + len(variants)
    assert load_analysis("refusal_preserving_ft").main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("eval*.json")} == cached
    again = json.loads((tmp_path / "out" / "finetune.json").read_text())["table"]
    assert {k: r["metrics"] for k, r in again.items()} == {k: r["metrics"] for k, r in table.items()}
