"""The verifier page on the conformance vectors (``tests/vectors/index.json``, docs/conformance.md).

Every case of the index is given to the page in headless Chromium as a person would give
it — pasted text, or the PNG read by the fallback QR decoder — with the case's home anchor
embedded in a page built by ``ecert._page.build_page``, its bundles answering at their base
URLs (requests routed to the bundle directories; a URL under no listed bundle is a 404),
its prior state in the page's memory and its clock injected through the loopback-only test
hook. ``data-status`` and ``data-errors`` must be exactly the expected status and error
codes; the rest of the expected result (kind, issuer, certificate id, local type, agreement,
QR claims and digest binding, copy) is compared too. Cases that need ``require_inclusion``
are skipped: the page does not check inclusion proofs.

``ECERT_VECTORS_DIR`` points at another vectors directory (another branch's, another
implementation's output). Without an index the module is skipped, saying so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ecert
from ecert import _page
from ecert._formats.jose import parse_compact
from tests.support.browser import BundleHost, VerifierTab

VECTORS = Path(os.environ.get("ECERT_VECTORS_DIR") or Path(__file__).parent / "vectors")
INDEX = VECTORS / "index.json"


def _cases() -> list[dict[str, Any]]:
    if not INDEX.is_file():
        return []
    index = json.loads(INDEX.read_text("utf-8"))
    assert index["format"] == "ecert-conformance-vectors" and index["version"] == 1
    return list(index["cases"])


CASES = _cases()
pytestmark = pytest.mark.skipif(not CASES, reason=f"no conformance vectors at {INDEX} "
                                                  "(set ECERT_VECTORS_DIR)")


class Vectors:
    """Pages by anchor on one loopback host; each case's bundles routed by base URL."""

    def __init__(self, root: Path, chromium: Any) -> None:
        self.index = json.loads(INDEX.read_text("utf-8"))
        self.bundles: dict[str, dict[str, Any]] = self.index["bundles"]
        origins = sorted({b["base_url"] for b in self.bundles.values()})
        self.host = BundleHost(root)
        self.pages: dict[str, str] = {}
        for n, path in enumerate(sorted({c["anchor"] for c in CASES})):
            anchor = ecert.TrustAnchor.from_bytes((VECTORS / path).read_bytes())
            directory = root / f"page-{n}" / _page.PAGE_DIR
            directory.mkdir(parents=True)
            for name, data in _page.build_page(anchor, recognized=[
                    f"{o}/trustlist.jwt" for o in origins]).items():
                (directory / name).write_bytes(data)
            self.pages[path] = f"{self.host.base_url}/page-{n}/{_page.PAGE_DIR}/"
        self.context = chromium.new_context(service_workers="block")
        self.context.add_init_script("window.__ecertClock = () => window.__ecertNow || 0;")
        self.listed: list[str] = []
        self.context.route(lambda url: not url.startswith(self.host.base_url), self._serve)
        self.tabs: dict[str, VerifierTab] = {}

    def _serve(self, route: Any) -> None:
        url = route.request.url
        for bundle_id in self.listed:
            bundle = self.bundles[bundle_id]
            prefix = bundle["base_url"] + "/"
            if url.startswith(prefix):
                file = VECTORS / bundle["path"] / url[len(prefix):]
                if file.is_file() and ".." not in url[len(prefix):].split("/"):
                    route.fulfill(status=200, body=file.read_bytes(),
                                  headers={"Access-Control-Allow-Origin": "*",
                                           "Content-Type": "application/octet-stream"})
                    return
        route.fulfill(status=404, body=b"not found",
                      headers={"Access-Control-Allow-Origin": "*"})

    def tab(self, anchor: str) -> VerifierTab:
        if anchor not in self.tabs:
            self.tabs[anchor] = VerifierTab(self.context.new_page()).open(self.pages[anchor])
        return self.tabs[anchor]

    def prior_state(self, case: dict[str, Any]) -> tuple[str, str | None]:
        """The page's memory before the case (trust-state.json's shape, in localStorage):
        each region's sequence under the root its anchor (home) or the home agreement pins."""
        anchor = ecert.TrustAnchor.from_bytes((VECTORS / case["anchor"]).read_bytes())
        key = f"ecert-trust-state/{anchor.region}/{anchor.kid}"
        sequences = case["prior_state"]["trust_list_sequences"]
        if not sequences:
            return key, None
        pins = {anchor.region: dict(anchor.root_jwk)}
        base = anchor.trust_list_url.rsplit("/", 1)[0]
        for bundle_id in case["bundles"]:
            bundle = self.bundles[bundle_id]
            if bundle["base_url"] == base:
                token = (VECTORS / bundle["path"] / "trustlist.jwt").read_text("ascii")
                for agreement in parse_compact(token, max_bytes=1 << 22).payload["agreements"]:
                    pins.setdefault(agreement["region"], agreement["root_key"])
        regions = {code: {"pinned_kid": pins[code]["kid"], "sequence": seq,
                          "root_key": pins[code]} for code, seq in sequences.items()}
        return key, json.dumps({"version": 2, "anchor": {"region": anchor.region,
                                                         "root_kid": anchor.kid},
                                "regions": regions})

    def close(self) -> None:
        self.context.close()
        self.host.stop()


RUN_CASE = """async (c) => {
    if (c.state === null) localStorage.removeItem(c.key); else localStorage.setItem(c.key, c.state);
    window.__ecertNow = c.now;
    await window.ecert.reset();
    const $ = (id) => document.getElementById(id), box = $('result');
    for (const id of ['audience', 'purpose', 'full']) $(id).value = c[id];
    if (c.text === null) return null;
    $('input').value = c.text;
    const count = box.dataset.count;
    $('verify').click();
    while (box.dataset.count === count) await new Promise((r) => setTimeout(r, 5));
    return [box.dataset.status, box.dataset.errors];
}"""


@pytest.fixture(scope="module")
def vectors(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vectors]:
    runner = Vectors(tmp_path_factory.mktemp("vector-pages"), chromium)
    yield runner
    runner.close()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vector(vectors: Vectors, case: dict[str, Any]) -> None:
    if case["options"]["require_inclusion"]:
        pytest.skip("the page does not check inclusion proofs (ecert verify --require-inclusion)")
    tab = vectors.tab(case["anchor"])
    key, state = vectors.prior_state(case)
    vectors.listed = list(case["bundles"])
    given, options, expected = case["input"], case["options"], case["expected"]
    # One round trip: a new verifier with empty caches and the case's memory and clock,
    # the fields filled in, the button pressed, the rendered result read.
    image = given["form"] == "image"
    shown_status = tab.page.evaluate(RUN_CASE, {
        "key": key, "state": state, "now": case["now"], "text": None if image else given["text"],
        "audience": options["audience"] or "", "purpose": options["purpose"] or "",
        "full": given.get("full_token") or ""})
    if image:
        shown_status = list(tab.upload(VECTORS / given["image"]))
        assert tab.page.input_value("#input") == given["text"]  # decoded by jsQR
    assert tuple(shown_status) == (expected["status"], " ".join(expected["errors"])), \
        case["about"]
    result = tab.result()
    shown = {
        "kind": result.get("kind"),
        "issuer": None if not result.get("issuer") else {
            k: result["issuer"][k] for k in ("region", "agency", "kid")},
        "certificate_id": result.get("certificate_id"),
        "local_type": result.get("local_type"),
        "agreement": (result.get("agreement") or {}).get("region"),
        "copy": None if not result.get("copy") else {
            k: result["copy"][k] for k in ("audience", "purpose", "case")},
    }
    assert shown == {k: expected[k] for k in shown}, case["about"]
    qr = result.get("qr")
    if expected["qr"] is None:
        assert qr is None
    else:
        matches = tab.page.get_attribute("#result", "data-qr-matches")
        assert {"claims_present": qr["claims_present"], "digest_bound": qr["digest_bound"],
                "matches_full_token": None if not matches else matches == "true"} == expected["qr"]
