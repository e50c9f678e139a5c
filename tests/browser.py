"""A real browser for the report tests: the system's Chromium (Debian's `chromium` package) driven
by Playwright, which is told where it is and never downloads one.

`require_browser()` skips a test with the reason when either is missing, and fails it under CI
(`CI` set): there the browser tests must run, never pass by being skipped.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> str:
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install '.[dev]')")
    path = chromium_path()
    if path is None:
        missing.append("a chromium binary (apt-get install -y chromium; .ci/run installs it)")
    if missing:
        why = "the browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(why + "; under CI they must run")
        pytest.skip(why)
    return path


@dataclass
class Loaded:
    """What happened when a page was opened."""

    requests: list[str] = field(default_factory=list)  # every URL the page asked for, itself first
    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    errors: list[str] = field(default_factory=list)  # uncaught exceptions
    dialogs: list[str] = field(default_factory=list)  # alert / confirm / prompt messages
    text: str = ""  # document.body.innerText
    html: str = ""  # the DOM, serialised after load
    scripts: int = 0  # <script> elements in the DOM
    screenshot: bytes = b""


def open_page(path: Path, *, width: int = 1200, height: int = 900) -> Loaded:
    """Load ``path`` (file://) in headless Chromium with no network: every request other than the page
    itself is recorded and aborted, and a proxy at a closed port catches anything that slips by."""
    from playwright.sync_api import sync_playwright

    exe = require_browser()
    url = Path(path).resolve().as_uri()
    out = Loaded()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--proxy-server=127.0.0.1:9"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("request", lambda r: out.requests.append(r.url))
            page.on("console", lambda m: out.console.append((m.type, m.text)))
            page.on("pageerror", lambda e: out.errors.append(str(e)))

            def dialog(d):
                out.dialogs.append(d.message)
                d.dismiss()

            page.on("dialog", dialog)
            page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
            page.goto(url, wait_until="load")
            page.wait_for_timeout(200)  # a late timer or load handler would show up here
            out.text = page.inner_text("body")
            out.html = page.content()
            out.scripts = page.evaluate("document.querySelectorAll('script').length")
            out.screenshot = page.screenshot(full_page=True)
        finally:
            browser.close()
    return out


def not_blank(png: bytes) -> bool:
    """Whether a screenshot shows something: many colours and a fair share of non-white pixels."""
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    small = img.resize((max(1, img.width // 4), max(1, img.height // 4)))
    raw = small.tobytes()
    pixels = [raw[i:i + 3] for i in range(0, len(raw), 3)]
    inked = sum(1 for px in pixels if sum(px) < 600)  # clearly darker than white
    return len(set(pixels)) > 20 and inked > 0.02 * len(pixels)
