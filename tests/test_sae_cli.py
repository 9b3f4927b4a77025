"""End to end through the CLI on the tiny model: collect -> train -> attribute -> subspace export/show."""

from __future__ import annotations

import json

import torch

from interp.cli import main
from interp.subspace import load_subspace


def test_cli_pipeline(tmp_path, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _pipeline(tmp_path, capsys)
    finally:
        torch.set_num_threads(threads)


def _pipeline(tmp_path, capsys):
    store, sae, attr, subs = (tmp_path / n for n in ("store", "sae", "attr", "subs"))
    assert main(["sae", "collect", "--model", "tiny", "--site", "z:1", "--heads", "0,2",
                 "--per-class", "6", "--out", str(store)]) == 0
    assert main(["sae", "train", "--store", str(store), "--d-sae", "32", "--sae-k", "4", "--batch-size", "64",
                 "--rows", "3200", "--lr", "3e-3", "--out", str(sae)]) == 0
    quality = json.loads((sae / "quality.json").read_text())
    assert 0.0 < quality["explained_variance"] <= 1.0 and quality["l0"] <= 4.0
    assert main(["sae", "attribute", "--model", "tiny", "--sae", str(sae), "--store", str(store), "--per-class", "3",
                 "--hi", "0.05", "--lo", "0.05", "--out", str(attr)]) == 0
    summary = json.loads((attr / "feature_attribution.json").read_text())
    assert len(summary["features"]) == 32 and (attr / "attribution_scatter.html").exists()
    assert set(summary["ablation_checks"]) == {"refusal", "truthfulness"}
    capsys.readouterr()
    code = main(["subspace", "export", "--model", "tiny", "--sae", str(sae), "--data", "builtin", "--dom",
                 "--per-class", "4", "--attribution", str(attr / "feature_attribution.json"), "--out", str(subs)])
    assert code == 0
    path = json.loads(capsys.readouterr().out)["path"]
    sub = load_subspace(path)
    assert sub.d == 32 and sub.k >= 1 and sub.hook_name == "blocks.1.attn.hook_z"
    assert main(["subspace", "show", path]) == 0
    assert '"version": 1' in capsys.readouterr().out
