"""Real headless Chromium for the verifier page's tests, and a bundle host to serve it.

The browser is Debian's ``chromium`` package driven by Playwright for Python through its
executable path (``playwright install`` is never run: browsers are not downloaded). Where
there is no Chromium (or no Playwright) the browser tests are skipped with a message naming
the package to install; ``ECERT_REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns that skip
into a failure. ``ECERT_CHROMIUM`` names another executable.

:class:`BundleHost` serves a directory on 127.0.0.1 as a region's bundle host must
(docs/verifier-page.md): JavaScript and HTML with their media types and the CORS header
every region's host sends, so that pages of other origins (and the page kept as a file)
may read the documents. It can leave CORS out, serve 503 for a path prefix, or stop.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.http import LocalServer

#: The Debian package that provides the browser.
CHROMIUM_PACKAGE = "chromium"
SKIP_PREFIX = "BROWSER TESTS SKIPPED"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".json": "application/json",
          ".txt": "text/plain; charset=utf-8", ".png": "image/png"}


def chromium_executable() -> str | None:
    """The Chromium to drive: ``ECERT_CHROMIUM``, else ``chromium`` on the PATH."""
    named = os.environ.get("ECERT_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> str:
    """The Chromium executable, or skip (fail under ``ECERT_REQUIRE_BROWSER=1``) loudly."""
    missing = []
    executable = chromium_executable()
    if executable is None:
        missing.append(f"no Chromium executable (install Debian's package: apt-get install -y "
                       f"{CHROMIUM_PACKAGE}, or set ECERT_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("no Playwright for Python (pip install -e '.[test]')")
    if missing:
        message = f"{SKIP_PREFIX}: " + "; ".join(missing)
        if os.environ.get("ECERT_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " — and ECERT_REQUIRE_BROWSER=1 requires them", pytrace=False)
        pytest.skip(message)
    assert executable is not None
    return executable


def fake_camera(image: Path, out: Path, size: tuple[int, int] = (640, 480)) -> Path:
    """A Y4M video of ``image`` centred on white, for Chromium's fake camera
    (``--use-file-for-fake-video-capture``): one grey frame, which Chromium repeats."""
    from PIL import Image

    width, height = size
    frame = Image.new("L", size, 255)
    picture = Image.open(image).convert("L")
    picture.thumbnail((height - 40, height - 40))
    frame.paste(picture, ((width - picture.width) // 2, (height - picture.height) // 2))
    chroma = bytes([128]) * (width * height // 4)
    out.write_bytes(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
                    + b"FRAME\n" + frame.tobytes() + chroma + chroma)
    return out


class BundleHost(LocalServer):
    """A region's bundle host as docs/verifier-page.md asks: ``http://127.0.0.1:PORT/``
    serving ``root`` with media types and the CORS header (``cors = False`` leaves it out)."""

    def __init__(self, root: Path, *, cors: bool = True) -> None:
        super().__init__(root)
        self.cors = cors
        self.base_url = f"http://127.0.0.1:{self.port}"

    @property
    def cors(self) -> bool:
        return "Access-Control-Allow-Origin" in self.extra_headers

    @cors.setter
    def cors(self, on: bool) -> None:
        self.extra_headers = {"Cache-Control": "no-cache",
                              **({"Access-Control-Allow-Origin": "*"} if on else {})}

    def media_type(self, file: Path) -> str:
        return _TYPES.get(file.suffix, "application/octet-stream")

    def paths(self) -> list[str]:
        """The paths asked for, in order."""
        return [path for path, _status in self.log]


#: The page's own input path in one round trip to the browser: fill the fields and press
#: the button (its click handler reads the fields, as for a person) — or, given ``png``
#: (base64), choose that image in the photo input (its change handler reads it) — and wait
#: inside the page until the result is shown (``data-count`` goes up; a MutationObserver,
#: not a poll). The wait gives up after 20 s, so a page that never answers fails the test.
#: Also embedded as a function by scripts that verify many inputs in one call.
PRESS_VERIFY = """async ({fields, png}) => {
  const $ = (id) => document.getElementById(id), box = $('result'), count = box.dataset.count;
  for (const [id, value] of Object.entries(fields)) $(id).value = value;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no result shown in 20 s')), 20000);
    new MutationObserver((_, seen) => {
      if (box.dataset.count !== count) { seen.disconnect(); clearTimeout(timer); resolve(); }
    }).observe(box, {attributes: true, attributeFilter: ['data-count']});
    if (!png) { $('verify').click(); return; }
    const chosen = new DataTransfer();
    chosen.items.add(new File([Uint8Array.from(atob(png), (c) => c.charCodeAt(0))], 'qr.png',
                              {type: 'image/png'}));
    $('file').files = chosen.files;
    $('file').dispatchEvent(new Event('change', {bubbles: true}));
  });
  return [box.dataset.status || '', box.dataset.errors || ''];
}"""

#: ``window.ecert.lastResult`` as JSON (BigInt sizes as strings).
LAST_RESULT = ("JSON.parse(JSON.stringify(window.ecert.lastResult, "
               "(k, v) => typeof v === 'bigint' ? String(v) : v))")


class VerifierTab:
    """One tab of the verifier page, driven as a person would: paste, click, read.

    Waits use selectors or in-page promises only: the page's Content-Security-Policy
    forbids the ``eval`` that Playwright's function waits need (``evaluate`` goes through
    DevTools and may run).
    """

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def open(self, url: str) -> VerifierTab:
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready=true]", state="attached", timeout=15_000)
        return self

    def _count(self) -> int:
        return int(self.page.get_attribute("#result", "data-count") or 0)

    def wait_result(self, after: int) -> tuple[str, str]:
        self.page.wait_for_selector(f"#result[data-count='{after + 1}']", state="attached",
                                    timeout=20_000)
        return self.status()

    def status(self) -> tuple[str, str]:
        """``(data-status, data-errors)`` of the result."""
        return (self.page.get_attribute("#result", "data-status") or "",
                self.page.get_attribute("#result", "data-errors") or "")

    def verify(self, text: str, *, audience: str | None = None, purpose: str | None = None,
               full: str | None = None, leaf: str | int | None = None) -> tuple[str, str]:
        """Paste ``text`` (and the options; ``leaf``: the log entry number that requires
        inclusion), press the button: the result's status."""
        status, errors = self.page.evaluate(PRESS_VERIFY, {"fields": {
            "input": text, "audience": audience or "", "purpose": purpose or "",
            "full": full or "", "leaf": "" if leaf is None else str(leaf)}, "png": None})
        return status, errors

    def inclusion(self) -> tuple[str, str]:
        """``(data-included, data-inclusion-errors)`` of the result."""
        return (self.page.get_attribute("#result", "data-included") or "",
                self.page.get_attribute("#result", "data-inclusion-errors") or "")

    def upload(self, image: Path) -> tuple[str, str]:
        """Choose ``image`` in the photo input (read with the fallback decoder here)."""
        before = self._count()
        self.page.set_input_files("#file", str(image))
        return self.wait_result(before)

    def result(self) -> dict[str, Any]:
        """The last result as the page computed it (``window.ecert.lastResult``)."""
        value: dict[str, Any] = self.page.evaluate(LAST_RESULT)
        return value
