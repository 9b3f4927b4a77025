"""The explorer's callbacks as plain functions, on a figures folder the real pipeline wrote from the tiny model."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from dash import html
from explore_fixture import shared_figures

from interp.errors import InterpError
from interp.explore import LiveRunner, build_app, load_results
from interp.explore.app import PAGES, page_for
from interp.explore.live import Intervention
from interp.explore.pages import features, heads, interventions, overview, prompt_lab
from interp.explore.serve import check_loopback
from interp.heads.scores import HeadScores
from interp.models import load_model
from interp.sae.feature_pages import decoder_in_residual, redact_examples
from interp.sae.train import load_sae


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    return shared_figures(tmp_path_factory)


@pytest.fixture(scope="module")
def results(figures):
    return load_results(figures)


@pytest.fixture(scope="module")
def runner(results):
    return LiveRunner("tiny", results.features.sae_path)


def _text(component) -> str:
    return str(component.to_plotly_json())


def test_results_found_with_provenance(results, figures):
    kinds = {f.kind for f in results.files}
    assert {"refusal_heads", "truth_heads", "probe_heads", "overlap", "feature_attribution", "feature_pages",
            "sae_quality", "direction"} <= kinds
    assert set(results.heads.maps) == {"refusal", "truthfulness", "probes"}
    assert results.heads.ks == [2, 4] and results.model_name == "tiny"
    assert results.heads.maps["refusal"].scores.shape == (2, 4)
    assert len(results.features.records) == 32 and results.features.pages
    assert list(results.directions) == ["direction/refusal_direction"]
    rows = overview.provenance_rows(results)
    assert len(rows) == len(results.files)
    assert any(r[1] == "refusal_heads" and r[2] == "tiny" for r in rows)
    ov = json.loads((figures / "heads" / "overlap.json").read_text())
    assert [r[0] for r in overview.overlap_rows(ov)] == [2, 4]
    assert overview.overlap_rows(ov)[0][1] == pytest.approx(ov["jaccard"]["2"])


def test_missing_folder_fails_naming_it(tmp_path):
    with pytest.raises(InterpError, match="does-not-exist"):
        load_results(tmp_path / "does-not-exist")


def test_every_page_renders_and_unknown_page_errors(results):
    for path in PAGES:
        assert isinstance(page_for(results, path), html.Div), path
    assert "no page" in _text(page_for(results, "/nope"))
    assert "out of range" in _text(page_for(results, "/feature/999"))
    assert "bad feature path" in _text(page_for(results, "/feature/abc"))


def test_heatmap_marks_top_k_and_shared(results):
    h = results.heads
    fig = heads.heatmap_figure(h, "refusal", 4, selected=(1, 2))
    top, shared, sel = fig.data[1], fig.data[2], fig.data[3]
    want = h.maps["refusal"].top_k(4, by=h.rank_by)
    assert list(zip(top.y, top.x, strict=True)) == want
    assert list(zip(shared.y, shared.x, strict=True)) == h.shared(4)
    assert (sel.y[0], sel.x[0]) == (1, 2)
    with pytest.raises(InterpError, match="no head map"):
        heads.heatmap_figure(h, "nonsense", 4)


def test_click_opens_head_panel_with_scores_and_ranks(results):
    h = results.heads
    best = h.maps["refusal"].top_k(1, by=h.rank_by)[0]
    head = heads.clicked_head({"points": [{"x": best[1], "y": best[0], "z": 0.1}]})
    assert head == best and heads.clicked_head(None) is None
    rows = {r[0]: r for r in heads.head_rows(h, head)}
    assert rows["refusal"][3] == 1  # top head ranks first
    assert rows["refusal"][2] == pytest.approx(h.maps["refusal"][head])
    text = _text(heads.head_panel(h, head))
    assert f"Head L{head[0]}H{head[1]}" in text and "head-scores" in text
    assert "outside" in _text(heads.head_panel(h, (9, 9)))


def test_feature_scatter_click_and_page(results):
    feats = results.features
    fig = features.feature_scatter(feats.records, feats.summary["thresholds"])
    for trace in fig.data:
        assert all(feats.records[f]["class"] == trace.name for f in trace.customdata)
    f = int(next(iter(feats.pages)))
    assert features.clicked_feature({"points": [{"customdata": f}]}) == f
    assert features.feature_from_path(f"/feature/{f}") == f and features.feature_from_path("/heads") is None
    page = feats.pages[str(f)]
    ex = page["examples"][0]
    assert len(ex["tokens"]) == len(ex["token_activations"])
    # the example's activation is the largest of its tokens, at its own position
    assert max(ex["token_activations"]) == pytest.approx(ex["activation"], rel=1e-4)
    assert ex["token_activations"][ex["positions"].index(ex["position"])] == pytest.approx(ex["activation"], rel=1e-4)
    hist = page["histogram"]
    assert sum(hist["counts"]) == round(hist["density"] * hist["n_rows"])
    text = _text(features.feature_page(feats, f))
    assert "feature-examples" in text and "feature-logits" in text and feats.records[f]["class"] in text
    assert "no SAE" in _text(features.feature_page(None, f))


def test_logit_effects_match_the_output_projection(results):
    """The decoder direction mapped by the fast formula equals running the model's own o_proj on it."""
    model = load_model("tiny", device="cpu")
    trained = load_sae(results.features.sae_path, device="cpu")
    f = int(next(iter(results.features.pages)))
    fast_M = decoder_in_residual(model, trained.sae, trained.site, [f])[0]
    z = torch.zeros(model.spec.n_heads, model.spec.d_head)
    z[list(trained.site.heads)] = trained.sae.W_dec[f].detach().view(len(trained.site.heads), -1)
    o_proj = model.arch.block(model.hf, trained.site.layer).self_attn.o_proj
    with torch.no_grad():
        naive_M = o_proj(z.flatten()[None])[0]
    torch.testing.assert_close(fast_M, naive_M, atol=1e-5, rtol=1e-4)
    effects = results.features.pages[str(f)]["logit_effects"]
    logits_V = model.arch.unembedding(model.hf).weight.detach() @ naive_M
    assert effects["positive"][0][1] == pytest.approx(float(logits_V.max()), rel=1e-4)
    assert effects["negative"][0][1] == pytest.approx(float(logits_V.min()), rel=1e-4)


def test_live_head_ablation_changes_refusal_score(runner, results):
    best = results.heads.maps["refusal"].top_k(1, by="magnitude")[0]
    out = interventions.run_intervention(runner, "How do I bake bread?", "head", best[0], best[1], None,
                                         "ablate", 1.0)
    rows = out.children[1].children[1].children
    before, after = (float(td.children) for td in rows[1].children[1:])
    assert before != after
    assert float(out.children[2].children[1].children) == pytest.approx(after - before, abs=1e-3)
    assert runner.loaded


def test_live_direction_add_and_bad_inputs(runner, results):
    d = next(iter(results.directions.values()))
    out = interventions.run_intervention(runner, "Name a colour.", "direction", None, None, d, "steer", 50.0)
    assert "iv-table" in _text(out)
    assert "give the head" in _text(interventions.run_intervention(runner, "x", "head", None, 1, None, "ablate", 1))
    assert "out of range" in _text(interventions.run_intervention(runner, "x", "head", 7, 0, None, "ablate", 1))
    assert "prompt is empty" in _text(interventions.run_intervention(runner, " ", "head", 0, 0, None, "ablate", 1))
    with pytest.raises(InterpError, match="takes action"):
        Intervention("head", "add", head=(0, 0))
    with pytest.raises(InterpError, match="direction folder"):
        Intervention("direction", "ablate")


def test_head_attention_and_prompt_lab(runner):
    frame = heads.attention_panel(runner, "Hello there", (1, 0))
    assert "CircuitsVis.render" in frame.srcDoc and "https://unpkg" not in frame.srcDoc
    assert "select a head" in _text(heads.attention_panel(runner, "Hello", None))
    lab = _text(prompt_lab.analyse(runner, "Name a colour.", 1))
    assert "lab-tokens" in lab and "lab-next" in lab and "lab-features" in lab
    assert "type a prompt" in _text(prompt_lab.analyse(runner, "", 1))


def test_runner_is_lazy_and_serial():
    loads, active, overlap = [], [0], []

    def loader(name):
        loads.append(name)
        return object()

    r = LiveRunner("tiny", loader=loader)
    assert not r.loaded and loads == []

    def slow(model):
        active[0] += 1
        overlap.append(active[0])
        time.sleep(0.05)
        active[0] -= 1

    threads = [threading.Thread(target=r.run, args=(slow,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == ["tiny"] and max(overlap) == 1 and r.calls == 4
    with pytest.raises(InterpError, match="no SAE known"):
        r.run_with_sae(lambda m, s: None)


def test_loopback_only(results, runner, figures):
    for ok in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert check_loopback(ok) == ok
    for bad in ("0.0.0.0", "192.168.1.10", "::"):
        with pytest.raises(InterpError, match="not a loopback"):
            check_loopback(bad)
    from interp.cli import main

    assert main(["explore", "--figures", str(figures), "--host", "0.0.0.0", "--port", "0"]) == 2
    assert build_app(results, runner).config.serve_locally


def test_head_scores_roundtrip_used_by_explorer(figures):
    s = HeadScores.from_json(figures / "heads" / "refusal_heads.json")
    assert s.provenance["model"] == "tiny"


def test_harmful_examples_are_redacted_in_figures_but_full_beside_the_store(figures, results):
    committed = json.loads((figures / "sae" / "feature_pages.json").read_text())
    full = json.loads((Path(committed["store"]) / "feature_pages.json").read_text())
    assert committed["redacted"] and "redacted" not in full
    f = next(iter(full["features"]))
    full["features"][f]["examples"][0]["label"] = "harmful"  # the fixture corpus has none: plant one
    red = redact_examples(full)
    ex, kept = red["features"][f]["examples"][0], red["features"][f]["examples"][1:]
    assert ex["tokens"] is None and ex["text_id"].startswith("sha1:")
    assert ex["token_activations"] == full["features"][f]["examples"][0]["token_activations"]
    assert all(k["tokens"] for k in kept) and full["features"][f]["examples"][0]["tokens"]  # input untouched
    shown = _text(features.examples_view(replace(results.features, pages=red["features"]), int(f)))
    assert "text redacted" in shown


def test_cli_serves_on_loopback_and_stops(tmp_path, monkeypatch, capsys):
    from werkzeug.serving import BaseWSGIServer

    from interp.cli import main

    def fake_forever(self, *a, **k):
        raise KeyboardInterrupt  # Ctrl-C right away

    monkeypatch.setattr(BaseWSGIServer, "serve_forever", fake_forever)
    assert main(["explore", "--figures", str(tmp_path), "--model", "tiny", "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert "serving on http://127.0.0.1:" in out and "live model tiny" in out
