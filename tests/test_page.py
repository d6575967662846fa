"""The verifier page in real headless Chromium (docs/verifier-page.md).

Two regions publish into their own bundle hosts on 127.0.0.1 (tests/support/page_world.py);
the page ``ecert publish`` wrote into GD's bundle is opened with the test clock and given
what a person gives it: pasted tokens and QR text, a PNG read by the fallback QR decoder
(desktop Chromium has no BarcodeDetector), a link's fragment. Each result is read from the
attributes the page sets for machines: ``data-status`` and ``data-errors``, the statuses
and error codes of :class:`ecert.VerificationResult`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import VerifierTab, fake_camera, require_browser
from tests.support.page_world import PAGE_NOW, PageWorld, build_page_world

AXE = Path(__file__).parent / "support" / "vendor" / "axe.min.js"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageWorld]:
    yield from build_page_world(tmp_path_factory.mktemp("page-world"))


@pytest.fixture
def context(chromium: Any) -> Iterator[Any]:
    """A fresh browser profile (no storage, no service worker) per test."""
    ctx = chromium.new_context(service_workers="block")
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def shared(chromium: Any, world: PageWorld) -> Iterator[VerifierTab]:
    """One tab for the tests that only verify and read (a page keeps no state that changes
    a verdict but the rollback floor, which these tests never lower)."""
    ctx = chromium.new_context(service_workers="block")
    yield VerifierTab(ctx.new_page()).open(world.page_url())
    ctx.close()


@pytest.fixture
def tab(shared: VerifierTab) -> VerifierTab:
    shared.errors.clear()
    return shared


# -- results --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "status", "errors"), [
    ("valid", "valid", ""),
    ("revoked", "revoked", "revoked"),
    ("suspended", "suspended", "suspended"),
    ("expired", "expired", "expired"),
    ("not_yet_valid", "not_yet_valid", "not_yet_valid"),
    ("unknown_kid", "untrusted", "unknown_kid"),
    ("foreign_unmapped", "untrusted", "type_not_recognized"),
    ("ed25519", "valid", ""),
])
def test_certificate_statuses(tab: VerifierTab, world: PageWorld, name: str, status: str,
                              errors: str) -> None:
    assert tab.verify(world.texts[name]) == (status, errors)
    assert tab.errors == []


def test_valid_certificate_shows_its_claims_issuer_and_region(tab: VerifierTab,
                                                               world: PageWorld) -> None:
    cert = world.certificates["valid"]
    assert tab.verify(world.texts["valid"]) == ("valid", "")
    shown = tab.page.inner_text("#result")
    assert "有效" in shown and cert.holder_name in shown and cert.id in shown
    assert "广东省市场监督管理局" in shown
    result = tab.result()
    assert result["kind"] == "certificate" and result["certificate_id"] == cert.id
    assert result["issuer"]["agency"] == "gd-amr" and result["agreement"] is None
    assert result["local_type"] == "cn.business-licence"
    # The region and its address are named prominently, before any result.
    header = tab.page.inner_text("header")
    assert "广东省" in header and f"{world.gd.base_url}/verify/" in header


def test_garbage_is_malformed_and_nothing_throws(tab: VerifierTab) -> None:
    for text in ("", "xx", "a.b.c", "EC1:" + "Z" * 10, "EC2:ABC", "eyJ" * 30000):
        status, errors = tab.verify(text)
        assert status == "invalid" and errors in {"malformed", "qr_malformed",
                                                  "qr_unknown_version", "too_large"}
    assert tab.errors == []


def test_purpose_bound_copy_for_its_requester_and_purpose(tab: VerifierTab,
                                                          world: PageWorld) -> None:
    copy = world.texts["copy"]
    assert tab.verify(copy) == ("untrusted", "audience_required")
    assert tab.verify(copy, audience="ZJ/zj-psb-traffic") == ("untrusted", "wrong_audience")
    assert tab.verify(copy, audience="ZJ/zj-amr", purpose="别的事由") == (
        "untrusted", "wrong_purpose")
    assert tab.verify(copy, audience="ZJ/zj-amr", purpose="跨省迁移登记") == ("valid", "")
    result = tab.result()
    assert result["kind"] == "copy" and result["copy"]["audience"] == "ZJ/zj-amr"
    shown = tab.page.inner_text("#result")
    assert "跨省迁移登记" in shown and result["copy"]["case"] in shown


def test_a_copys_qr_form_as_the_copy(tab: VerifierTab, world: PageWorld) -> None:
    """A copy card's QR code (container flag bit 3): the same verdicts as the copy token,
    for its requester and purpose only, shown as the copy (never as the certificate),
    with every claim of the copy carried."""
    text = world.texts["copy_qr"]
    assert text.startswith("EC1:")
    assert tab.verify(text) == ("untrusted", "audience_required")
    assert tab.result()["kind"] == "copy"
    assert tab.verify(text, audience="ZJ/zj-psb-traffic") == ("untrusted", "wrong_audience")
    assert tab.verify(text, audience="ZJ/zj-amr", purpose="别的事由") == (
        "untrusted", "wrong_purpose")
    assert tab.verify(text, audience="ZJ/zj-amr", purpose="跨省迁移登记") == ("valid", "")
    from_qr = tab.result()
    assert tab.verify(world.texts["copy"], audience="ZJ/zj-amr") == ("valid", "")
    token = tab.result()
    assert from_qr["kind"] == "copy" and "certificate" not in from_qr
    assert from_qr["copy"] == token["copy"] and from_qr["issuer"] == token["issuer"]
    assert from_qr["qr"] == {"claims_present": sorted(token["copy"]["claims"]),
                             "digest_bound": False}
    assert tab.verify(text, audience="ZJ/zj-amr") == ("valid", "")
    shown = tab.page.inner_text("#result")
    assert "跨省迁移登记" in shown and from_qr["copy"]["case"] in shown and "原证照" in shown
    # Inclusion is proven for the copy token, not its QR form.
    assert tab.verify(text, audience="ZJ/zj-amr", leaf=world.leaves["copy"]) == ("valid", "")
    assert tab.inclusion() == ("false", "qr_form")


def test_foreign_certificate_through_the_agreement(tab: VerifierTab, world: PageWorld) -> None:
    assert tab.verify(world.texts["foreign"]) == ("valid", "")
    result = tab.result()
    assert result["agreement"]["region"] == "ZJ"
    assert result["local_type"] == "cn.food-business-licence"
    assert result["issuer"]["region"] == "ZJ"
    shown = tab.page.inner_text("#result")
    assert "GD ↔ ZJ" in shown and "cn.food-business-licence" in shown
    # ZJ's documents came from ZJ's own host, across origins.
    assert "/trustlist.jwt" in world.zj.paths()


def test_a_host_without_the_cors_header_cannot_be_read(tab: VerifierTab, world: PageWorld) -> None:
    world.zj.cors = False
    try:
        tab.page.evaluate("window.ecert.reset()")  # a new verifier: ZJ's list not yet read
        status, errors = tab.verify(world.texts["foreign"])
    finally:
        world.zj.cors = True
        tab.page.evaluate("window.ecert.reset()")
    assert (status, errors) == ("untrusted", "foreign_trust_list_invalid")
    assert tab.verify(world.texts["foreign"]) == ("valid", "")  # with the header again


# -- inclusion in the region's log (ecert verify --require-inclusion) ----------------------


def test_inclusion_in_the_log(tab: VerifierTab, world: PageWorld) -> None:
    """A log entry number given: the token's issue (a copy's use record) must be in the
    region's log, proven against its signed checkpoint from the published tiles."""
    leaves, texts = world.leaves, world.texts
    assert tab.verify(texts["valid"], leaf=leaves["valid"]) == ("valid", "")
    assert tab.inclusion() == ("true", "")
    result = tab.result()
    assert result["valid"] is True and result["inclusion"]["leaf_index"] == leaves["valid"]
    assert f"{leaves['valid']} / {result['inclusion']['checkpoint_size']}" in \
        tab.page.inner_text("#result")
    # Revoked, and logged: included all the same (the status is the verdict's).
    assert tab.verify(texts["revoked"], leaf=leaves["revoked"]) == ("revoked", "revoked")
    assert tab.inclusion() == ("true", "")
    # Another certificate's entry, an entry past the checkpoint, no number, the QR form.
    assert tab.verify(texts["valid"], leaf=leaves["revoked"]) == ("valid", "")
    assert tab.inclusion() == ("false", "not_logged")
    assert tab.result()["valid"] is False
    assert tab.page.inner_text("#result h2") == "未能证明已记入公开日志"
    assert tab.verify(texts["valid"], leaf=10**6) == ("valid", "")
    assert tab.inclusion() == ("false", "not_included")
    assert tab.verify(texts["valid"], leaf="seven") == ("valid", "")
    assert tab.inclusion() == ("false", "no_proof")
    assert tab.verify(texts["qr_short"], leaf=leaves["valid"]) == ("valid", "")
    assert tab.inclusion() == ("false", "qr_form")
    assert tab.verify(texts["unknown_kid"], leaf=leaves["valid"]) == ("untrusted", "unknown_kid")
    assert tab.inclusion() == ("false", "not_verified")
    # A copy: the use record that served it, made when the copy was.
    copy = {"audience": "ZJ/zj-amr", "purpose": "跨省迁移登记"}
    assert tab.verify(texts["copy"], leaf=leaves["copy"], **copy) == ("valid", "")
    assert tab.inclusion() == ("true", "")
    assert tab.verify(texts["copy"], leaf=leaves["valid"], **copy) == ("valid", "")
    assert tab.inclusion() == ("false", "not_logged")
    # Without a number nothing is required, and nothing is said.
    assert tab.verify(texts["valid"]) == ("valid", "")
    assert tab.inclusion() == ("", "") and "inclusion" not in tab.result()
    assert tab.errors == []


def test_inclusion_refused_by_the_published_log(tab: VerifierTab, world: PageWorld) -> None:
    """Hash tiles that do not lead to the signed root, a checkpoint whose signature does
    not verify, a log that cannot be read: refused with the Python verifier's codes."""
    page, leaf, valid = tab.page, world.leaves["valid"], world.texts["valid"]

    def zeros(route: Any) -> None:
        real = route.fetch()
        route.fulfill(response=real, body=bytes(len(real.body())))  # right size, wrong hashes

    def altered(route: Any) -> None:
        real = route.fetch()
        lines = real.body().split(b"\n")
        lines[1] = str(int(lines[1]) + 1).encode()  # the size, under the same signature
        route.fulfill(response=real, body=b"\n".join(lines))

    for pattern, handler, code in [
            ("**/log/tile/0/**", zeros, "not_included"),
            ("**/log/checkpoint", altered, "checkpoint_invalid"),
            ("**/log/**", lambda route: route.fulfill(status=503), "log_unreachable")]:
        page.route(pattern, handler)
        try:
            assert tab.verify(valid, leaf=leaf) == ("valid", ""), code
            assert tab.inclusion() == ("false", code)
        finally:
            page.unroute(pattern)
    assert tab.verify(valid, leaf=leaf) == ("valid", "")
    assert tab.inclusion() == ("true", "")


# -- QR codes -------------------------------------------------------------------------------


def test_qr_short_and_full_forms(tab: VerifierTab, world: PageWorld) -> None:
    cert = world.certificates["valid"]
    assert tab.verify(world.texts["qr_short"]) == ("valid", "")
    short = tab.result()
    assert short["kind"] == "qr" and short["certificate_id"] == cert.id
    assert short["qr"]["digest_bound"] is True
    assert set(short["qr"]["claims_present"]) < set(cert.claims)
    assert "仅由摘要绑定" in tab.page.inner_text("#result")
    assert tab.verify(world.texts["qr_full"]) == ("valid", "")
    full = tab.result()
    assert full["qr"]["digest_bound"] is False
    assert full["qr"]["claims_present"] == sorted(cert.claims)


def test_qr_digest_binding_against_the_full_token(tab: VerifierTab, world: PageWorld) -> None:
    page = tab.page
    assert tab.verify(world.texts["qr_short"], full=world.texts["valid"]) == ("valid", "")
    assert page.get_attribute("#result", "data-qr-matches") == "true"
    assert "摘要绑定成立" in page.inner_text("#result")
    # Another certificate's token is not the one the QR binds.
    assert tab.verify(world.texts["qr_short"], full=world.texts["suspended"]) == ("valid", "")
    assert page.get_attribute("#result", "data-qr-matches") == "false"
    assert tab.verify(world.texts["qr_short"]) == ("valid", "")
    assert page.get_attribute("#result", "data-qr-matches") == ""


def test_png_through_the_fallback_decoder(tab: VerifierTab, world: PageWorld) -> None:
    assert tab.page.evaluate("'BarcodeDetector' in window") is False  # desktop Chromium
    assert tab.upload(world.images["qr_short"]) == ("valid", "")
    assert tab.page.input_value("#input") == world.texts["qr_short"]
    assert tab.page.evaluate("typeof window.jsQR") == "function"


def test_link_qr_read_from_a_photo(tab: VerifierTab, world: PageWorld) -> None:
    assert tab.upload(world.images["link"]) == ("valid", "")
    assert tab.page.input_value("#input") == world.texts["qr_short"]


def test_fragment_input_is_read_then_removed(context: Any, world: PageWorld) -> None:
    link = world.texts["link"]
    assert link.startswith(f"{world.gd.base_url}/verify/#EC1:")
    fragment = link.split("#", 1)[1]
    page = context.new_page()
    tab = VerifierTab(page)
    page.goto(f"{world.gd.base_url}/verify/?clock={PAGE_NOW}#{fragment}")
    page.wait_for_selector("#result[data-count='1']", state="attached", timeout=20_000)
    assert tab.status() == ("valid", "")
    assert tab.result()["kind"] == "qr"
    # Out of the address bar and of the history entry.
    assert "#" not in page.url and "EC1" not in page.url
    assert page.evaluate("location.hash") == ""


# -- the page itself ------------------------------------------------------------------------


def test_english_switch(tab: VerifierTab, world: PageWorld) -> None:
    assert tab.page.get_attribute("html", "lang") == "zh-CN"
    tab.verify(world.texts["revoked"])
    assert "已撤销" in tab.page.inner_text("#result h2")
    tab.page.click("#lang")
    try:
        assert tab.page.get_attribute("html", "lang") == "en"
        assert tab.page.inner_text("#result h2") == "Revoked"
        assert tab.status() == ("revoked", "revoked")
    finally:
        tab.page.click("#lang")  # the shared tab back in Chinese (the choice is remembered)
    assert tab.page.get_attribute("html", "lang") == "zh-CN"


def _axe(page: Any) -> list[dict[str, Any]]:
    if page.evaluate("typeof window.axe") == "undefined":  # once per page load
        page.evaluate(AXE.read_text("utf-8"))
    report: dict[str, Any] = page.evaluate(
        "axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "nodes": [n["target"] for n in v["nodes"]]}
            for v in report["violations"]]


def test_accessibility_and_a_360_px_screen(chromium: Any, world: PageWorld) -> None:
    ctx = chromium.new_context(service_workers="block", viewport={"width": 360, "height": 740},
                               device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        tab = VerifierTab(ctx.new_page()).open(world.page_url())
        assert _axe(tab.page) == []
        for name in ("valid", "revoked", "unknown_kid"):
            tab.verify(world.texts[name])
            assert _axe(tab.page) == [], name
            # Nothing wider than the screen: no sideways scrolling on a phone.
            assert tab.page.evaluate("document.documentElement.scrollWidth") <= 360, name
        tab.page.click("#lang")
        assert _axe(tab.page) == []
    finally:
        ctx.close()


def test_strict_csp_and_subresource_integrity(context: Any, world: PageWorld) -> None:
    html = (world.gd_bundle / "verify" / "index.html").read_text("utf-8")
    assert "default-src 'none'" in html and "require-trusted-types-for 'script'" in html
    assert "unsafe" not in html
    assert html.count('integrity="sha384-') == 3  # both scripts and the style sheet
    # A script that is not the one published is not run.
    page = context.new_page()
    page.route("**/verify/app.js", lambda route: route.fulfill(
        status=200, content_type="text/javascript", body="window.evil = 1;"))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text))
    page.goto(world.page_url())
    page.wait_for_load_state("load")
    assert page.evaluate("window.evil") is None
    assert page.get_attribute("body", "data-ready") is None
    assert any("integrity" in e for e in errors)


def test_page_check_against_the_signed_digests(tab: VerifierTab, world: PageWorld) -> None:
    page = tab.page

    def check() -> str | None:
        page.evaluate("document.getElementById('page-result').dataset.pageCheck = ''")
        page.click("#page-check")
        page.wait_for_selector("#page-result:not([data-page-check=''])", state="attached")
        return page.get_attribute("#page-result", "data-page-check")

    tab.verify(world.texts["valid"])
    assert check() == "match"
    # A host that serves another page than the one the region signed is caught.
    other = "**/verify/sw.js"
    page.route(other, lambda route: route.fulfill(status=200, body="// other"))
    try:
        assert check() == "mismatch"
        assert "sw.js" in page.inner_text("#page-result")
    finally:
        page.unroute(other)


def test_the_single_file_page_opened_locally(context: Any, world: PageWorld,
                                             tmp_path: Path) -> None:
    kept = tmp_path / "ecert-verify.html"
    kept.write_bytes((world.gd_bundle / "verify" / "ecert-verify.html").read_bytes())
    tab = VerifierTab(context.new_page()).open(f"{kept.as_uri()}?clock={PAGE_NOW}")
    assert tab.verify(world.texts["valid"]) == ("valid", "")
    assert tab.verify(world.texts["foreign"]) == ("valid", "")
    assert tab.upload(world.images["qr_short"]) == ("valid", "")
    assert tab.errors == []


def test_rollback_is_refused_from_the_page_memory(tab: VerifierTab, world: PageWorld) -> None:
    assert tab.verify(world.texts["valid"]) == ("valid", "")
    anchor = world.anchors["GD"]
    key = json.dumps(f"ecert-trust-state/GD/{anchor.kid}")
    kept = tab.page.evaluate(f"localStorage.getItem({key})")
    state = json.loads(kept)
    assert state["regions"]["GD"]["sequence"] == 2
    state["regions"]["GD"]["sequence"] = 7  # as if a newer list had been seen
    tab.page.evaluate(f"localStorage.setItem({key}, {json.dumps(json.dumps(state))})")
    try:
        # A new verifier (as on reopening the page) reads the memory: the served list is
        # older than one already seen.
        tab.page.evaluate("window.ecert.reset()")
        assert tab.verify(world.texts["valid"]) == ("untrusted", "trust_list_rollback")
    finally:  # the shared tab's memory as it was
        tab.page.evaluate(f"localStorage.setItem({key}, {json.dumps(kept)})")
        tab.page.evaluate("window.ecert.reset()")
    assert tab.verify(world.texts["valid"]) == ("valid", "")


def test_trust_data_and_log_shown(tab: VerifierTab, world: PageWorld) -> None:
    tab.verify(world.texts["foreign"])
    panel = tab.page.locator("#trust-data")
    assert panel.locator("[data-region='GD']").get_attribute("data-log") == "consistent"
    assert panel.locator("[data-region='ZJ']").get_attribute("data-log") == "consistent"
    assert panel.locator("[data-region='GD']").get_attribute("data-source") == "network"
    assert "序号 2" in panel.locator("[data-region='GD']").inner_text()


def test_log_checkpoint_extending_the_trust_lists_tree(context: Any, world: PageWorld) -> None:
    """An older trust list beside a newer checkpoint: consistent only through a proof made
    from the published tiles; tiles that do not prove it refuse the trust list."""
    page = context.new_page()
    page.route(f"{world.gd.base_url}/trustlist.jwt",
               lambda route: route.fulfill(status=200, body=world.earlier_trust_list))
    tab = VerifierTab(page).open(world.page_url())
    before = len(world.gd.paths())
    assert tab.verify(world.texts["valid"]) == ("valid", "")
    assert page.locator("[data-region='GD']").get_attribute("data-log") == "consistent"
    assert any(p.startswith("/log/tile/0/") for p in world.gd.paths()[before:])

    def forged(route: Any) -> None:
        real = route.fetch()
        route.fulfill(response=real, body=bytes(len(real.body())))  # right size, wrong hashes

    page.route("**/log/tile/**", forged)
    page.evaluate("window.ecert.reset()")
    assert tab.verify(world.texts["valid"]) == ("untrusted", "log_checkpoint_mismatch")


def test_ed25519_missing_in_the_browser_is_said(chromium: Any, world: PageWorld) -> None:
    ctx = chromium.new_context(service_workers="block")
    # A browser whose WebCrypto has no Ed25519 (before Chrome 137, for instance).
    ctx.add_init_script("""(() => {
      const real = crypto.subtle.importKey.bind(crypto.subtle);
      crypto.subtle.importKey = (format, data, algorithm, ...rest) =>
        (algorithm === 'Ed25519' || (algorithm && algorithm.name === 'Ed25519'))
          ? Promise.reject(new DOMException('Unrecognized name.', 'NotSupportedError'))
          : real(format, data, algorithm, ...rest);
    })();""")
    try:
        tab = VerifierTab(ctx.new_page()).open(world.page_url())
        assert tab.page.is_visible("#ed25519")
        assert tab.verify(world.texts["ed25519"]) == ("invalid", "ed25519_unsupported")
        assert "Ed25519" in tab.page.inner_text("#result")
        # ES256 still verifies; the log (Ed25519 checkpoints) is said to be unchecked.
        assert tab.verify(world.texts["valid"]) == ("valid", "")
        assert tab.page.locator("[data-region='GD']").get_attribute("data-log") == "unchecked"
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def instrumented(chromium: Any, world: PageWorld, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Any]:
    """A second Chromium with a camera that films the short QR code (its fake capture
    device) and the host name ``verify.test`` for 127.0.0.1 (a page off loopback)."""
    video = fake_camera(world.images["qr_short"], tmp_path_factory.mktemp("cam") / "qr.y4m")
    browser = chromium.browser_type.launch(executable_path=require_browser(), args=[
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        "--host-resolver-rules=MAP verify.test 127.0.0.1",
        f"--unsafely-treat-insecure-origin-as-secure=http://verify.test:{world.gd.port}"])
    yield browser
    browser.close()


def test_the_test_clock_is_ignored_off_loopback(instrumented: Any, world: PageWorld) -> None:
    """On a real host name, ``?clock=`` and ``window.__ecertClock`` do nothing."""
    ctx = instrumented.new_context(service_workers="block")
    try:
        ctx.add_init_script(f"window.__ecertClock = {PAGE_NOW};")
        origin = f"http://verify.test:{world.gd.port}"
        tab = VerifierTab(ctx.new_page()).open(f"{origin}/verify/?clock={PAGE_NOW}")
        assert tab.page.is_hidden("#test-clock")
        assert tab.page.evaluate("window.ecert.verifier.now()") != PAGE_NOW  # the real clock
        # On loopback the same hooks are honoured, and said so on the page.
        local = VerifierTab(ctx.new_page()).open(world.page_url())
        assert local.page.is_visible("#test-clock")
    finally:
        ctx.close()


def test_barcode_detector_is_used_where_the_browser_has_it(context: Any,
                                                           world: PageWorld) -> None:
    """A phone's browser with BarcodeDetector (stood in for here: desktop Chromium has
    none) reads the code itself; the fallback decoder is then not even loaded."""
    detector = """window.BarcodeDetector = class {
      constructor(options) { this.formats = options.formats; }
      async detect() { return [{rawValue: LINK, format: 'qr_code'}]; }
    };"""
    context.add_init_script(detector.replace("LINK", json.dumps(world.texts["link"])))
    tab = VerifierTab(context.new_page()).open(world.page_url())
    assert tab.upload(world.images["qr_short"]) == ("valid", "")
    assert tab.page.input_value("#input") == world.texts["qr_short"]
    assert tab.page.evaluate("typeof window.jsQR") == "undefined"


def test_camera_input(instrumented: Any, world: PageWorld) -> None:
    """The camera (Chromium's fake capture device showing the QR code), read by the
    fallback decoder frame by frame, as on a phone without BarcodeDetector."""
    ctx = instrumented.new_context(service_workers="block", permissions=["camera"])
    try:
        tab = VerifierTab(ctx.new_page()).open(world.page_url())
        tab.page.click("#camera")
        tab.wait_result(0)
        assert tab.status() == ("valid", "")
        assert tab.page.input_value("#input") == world.texts["qr_short"]
        assert tab.page.is_hidden("#video")  # the camera stops once a code is read
    finally:
        ctx.close()


def test_anchor_is_embedded(world: PageWorld) -> None:
    html = (world.gd_bundle / "verify" / "index.html").read_text("utf-8")
    embedded = html.split('name="ecert-anchor" content="', 1)[1].split('"', 1)[0]
    assert base64.urlsafe_b64decode(embedded + "==") == (world.gd_bundle /
                                                        "anchor.json").read_bytes()


#: Resolves once a service worker controls the page (false after 10 s).
_CONTROLLED = """() => navigator.serviceWorker.controller ? true : new Promise((resolve) => {
  navigator.serviceWorker.addEventListener('controllerchange', () => resolve(true));
  setTimeout(() => resolve(!!navigator.serviceWorker.controller), 10000);
})"""
#: The URLs the worker keeps, once it keeps at least ``n`` (or after 10 s: what it keeps).
_KEPT = """async (n) => {
  const urls = async () => (await (await caches.open('ecert-documents-v1')).keys())
    .map((r) => r.url);
  for (const end = Date.now() + 10000; Date.now() < end;) {
    const kept = await urls();
    if (kept.length >= n) return kept;
    await new Promise((r) => setTimeout(r, 20));
  }
  return urls();
}"""


def test_service_worker_keeps_only_verified_documents(chromium: Any, world: PageWorld,
                                                      tmp_path: Path) -> None:
    """Offline, the page verifies from the copies its service worker kept, and says how
    old they are; it keeps nothing it was not told verified."""
    ctx = chromium.new_context()
    try:
        page = ctx.new_page()
        tab = VerifierTab(page).open(world.page_url())
        assert page.evaluate(_CONTROLLED)
        assert tab.verify(world.texts["valid"]) == ("valid", "")
        # The worker stores what it was sent: wait (in the page) until it has stored two.
        kept = page.evaluate(_KEPT, 2)
        base = world.gd.base_url
        assert sorted(kept) == [f"{base}/status/1.jwt", f"{base}/trustlist.jwt"]
        world.gd.down.add("/")  # the host fails (503): documents come from the copies
        try:
            tab.open(world.page_url())
            assert tab.verify(world.texts["revoked"]) == ("revoked", "revoked")
            region = page.locator("[data-region='GD']")
            assert region.get_attribute("data-source") == "cache"
            assert "离线副本" in region.inner_text()
        finally:
            world.gd.down.clear()
    finally:
        ctx.close()
