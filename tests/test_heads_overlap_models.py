"""analyses/heads_overlap_models.py on two tiny head studies: both rankings, both scorings, the drift table."""

from __future__ import annotations

import json

from helpers import load_analysis

from interp.cli import main as cli


def test_overlap_of_two_studies_reproduces_each_study_and_names_the_drift(tmp_path):
    for seed in (0, 1):
        assert cli(["heads", "--model", "tiny", "--out", str(tmp_path / f"m{seed}"), "--per-class", "4",
                    "--top-k", "2", "4", "--figure-k", "4", "--candidates", "2", "--permutations", "50",
                    "--batch-size", "4", "--seed", str(seed)]) == 0
    rc = load_analysis("heads_overlap_models").main([
        "--study", f"a={tmp_path / 'm0'}", "--study", f"b={tmp_path / 'm1'}", "--out", str(tmp_path / "out"),
        "--ks", "2", "4", "--permutations", "50"])
    assert rc == 0
    res = json.loads((tmp_path / "out" / "overlap_models.json").read_text())
    assert set(res["overlap"]) == {"a", "b"}
    assert set(res["overlap"]["a"]) == {"attribution/magnitude", "attribution/signed", "patching/magnitude",
                                        "patching/signed", "attribution/within-layer"}
    w = res["overlap"]["a"]["attribution/within-layer"]
    assert -1 <= w["mean_within_layer_spearman"] <= 1 and 0 < w["p"] <= 1
    # the study's own overlap (computed while it ran, in its ranking) is reproduced from the saved scores
    own = json.loads((tmp_path / "m0" / "overlap.json").read_text())
    ours = res["overlap"]["a"][f"attribution/{own['rank_by']}"]
    assert ours["jaccard"] == own["jaccard"] and abs(ours["spearman"] - own["spearman"]) < 1e-9
    patched = json.loads((tmp_path / "m0" / "candidate_patching.json").read_text())["overlap"]
    assert res["overlap"]["a"]["patching/magnitude"]["jaccard"] == patched["jaccard"]
    assert set(res["drift"]) == {"a vs b"} and set(res["drift"]["a vs b"]) == {"refusal", "truth"}
    md = (tmp_path / "out" / "overlap_models.md").read_text()
    assert "| a | patching | signed |" in md and "| a vs b | refusal |" in md
    assert (tmp_path / "out" / "head_maps_models.png").exists()


def test_a_folder_without_candidate_patching_is_named(tmp_path):
    import pytest

    (tmp_path / "s").mkdir()
    with pytest.raises(FileNotFoundError, match="candidate_patching.json"):
        load_analysis("heads_overlap_models").main(["--study", f"x={tmp_path / 's'}", "--out", str(tmp_path / "o")])
