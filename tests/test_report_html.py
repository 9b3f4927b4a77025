"""The HTML report: every figure and table of a figure folder in one offline file, with provenance;
and ``interp report``'s profiles and stage stamps (skip a stage done with the same command).

The browser test opens the report in headless chromium and checks that every plotly figure rendered and
that nothing was requested from the network. It fails (never skips) when chromium is missing.
"""

from __future__ import annotations

import json
import struct
import textwrap
import zlib
from pathlib import Path

import plotly.graph_objects as go
import pytest

from interp.figures import save_figure
from interp.io import write_json, write_text
from interp.reporting import STAMP, collect_items, write_report
from interp.reporting.stamps import StageStamp, write_stamp

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def _png(width: int = 3, height: int = 2) -> bytes:
    """A valid RGB PNG (grey pixels), written by hand so the fixture needs no image library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def figure_folder(root: Path) -> Path:
    """Two stages' worth of results: 3 plotly figures (one a heatmap), tables, a JSON result, an image."""
    a, b = root / "foundation", root / "heads"
    bars = go.Figure(go.Bar(x=["harmful", "harmless"], y=[0.9, 0.1]), layout={"title": {"text": "refusal rate"}})
    save_figure(bars, a / "headline", {"model": "tiny", "config": {"max_new_tokens": 8}}, png=False)
    save_figure(go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2])), a / "curve", None, png=False)
    save_figure(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])), b / "overlap_map", {"provenance": {"model": "m2"}},
                png=False)
    write_text(a / "table.md", "| metric | base |\n|---|---|\n| harmful/refusal_rate | 0.90 |\n")
    write_text(b / "head_ablations.csv", "group,refusal_rate\nrefusal,0.4\ntruth,0.8\n")
    write_json(b / "head_ablations.json", {"model": "m2", "data": ["builtin:harmful"], "seed": 3})
    write_json(b / "overlap.json", {"jaccard": {"5": 0.2}, "provenance": {"model": "m2", "config": {"k": 5}}})
    write_json(a / "eval.json", {"provenance": {"model": "tiny"}, "metrics": {"harmful/refusal_rate": 0.9},
                                 "records": [{"prompt": "PROMPT-TEXT-1", "response": "REPLY-TEXT-1"}]})
    (b / "screenshot.png").write_bytes(_png())
    write_stamp(a, StageStamp("foundation", "quick", ("python", "analyses/foundation_eval.py", "--out", str(a)),
                              12.0, "2026-01-01T00:00:00+00:00"))
    return root


def test_collect_finds_every_item_with_its_provenance(tmp_path):
    items = {i.path: i for i in collect_items(figure_folder(tmp_path / "figs"))}
    kinds = {p: i.kind for p, i in items.items()}
    assert kinds == {"foundation/headline.html": "figure", "foundation/curve.html": "figure",
                     "foundation/table.md": "table", "foundation/eval.json": "result",
                     "heads/overlap_map.html": "figure",
                     "heads/head_ablations.csv": "table", "heads/overlap.json": "result",
                     "heads/screenshot.png": "image"}  # sidecar JSONs go with their figure / table
    head = items["foundation/headline.html"]
    assert head.title == "refusal rate" and head.figures[0]["data"][0]["type"] == "bar"
    assert head.provenance["command"].startswith("python analyses/foundation_eval.py --out")
    assert head.provenance["model"] == "tiny" and "max_new_tokens" in head.provenance["config"]
    assert items["foundation/table.md"].provenance["stage"].startswith("foundation (quick profile, 12 s")
    assert "<table>" in items["foundation/table.md"].body and "<td>0.90</td>" in items["foundation/table.md"].body
    ablations = items["heads/head_ablations.csv"]
    assert ablations.provenance == {"model": "m2", "data": '["builtin:harmful"]', "seed": "3"}
    assert "<td>0.4</td>" in ablations.body
    assert items["heads/overlap.json"].provenance == {"model": "m2", "config": '{"k": 5}'}
    assert items["heads/screenshot.png"].body.count("data:image/png;base64,") == 1


def test_report_is_one_self_contained_file(tmp_path):
    root = figure_folder(tmp_path / "figs")
    result = write_report(root, header={"profile": "quick"})
    assert result.path == root / "report.html" and result.n_plots == 3
    assert result.counts == {"figure": 3, "table": 2, "result": 2, "image": 1}
    page = result.path.read_text()
    assert "cdn.plot.ly" in (root / "foundation" / "headline.html").read_text()  # the per-figure file needs the net
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs() in page  # the local plotly.js, inlined once ...
    rest = page.replace(get_plotlyjs(), "")  # (its own source names its CDN in strings)
    assert "https://" not in rest and "http://" not in rest and 'src="' not in rest.replace('src="data:', "")
    assert page.count('class="report-plot"') == 3 and STAMP not in page
    # per-prompt records (prompts, replies) are counted, never copied into the page
    assert "PROMPT-TEXT-1" not in page and "REPLY-TEXT-1" not in page and "1 per-prompt records" in page
    assert "harmful/refusal_rate" in page
    assert write_report(root).counts == result.counts  # the report itself is not collected again


def test_report_refuses_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(tmp_path / "nothing")


@pytest.mark.browser
def test_report_renders_every_figure_offline_in_chromium(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), "the browser tier needs Debian's chromium and chromium-driver"
    result = write_report(figure_folder(tmp_path / "figs"))
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.binary_location = str(CHROMIUM)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        driver.get(result.path.resolve().as_uri())
        from selenium.webdriver.support.ui import WebDriverWait

        count_rendered = ("return Array.from(document.querySelectorAll('div.report-plot'))"
                          ".filter(d => d.querySelector('svg.main-svg')).length")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(count_rendered) == 3)
        assert driver.execute_script("return document.querySelectorAll('div.report-plot').length") == 3
        assert driver.execute_script("return document.querySelectorAll('.heatmaplayer image, .hm').length") >= 1
        assert driver.execute_script("return document.querySelectorAll('article img').length") == 1
        urls = [json.loads(e["message"])["message"]["params"]["request"]["url"] for e in driver.get_log("performance")
                if json.loads(e["message"])["message"]["method"] == "Network.requestWillBeSent"]
        assert urls and all(u.startswith(("file://", "data:")) for u in urls), [u[:80] for u in urls]
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()


# --- interp report: profiles, stamps, resume ------------------------------------------------------------

FAKE_SCRIPT = textwrap.dedent('''
    """A stand-in analysis: writes one figure into --out and counts its runs."""
    import argparse
    from pathlib import Path

    def main(argv=None):
        p = argparse.ArgumentParser()
        p.add_argument("--out")
        args, rest = p.parse_known_args(argv)
        import plotly.graph_objects as go
        from interp.figures import save_figure
        save_figure(go.Figure(go.Bar(x=["a"], y=[len(rest)])), Path(args.out) / "fig", {"argv": rest}, png=False)
        runs = Path(args.out) / "runs.txt"
        runs.write_text(str(int(runs.read_text()) + 1 if runs.exists() else 1))
        return 0
''')


def test_report_skips_stages_done_with_the_same_command(tmp_path, capsys):
    from interp.cli import main
    from interp.reporting.profiles import STAGES

    analyses = tmp_path / "analyses"
    analyses.mkdir()
    for stage in ("foundation", "sae"):
        (analyses / STAGES[stage].target).write_text(FAKE_SCRIPT)
    out = tmp_path / "figs"
    base = ["report", "--profile", "quick", "--analyses-dir", str(analyses), "--out", str(out),
            "--runs", str(tmp_path / "runs"), "--stages", "foundation", "sae"]
    assert main(base) == 0
    assert [(out / s / "runs.txt").read_text() for s in ("foundation", "sae")] == ["1", "1"]
    stamp = json.loads((out / "foundation" / STAMP).read_text())
    assert stamp["command"][:2] == ["python", "analyses/foundation_eval.py"] and "--per-class" in stamp["command"]
    page = (out / "report.html").read_text()
    assert page.count('class="report-plot"') == 2 and "analyses/sae_refusal_subspace.py --out" in page
    assert main(base) == 0 and "skipped" in capsys.readouterr().out
    assert (out / "foundation" / "runs.txt").read_text() == "1"  # done with the same command: skipped
    assert main([*base, "--dtype", "bfloat16"]) == 0  # another command: run again
    assert (out / "foundation" / "runs.txt").read_text() == "2"
    assert main([*base, "--dtype", "bfloat16", "--force"]) == 0
    assert (out / "sae" / "runs.txt").read_text() == "3"


def test_a_failing_stage_leaves_no_stamp(tmp_path):
    from interp.cli import main

    analyses = tmp_path / "analyses"
    analyses.mkdir()
    (analyses / "foundation_eval.py").write_text("def main(argv=None):\n    return 3\n")
    out = tmp_path / "figs"
    (out / "foundation").mkdir(parents=True)
    assert main(["report", "--analyses-dir", str(analyses), "--out", str(out), "--stages", "foundation"]) == 1
    assert not (out / "foundation" / STAMP).exists()


def test_profiles_are_data():
    from interp.reporting.profiles import PROFILES, STAGES, Profile

    quick, full = PROFILES["quick"], PROFILES["full"]
    assert set(quick.stages) == set(STAGES) and quick.runs != full.runs and quick.out != full.out
    assert "--per-class" in quick.sizes["foundation"] and "stl" not in full.stages
    with pytest.raises(ValueError, match="unknown stage"):
        Profile("x", "", ("foundation", "nope"))
    with pytest.raises(ValueError, match="running order"):
        Profile("x", "", ("heads", "foundation"))


def test_another_model_gets_its_own_folders():
    from interp.cli import build_parser
    from interp.cli.report import roots

    args = build_parser().parse_args(["report", "--model", "tiny"])
    out, runs = roots(args)
    assert out == "runs/report/quick-tiny/figures" and runs == "runs/report/quick-tiny/runs"
    assert roots(build_parser().parse_args(["report", "--profile", "full"])) == ("figures", "runs")


def test_stage_args_reach_one_stage_only():
    from interp.cli import build_parser
    from interp.cli.report import stage_argv

    args = build_parser().parse_args(["report", "--model", "tiny", "--stage-args", "sae", "--layer 1 --heads 0,1"])
    assert stage_argv(args, "sae")[-6:-2] == ["--layer", "1", "--heads", "0,1"]  # before --dtype
    assert "--layer" not in stage_argv(args, "heads")
