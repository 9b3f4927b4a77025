"""`interp heads` end to end on the tiny model with the built-in prompts."""

from __future__ import annotations

import json

from interp.cli import main
from interp.heads import HeadScores


def test_heads_cli_writes_scores_overlap_and_figures(tmp_path, capsys):
    out = tmp_path / "heads"
    rc = main(["heads", "--model", "tiny", "--out", str(out), "--per-class", "4", "--top-k", "2", "4",
               "--figure-k", "4", "--permutations", "50", "--batch-size", "4"])
    assert rc == 0
    names = {p.name for p in out.iterdir()}
    assert {"refusal_heads.json", "truth_heads.json", "overlap.json", "overlap_map.html", "overlap_map.png",
            "attention_shared_heads.html"} <= names
    ref = HeadScores.from_json(out / "refusal_heads.json")
    assert ref.scores.shape == (2, 4) and ref.metric == "refusal_score" and ref.provenance["n_prompts"] == 4
    ov = json.loads((out / "overlap.json").read_text())
    assert set(ov["jaccard"]) == {"2", "4"} and -1.0 <= ov["spearman"] <= 1.0
    assert 0.0 < ov["spearman_p"] <= 1.0
    assert "overlap: J@2=" in capsys.readouterr().out


def test_attention_views_show_only_built_in_harmful_prompts():
    """The study's attention views go into figures: a benchmark's harmful prompt is never among them."""
    from interp.data.prompts import Prompt, PromptSet
    from interp.data.registry import load_prompt_sets
    from interp.heads.study import HeadStudyConfig, run_head_study
    from interp.models import load_model

    builtin = load_prompt_sets(("builtin:harmful", "builtin:harmless", "builtin:factual"))
    marker = [Prompt(f"benchmark request number {i}", "harmful", "advbench") for i in range(40)]
    prompts = PromptSet("mixed", tuple(marker) + builtin.prompts)
    study = run_head_study(load_model("tiny"), prompts, HeadStudyConfig(n_prompts=40, ks=(2,), figure_k=2,
                                                                        n_permutations=10, batch_size=8))
    shown = study.examples["harmful"]
    assert len(shown) == 2 and not any("benchmark request" in t for t in shown)
    assert set(shown) <= set(builtin.by_label("harmful").texts)
