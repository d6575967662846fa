"""``ecert qr --link``: a QR code any phone's camera app opens into the verifier page.

The link is ``{base_url}/verify/#EC1:…`` with the container in base43 (tested with base45
in tests/test_qr_format.py) (base45 without space
and ``%``: no escaping in a URL, as long as the QR text), the URL in a byte segment and the
fragment in an alphanumeric one. The issue's size rule: for a base URL of up to 30
characters the code is at most two versions larger than the plain one, and above version 25
it is refused with its size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ecert
from ecert import qr as ecert_qr
from ecert._formats import qr as qr_format
from tests.support import Published

BASES = ("https://a.cn", "http://127.0.0.1:8701", "https://ecert.gd.example",
         "https://ecert.guangdong.gov.cn", "https://zwfw.gd.gov.cn/ecert/z",
         "http://[2001:db8::17]:65535/ab")


def test_link_carries_the_qr_text(shared_qr: tuple[str, str]) -> None:
    for token in shared_qr:
        text = ecert_qr.qr_text(token)
        link = ecert_qr.link_text("https://ecert.gd.example", text)
        prefix, fragment = link.split("#")
        assert prefix == "https://ecert.gd.example/verify/"
        assert fragment.startswith("EC1:") and not set(fragment[4:]) & {" ", "%"}
        assert len(fragment) == len(text)
        assert ecert_qr.text_from_link(link) == text
    with pytest.raises(ecert.InputError):
        ecert_qr.link_text("https://ecert.gd.example", "not QR text")
    with pytest.raises(ecert.FormatError):
        ecert_qr.link_text("https://ecert.gd.example/", ecert_qr.qr_text(shared_qr[0]))
    for bad in ("https://x/verify/", "https://x/verify/#EC1:A B", "https://x/verify/#xyz"):
        with pytest.raises(ecert.FormatError):
            ecert_qr.text_from_link(bad)


@pytest.mark.parametrize("base", BASES)
def test_link_within_two_versions_of_the_plain_code(base: str,
                                                    shared_qr: tuple[str, str]) -> None:
    assert len(base) <= 30
    for token in shared_qr:
        text = ecert_qr.qr_text(token)
        plain, link = ecert_qr.make_qr(text), ecert_qr.make_link_qr(base, text)
        assert plain.version <= link.version <= plain.version + 2
        assert link.text == ecert_qr.link_text(base, text)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(BASES), st.integers(min_value=150, max_value=760), st.randoms())
def test_link_size_rule_for_any_container(base: str, size: int, rnd: Any) -> None:
    """For any container a plain code can hold, the link is at most two versions larger,
    or refused with its size when that would pass version 25."""
    text = "EC1:" + qr_format.b45encode(rnd.randbytes(size))
    try:
        plain = ecert_qr.make_qr(text)
    except ecert.QrTooLarge:
        return
    try:
        link = ecert_qr.make_link_qr(base, text)
    except ecert.QrTooLarge as e:
        assert plain.version + 2 > ecert_qr.MAX_VERSION
        assert "characters) needs version" in e.message and "--link" in e.message
        return
    assert link.version <= plain.version + 2 and link.version <= ecert_qr.MAX_VERSION


def test_cli_link_qr_reads_back_and_verifies(published: Published, tmp_path: Path,
                                              cli_as_admin: Any) -> None:
    registry, cert, bundle = published
    out = tmp_path / "link.png"
    result = cli_as_admin(registry, "qr", cert.id, "-o", str(out), "--link", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["link"].startswith(registry.region.base_url + "/verify/#EC1:")
    assert shown["characters"] == len(shown["link"])
    assert ecert_qr.decode_qr_image(out) == shown["link"]
    # The plain form of the same certificate is at most two versions smaller.
    plain = json.loads(cli_as_admin(registry, "qr", cert.id, "-o", str(tmp_path / "p.png"),
                                    "--json").output)
    assert plain["link"] is None and shown["version"] <= plain["version"] + 2
    # ecert verify takes the link as a phone's camera would hand it over.
    result = cli_as_admin(registry, "verify", shown["link"], "--bundle", str(bundle), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["kind"] == "qr"
