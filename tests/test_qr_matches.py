"""``VerificationResult.qr_matches``: the full token must agree with everything the QR says.

Regression for the review finding that ``qr_matches`` ignored the QR's holder, expiry
and status index. A QR is signed separately from its certificate (by the agency's key
of the day), so each test has the agency sign a QR that carries the true digest of the
certificate but changes one other field: the QR still verifies (the agency signed it),
but it does not match the certificate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ecert
from ecert import qr as ecert_qr
from ecert._formats import qr as qr_format
from tests.support import FakeClock, issue_business_licence

Published = tuple[ecert.Registry, ecert.Certificate, Path]
Payload = dict[str, Any]


def _signed_qr(registry: ecert.Registry, cert: ecert.Certificate, *, full: bool,
               change: Callable[[Payload], None]) -> str:
    """The QR text of ``cert`` with ``change`` applied to its payload, signed by its agency."""
    base_url = registry.region.base_url
    payload = qr_format.qr_payload(
        qr_format.parse_token_payload(cert.token), cert.token,
        registry.get_type(cert.type_code).qr_claims, base_url,
        int(registry._clock().timestamp()), full=full)
    change(payload)
    active = next(k for k in registry.keys(cert.agency_code) if k.retired_at is None)
    return qr_format.wrap(qr_format.sign_qr_token(payload, registry.keystore.signer(active.kid)))


def _set(key: str, value: Any) -> Callable[[Payload], None]:
    def change(payload: Payload) -> None:
        payload[key] = value
    return change


def _claim(name: str, value: Any) -> Callable[[Payload], None]:
    def change(payload: Payload) -> None:
        payload["c"][name] = value
    return change


def _drop_claim(name: str) -> Callable[[Payload], None]:
    def change(payload: Payload) -> None:
        del payload["c"][name]
    return change


def _status_index(payload: Payload) -> None:
    payload["s"] = [payload["s"][0], payload["s"][1] ^ 1]


def _unchanged(payload: Payload) -> None:
    pass


CHANGES: dict[str, tuple[Callable[[Payload], None], bool]] = {
    "holder name": (_set("h", "另一家公司"), False),
    "expiry": (lambda p: p.__setitem__("e", p["e"] - 86_400), False),
    "no expiry": (lambda p: p.pop("e"), False),
    "status index": (_status_index, False),
    "valid from": (lambda p: p.__setitem__("f", p["i"] + 3_600), False),
    "issued at": (lambda p: p.__setitem__("i", p["i"] - 3_600), False),
    "claim value": (_claim("legal_representative", "王五"), False),
    "claim type": (_claim("established_on", 20_200_101), False),
    "extra claim": (_claim("note", "x"), False),
    "claim missing from a complete QR": (_drop_claim("address"), True),
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_qr_that_disagrees_with_the_token_does_not_match(
        published: Published, clock: FakeClock, name: str) -> None:
    registry, cert, bundle = published
    change, full = CHANGES[name]
    clock.advance(hours=2)  # so a QR signed "now" may move iat back an hour
    text = _signed_qr(registry, cert, full=full, change=change)
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(text)
    # The QR verifies (or at worst is refused on its own lifecycle), but names another
    # certificate than the token: it must not be taken as the QR of that token.
    assert result.qr and result.certificate is not None, (result.errors, result.messages)
    assert result.qr_digest == qr_format.token_digest(cert.token)
    assert not result.qr_matches(cert.token)


@pytest.mark.parametrize("full", [False, True], ids=["short", "full"])
def test_faithful_qr_matches_only_its_token(published: Published, clock: FakeClock,
                                            full: bool) -> None:
    registry, cert, bundle = published
    verifier = ecert.Verifier.from_bundle(bundle, clock=clock)
    for text in (_signed_qr(registry, cert, full=full, change=_unchanged),
                 ecert_qr.qr_text(registry, cert.id, full=full)):
        result = verifier.verify(text)
        assert result.valid, result.messages
        assert result.qr_matches(cert.token)
        other = issue_business_licence(registry)
        assert not result.qr_matches(other.token)
        for junk in ("", "a.b.c", "not a token", cert.token.split(".")[0] + ".e30.x"):
            assert not result.qr_matches(junk)
    assert not verifier.verify(cert.token).qr_matches(cert.token)  # not a QR result


@pytest.mark.parametrize("digest", ["AAAAAAAAAAAAAAAAAAAAAA", "摘要摘要", ""])
def test_qr_with_another_digest_does_not_match(published: Published, clock: FakeClock,
                                               digest: str) -> None:
    registry, cert, bundle = published
    text = _signed_qr(registry, cert, full=True, change=_set("d", digest))
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(text)
    assert result.valid, result.messages
    assert result.qr_digest == digest
    assert not result.qr_matches(cert.token)  # and never raises, whatever the QR carries
