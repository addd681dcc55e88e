"""Open a page in headless Chromium (Playwright driving the system's `chromium`) with the network blocked.

Playwright's own browser builds are not downloaded: `make setup-browser` installs Debian's chromium and the
`browser` extra. Without either, the test that needs them is skipped with one line naming that target.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MINUS = "\u2212"


def plain_number(text: str) -> str:
    """A number as the page shows it (a real minus sign) as Python formats it (an ASCII hyphen)."""
    return text.replace(MINUS, "-")

SETUP_HINT = ("run `make setup-browser` (apt-get install chromium; pip install -e '.[browser]') for the browser "
              "test of report.html")
LOCAL_SCHEMES = ("file:", "data:")
# every cell of every ablation table: its row's model, its column, the exact value it was formatted from, its text
TABLE_CELLS_JS = """() => [...document.querySelectorAll('table.ablation tr[data-model]')].map(row => ({
  model: row.dataset.model,
  cells: Object.fromEntries([...row.querySelectorAll('[data-col]')].map(cell => [cell.dataset.col, {
    value: cell.dataset.value ?? null, low: cell.dataset.low ?? null, high: cell.dataset.high ?? null,
    text: cell.innerText.replace(/\\s+/g, ' ').trim()}]))}))"""
# at a viewport width: whether every verdict of the first ablation table lies within the screen's width (on a
# phone the rows become cards, their verdict near the top), and the page's header line
VERDICTS_SHOWN_JS = """() => [...document.querySelectorAll('table.ablation td[data-col=verdict]')].every(cell => {
  const box = cell.getBoundingClientRect(); return box.width > 0 && box.right <= window.innerWidth; })"""
IMAGES_JS = """() => [...document.images].map(img => ({alt: img.alt, width: img.naturalWidth,
  height: img.naturalHeight, shown: img.getBoundingClientRect().width, src: img.src.slice(0, 26)}))"""


def chromium_path() -> str:
    """The system's Chromium, or skip the test naming the set-up target."""
    pytest.importorskip("playwright.sync_api", reason=f"Playwright is not installed: {SETUP_HINT}")
    found = os.environ.get("DETBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip(f"no chromium on PATH: {SETUP_HINT}")
    return found


@dataclass
class PageRun:
    """What one load of the page did, and what it showed."""

    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)  # every request not to file: or data:
    tables: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    widths: dict[int, int] = field(default_factory=dict)  # viewport width -> the document's scroll width
    verdicts_shown: dict[int, bool] = field(default_factory=dict)  # viewport width -> every verdict on screen
    header: str = ""
    screenshots: list[Path] = field(default_factory=list)


def open_offline(page_path: Path, shots: Path, widths: tuple[int, ...] = (1280, 390)) -> PageRun:
    """Load `page_path` once with every non-local request aborted (and counted), read its tables and images, and
    keep a full-page screenshot at each viewport width in `shots`."""
    executable = chromium_path()  # first: skips, naming the set-up target, where Playwright or Chromium is missing
    from playwright.sync_api import sync_playwright

    run = PageRun()
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # root: no user namespaces
        browser = playwright.chromium.launch(executable_path=executable, args=args)
        try:
            context = browser.new_context(viewport={"width": widths[0], "height": 900}, java_script_enabled=True)

            def route(request_route) -> None:
                if request_route.request.url.startswith(LOCAL_SCHEMES):
                    request_route.continue_()
                else:
                    run.outside_requests.append(request_route.request.url)
                    request_route.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda message: run.console_errors.append(message.text)
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: run.console_errors.append(str(error)))
            page.on("requestfailed", lambda request: None if request.url.startswith(LOCAL_SCHEMES)
                    else run.outside_requests.append(request.url))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            run.tables = page.evaluate(TABLE_CELLS_JS)
            run.images = page.evaluate(IMAGES_JS)
            run.header = page.evaluate("document.querySelector('header p').innerText")
            for width in widths:
                page.set_viewport_size({"width": width, "height": 900})
                run.widths[width] = page.evaluate("document.documentElement.scrollWidth")
                run.verdicts_shown[width] = page.evaluate(VERDICTS_SHOWN_JS)
                shot = shots / f"report-{width}px.png"
                page.screenshot(path=str(shot), full_page=True)
                run.screenshots.append(shot)
        finally:
            browser.close()
    run.outside_requests = list(dict.fromkeys(run.outside_requests))
    return run
