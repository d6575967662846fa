"""The verifier page on the conformance vectors (``tests/vectors/index.json``, docs/conformance.md).

Every case of the index is given to the page in headless Chromium as a person would give
it — pasted text, or the PNG read by the fallback QR decoder — with the case's home anchor
embedded in a page built by ``ecert._page.build_page``, its bundles answering at their base
URLs (requests routed to the bundle directories; a URL under no listed bundle is a 404),
its prior state in the page's memory and its clock injected through the loopback-only test
hook. ``data-status`` and ``data-errors`` must be exactly the expected status and error
codes; the rest of the expected result (kind, issuer, certificate id, local type, agreement,
QR claims and digest binding, copy, and — for cases that ``require_inclusion`` — the
inclusion in the region's log, from the leaf index typed into the page's log entry field,
with the same error codes as ``ecert verify --require-inclusion``) is compared too.

One page per anchor verifies all of that anchor's cases in one call into the browser,
through the page's own input path (the fields and the button, the photo input), each case
after ``window.ecert.reset()`` (a new verifier: empty caches, the case's memory and clock);
which bundles answer is switched per case through a function the test exposes to the page.
Each case is still its own test, asserting what the page showed for it.

``ECERT_VECTORS_DIR`` points at another vectors directory (another branch's, another
implementation's output). Without an index the module is skipped, saying so.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ecert
from ecert import _page
from ecert._formats.jose import parse_compact
from tests.support.browser import LAST_RESULT, PRESS_VERIFY, BundleHost

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
        self.context.expose_function("__ecertVectorBundles", self._list)
        self.context.route(lambda url: not url.startswith(self.host.base_url), self._serve)
        #: What the page showed, by case id (filled one anchor at a time).
        self.shown: dict[str, dict[str, Any]] = {}

    def _list(self, bundle_ids: list[str]) -> None:
        self.listed = list(bundle_ids)

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

    def given(self, case: dict[str, Any]) -> dict[str, Any]:
        """What the page is given for ``case``: its memory, clock, bundles and input."""
        key, state = self.prior_state(case)
        given, options = case["input"], case["options"]
        image = given["form"] == "image"
        return {"id": case["id"], "bundles": case["bundles"], "key": key, "state": state,
                "now": case["now"],
                "png": base64.b64encode((VECTORS / given["image"]).read_bytes()).decode()
                if image else None,
                "fields": {"audience": options["audience"] or "",
                           "purpose": options["purpose"] or "",
                           "full": given.get("full_token") or "",
                           "leaf": "" if options["leaf_index"] is None
                           else str(options["leaf_index"]),
                           **({} if image else {"input": given["text"]})}}

    def outcome(self, case: dict[str, Any]) -> dict[str, Any]:
        """What the page showed for ``case``; the first case of an anchor runs them all."""
        if case["id"] not in self.shown:
            cases = [c for c in CASES if c["anchor"] == case["anchor"]]
            page = self.context.new_page()
            try:
                page.goto(self.pages[case["anchor"]])
                page.wait_for_selector("body[data-ready=true]", state="attached",
                                       timeout=15_000)
                for shown in page.evaluate(RUN_CASES, [self.given(c) for c in cases]):
                    self.shown[shown["id"]] = shown
            finally:
                page.close()
        return self.shown[case["id"]]

    def close(self) -> None:
        self.context.close()
        self.host.stop()


#: Every case of one anchor, in one call: for each, the bundles that answer, the memory,
#: the clock and a new verifier (``reset``), then the page's input path (PRESS_VERIFY)
#: and what it showed. A case that throws is reported as such, not as the next one's.
#: The bundles are switched only when they change from one case to the next (a round trip
#: to Python each time).
RUN_CASES = f"""async (cases) => {{
  const press = {PRESS_VERIFY};
  const box = document.getElementById('result'), out = [];
  let listed = null;
  for (const c of cases) {{
    try {{
      const bundles = JSON.stringify(c.bundles);
      if (bundles !== listed) {{ await window.__ecertVectorBundles(c.bundles); listed = bundles; }}
      if (c.state === null) localStorage.removeItem(c.key);
      else localStorage.setItem(c.key, c.state);
      window.__ecertNow = c.now;
      await window.ecert.reset();
      window.ecert.lastResult = null;
      const [status, errors] = await press({{fields: c.fields, png: c.png}});
      out.push({{id: c.id, status, errors, input: document.getElementById('input').value,
                 qrMatches: box.getAttribute('data-qr-matches'),
                 included: box.getAttribute('data-included'),
                 inclusionErrors: box.getAttribute('data-inclusion-errors'),
                 result: {LAST_RESULT}}});
    }} catch (e) {{
      out.push({{id: c.id, thrown: String(e)}});
    }}
  }}
  return out;
}}"""


@pytest.fixture(scope="module")
def vectors(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vectors]:
    runner = Vectors(tmp_path_factory.mktemp("vector-pages"), chromium)
    yield runner
    runner.close()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vector(vectors: Vectors, case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    shown = vectors.outcome(case)
    assert "thrown" not in shown, shown.get("thrown")
    assert (shown["status"], shown["errors"]) == (expected["status"],
                                                  " ".join(expected["errors"])), case["about"]
    if given["form"] == "image":
        assert shown["input"] == given["text"]  # decoded by jsQR
    result = shown["result"]
    assert result is not None, case["about"]
    facts = {
        "kind": result.get("kind"),
        "issuer": None if not result.get("issuer") else {
            k: result["issuer"][k] for k in ("region", "agency", "kid")},
        "certificate_id": result.get("certificate_id"),
        "local_type": result.get("local_type"),
        "agreement": (result.get("agreement") or {}).get("region"),
        "copy": None if not result.get("copy") else {
            k: result["copy"][k] for k in ("audience", "purpose", "case")},
    }
    assert facts == {k: expected[k] for k in facts}, case["about"]
    assert result["valid"] is expected["valid"], case["about"]
    inclusion = expected["inclusion"]
    if inclusion is None:
        assert (shown["included"], shown["inclusionErrors"]) == ("", "")
        assert "inclusion" not in result
    else:
        assert (shown["included"], shown["inclusionErrors"]) == (
            str(inclusion["included"]).lower(), " ".join(inclusion["errors"])), case["about"]
        assert {k: result["inclusion"][k] for k in ("included", "errors")} == inclusion
    qr = result.get("qr")
    if expected["qr"] is None:
        assert qr is None
    else:
        matches = shown["qrMatches"]
        assert {"claims_present": qr["claims_present"], "digest_bound": qr["digest_bound"],
                "matches_full_token": None if not matches else matches == "true"} == expected["qr"]
