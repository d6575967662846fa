"""The verifier page in headless Chromium: how long a pasted QR code takes to verify.

Builds the page tests' two-region world (tests/support/page_world.py), opens GD's
published page with the test clock, verifies the QR text once (the trust list, its log
checkpoint and the status list are fetched and checked: the trust data is then cached in
the page), then pastes and verifies it N more times. Each time is what the page measures
around ``Verifier.verify`` (``data-elapsed-ms``: decoding, the container, the signature
with WebCrypto, the claims, the cached status list), plus, for comparison, the time from
the click to the rendered result as the test driver sees it. Also: the first, uncached
verification, a full certificate token, and an Ed25519 one.

Run: ``python bench/bench_page.py [--rounds 200]`` (needs Chromium: apt-get install -y
chromium; see docs/performance.md).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.support.browser import VerifierTab, require_browser
from tests.support.page_world import build_page_world


def _elapsed(tab: VerifierTab) -> float:
    return float(tab.page.get_attribute("#result", "data-elapsed-ms") or "nan")


#: In the page: paste, press the button, wait until the result is shown (verification,
#: rendering the result and the trust panel), as the browser's clock sees it.
_PASTE_TO_SHOWN = """async (text) => {
  const $ = (id) => document.getElementById(id), box = $('result'), count = box.dataset.count;
  const started = performance.now();
  $('input').value = text;
  $('verify').click();
  while (box.dataset.count === count) await new Promise((r) => setTimeout(r, 0));
  return performance.now() - started;
}"""


def main(rounds: int) -> None:
    executable = require_browser()
    with tempfile.TemporaryDirectory() as tmp:
        world_gen = build_page_world(Path(tmp))
        world = next(world_gen)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=executable)
                print(f"Chromium {browser.version}, {rounds} rounds")
                for name in ("qr_short", "qr_full", "valid", "ed25519"):
                    context = browser.new_context(service_workers="block")
                    tab = VerifierTab(context.new_page()).open(world.page_url())
                    assert tab.verify(world.texts[name]) == ("valid", ""), name
                    first = _elapsed(tab)
                    inside, shown, around = [], [], []
                    for _ in range(rounds):
                        started = time.perf_counter()
                        assert tab.verify(world.texts[name]) == ("valid", "")
                        around.append((time.perf_counter() - started) * 1000)
                        inside.append(_elapsed(tab))
                        shown.append(tab.page.evaluate(_PASTE_TO_SHOWN, world.texts[name]))
                    inside.sort()
                    shown.sort()
                    print(f"{name:10} first (fetching trust data) {first:6.1f} ms; cached: "
                          f"verify median {statistics.median(inside):5.2f} ms, "
                          f"p95 {inside[int(len(inside) * 0.95) - 1]:5.2f}, "
                          f"max {inside[-1]:5.2f}; paste to shown median "
                          f"{statistics.median(shown):5.2f} ms, "
                          f"p95 {shown[int(len(shown) * 0.95) - 1]:5.2f}; "
                          f"driver round trip {statistics.median(around):5.1f} ms")
                    context.close()
                browser.close()
        finally:
            next(world_gen, None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    main(parser.parse_args().rounds)
