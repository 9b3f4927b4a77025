"""Drive the explorer in headless Chromium (selenium): open pages, click plotly cells, check that a page
logged no console error and requested nothing from another host, save screenshots.

Used by the browser tests and ``analyses/explorer_screenshots.py``; needs Debian's ``chromium`` and
``chromium-driver`` (no download: the paths are fixed).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

from interp.errors import InterpError

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
_LOCAL_SCHEMES = {"data", "blob", "about", "chrome-error", "devtools"}


def make_driver(width: int = 1400, height: int = 1000):
    """Headless Chromium with browser-console and network (performance) logging on."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            raise InterpError(f"{path} is missing: install Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    # --no-sandbox: Chromium refuses to run as root otherwise; no background networking so the only
    # requests are the page's own.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--disable-background-networking", "--no-first-run"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(60)
    return drv


def wait_for(driver, css: str, timeout: int | float = 30, text: str | None = None):
    """The visible element matching ``css`` (containing ``text`` if given), waiting up to ``timeout`` s."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    if text is not None:
        wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    return wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))


def open_page(driver, base: str, path: str, css: str, text: str | None = None, timeout: int | float = 90):
    """Load ``base + path`` and wait for ``css``."""
    driver.get(base + path)
    return wait_for(driver, css, timeout, text)


def page_problems(driver, host: str) -> dict[str, list]:
    """Console errors and requests to any host but ``host`` since the last call (the logs are drained)."""
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    foreign = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            url = urlparse(msg["params"]["request"]["url"])
            if url.scheme not in _LOCAL_SCHEMES and url.hostname != host:
                foreign.append(url.geturl())
    return {"console_errors": errors, "foreign_requests": foreign}


def click_plot(driver, graph_id: str, x: int | float, y: int | float, until_css: str | None = None,
               until_text: str | None = None, tries: int = 4) -> None:
    """Click the plotly figure of the ``dcc.Graph`` ``graph_id`` at data coordinates (x, y).

    With ``until_css``, click again (up to ``tries`` times) until that element shows ``until_text``: a
    click that lands while Dash is still re-rendering the figure is lost.
    """
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.by import By

    for attempt in range(tries):
        gd = driver.find_element(By.CSS_SELECTOR, f"#{graph_id} .js-plotly-plot")
        # Viewport coordinates of the data point after scrolling it to the middle of the window. (An
        # element origin would be the centre of the element's *visible* part, which moves with scrolling.)
        vx, vy = driver.execute_script(
            "const gd = arguments[0], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;"
            "const px = xa._offset + xa.l2p(arguments[1]), py = ya._offset + ya.l2p(arguments[2]);"
            "window.scrollTo(0, gd.getBoundingClientRect().top + window.scrollY + py - window.innerHeight / 2);"
            "const r = gd.getBoundingClientRect(); return [Math.round(r.left + px), Math.round(r.top + py)];",
            gd, x, y)
        actions = ActionBuilder(driver)
        actions.pointer_action.move_to_location(vx, vy).pause(0.3).click()
        actions.perform()
        if until_css is None:
            return
        try:
            wait_for(driver, until_css, timeout=10, text=until_text)
            return
        except TimeoutException:
            if attempt == tries - 1:
                raise


def full_page_screenshot(driver, path: str | Path, width: int = 1400) -> None:
    """Resize the (headless) window to the page's height, save a PNG, restore the size."""
    old = driver.get_window_size()
    height = driver.execute_script("return Math.max(document.body.scrollHeight, window.innerHeight);")
    driver.set_window_size(width, min(int(height) + 40, 4000))
    driver.execute_script("window.scrollTo(0, 0);")
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(old["width"], old["height"])
