"""A real browser for dashboard tests: Debian's chromium driven by its chromedriver through Selenium
(headless, a fresh profile per browser, console messages kept), stopped by the context manager."""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextmanager
def chromium(width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bw-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # explicit driver path: Selenium Manager would try to download one
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or CHROMEDRIVER),
                              options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[dict]:
    """Console messages of level SEVERE since the last call (errors, failed loads, CSP violations)."""
    return [m for m in driver.get_log("browser") if m.get("level") == "SEVERE"]


def first_paint_ms(driver) -> float | None:
    entries = driver.execute_script(
        "return performance.getEntriesByType('paint').map(e => [e.name, e.startTime]);")
    found = dict(entries or [])
    return found.get("first-contentful-paint") or found.get("first-paint")


def page_bytes(driver) -> int:
    """Bytes the page and its resources took (decoded bodies), from the Resource Timing API."""
    return int(driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return (n ? n.decodedBodySize : 0) + performance.getEntriesByType('resource')"
        ".reduce((a, r) => a + (r.decodedBodySize || 0), 0);"))


_CONTRAST_JS = """
const lum = (c) => { const v = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map((x) => x / 255)
  .map((x) => x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4));
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
const bg = (e) => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
  if (c && !c.startsWith('rgba(0, 0, 0, 0)') && c !== 'transparent') return c; } return 'rgb(255, 255, 255)'; };
return [...document.querySelectorAll(arguments[0])].filter((e) => e.offsetParent !== null && e.textContent.trim())
  .map((e) => { const a = lum(getComputedStyle(e).color), b = lum(bg(e));
    return [e.tagName + (e.id ? '#' + e.id : '') + ' ' + e.textContent.trim().slice(0, 30),
            (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]; });
"""


def low_contrast(driver, css: str = "body *", minimum: float = 4.5) -> list[tuple[str, float]]:
    """Visible elements with text whose colour against their background is under ``minimum`` (WCAG)."""
    return [(what, round(ratio, 2)) for what, ratio in driver.execute_script(_CONTRAST_JS, css) if ratio < minimum]
