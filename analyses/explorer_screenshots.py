"""Screenshots of every explorer page (``interp explore``) from a figures folder, into figures/explorer/.

Serves the app on an ephemeral 127.0.0.1 port in a thread, drives headless Chromium (selenium), clicks the
top refusal head and a feature, runs one live ablation, and fails if any page logged a console error or
requested anything from another host.

    python analyses/explorer_screenshots.py --figures figures --model runs/align/stl/model
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from urllib.parse import urlparse

from interp.explore import LiveRunner, build_app, load_results
from interp.explore.browser import (
    click_plot,
    full_page_screenshot,
    make_driver,
    open_page,
    page_problems,
    wait_for,
)
from interp.explore.serve import serve_in_thread
from interp.io import write_json
from interp.models import DEFAULT_MODEL


def shoot(driver, base: str, results, out: Path) -> dict:
    """Visit each page, act on it, save ``<page>.png``; returns each page's problems (should be empty)."""
    from selenium.webdriver.common.by import By

    host, problems = urlparse(base).hostname, {}

    def done(name):
        full_page_screenshot(driver, out / f"{name}.png")
        problems[name] = page_problems(driver, host)

    open_page(driver, base, "/", "#page h2")
    done("overview")
    if results.heads is not None:
        open_page(driver, base, "/heads", "#heads-heatmap .js-plotly-plot")
        layer, head = results.heads.maps["refusal"].top_k(1, by=results.heads.rank_by)[0]
        click_plot(driver, "heads-heatmap", head, layer, "#head-title", f"Head L{layer}H{head}")
        driver.find_element(By.ID, "head-attn-btn").click()
        wait_for(driver, "#head-attn-frame", timeout=600)
        done("heads")
    if results.features is not None:
        open_page(driver, base, "/features", "#feat-scatter .js-plotly-plot")
        done("features")
        top = results.features.summary.get("top", {})
        f = next((fs[0] for fs in top.values() if fs), 0)
        open_page(driver, base, f"/feature/{f}", "#feature-title")
        done("feature_page")
    open_page(driver, base, "/interventions", "#iv-run")
    if results.heads is not None:
        for field, value in (("iv-layer", layer), ("iv-head", head)):
            el = driver.find_element(By.ID, field)
            el.clear()
            el.send_keys(str(value))
    driver.find_element(By.ID, "iv-run").click()
    wait_for(driver, "#iv-table", timeout=600)
    done("interventions")
    open_page(driver, base, "/prompt", "#lab-run").click()
    wait_for(driver, "#lab-next", timeout=600)
    done("prompt_lab")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--figures", default="figures", help="figures folder to explore")
    ap.add_argument("--model", default=None, help="model of the live actions (default: the one the results name)")
    ap.add_argument("--out", default="figures/explorer", help="where the PNGs go")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    results = load_results(args.figures)
    model = args.model or results.model_name or DEFAULT_MODEL
    runner = LiveRunner(model, results.features.sae_path if results.features else None, device=None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    served = serve_in_thread(build_app(results, runner))
    driver = make_driver()
    try:
        problems = shoot(driver, served.url, results, out)
    finally:
        driver.quit()
        served.stop()
    write_json(out / "screenshots.json", {"figures": str(results.root), "model": model, "pages": problems})
    bad = {k: v for k, v in problems.items() if v["console_errors"] or v["foreign_requests"]}
    print(f"screenshots in {out}; pages with problems: {sorted(bad) or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
