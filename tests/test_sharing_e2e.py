"""The sharing service end to end over loopback HTTP: GD serves on a real uvicorn, ZJ's
agencies fetch with their requester keys from ZJ's trust list, under the GD–ZJ agreement
and GD's entitlements (tests/data/sharing.json). Every answer is checked, and every
request is a use record and a ``share.fetch`` entry, granted or refused."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

import ecert
from ecert._formats.bundle import TRUST_LIST_PATH
from ecert._formats.copy import COPY_TYP, CopyClaims
from ecert._formats.jose import b64url_encode, parse_compact
from ecert._formats.sharing import (
    FRESHNESS_WINDOW,
    CheckRequest,
    Problem,
    ShareRequest,
    UseKind,
)
from ecert._formats.trustlist import TrustedKey
from ecert.errors import TrustListError
from ecert.keys import LocalSigner, Signer
from ecert.registry._limits import MAX_LEASE
from ecert.sharing.backend import RefreshingRequesterKeys, RefusalLimiter, RegistryBackend
from ecert.sharing.client import send, signed_headers
from ecert.trust import load_trust_list
from tests.support import serve
from tests.support.cli import Cli
from tests.support.clock import FakeClock
from tests.support.constants import PASSPHRASE
from tests.support.extras import ecert_without_extras
from tests.support.issuing import uscc
from tests.support.regions import BL, FBL
from tests.support.sharing_service import body_of, raw_exchange, request_bytes, status_of
from tests.support.sharing_world import (
    SERVICE_OPERATOR,
    SERVICE_PASSPHRASE,
    SharingWorld,
    Ticks,
    another_service,
    context_of,
    running_world,
    sample,
    sample_request,
)

GRANTED = sample_request("granted with consent")
PURPOSE = GRANTED["purpose"]
OTHER_PURPOSE = next(e for e in sample()["entitlements"]
                     if e["requester"] == "ZJ/zj-amr")["purposes"][1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharingWorld]:
    yield from running_world(tmp_path_factory.mktemp("sharing-e2e"))


def last_use(world: SharingWorld) -> Any:
    """The newest use record, as stored (whoever it names)."""
    with world["GD"].engine.connect() as conn:
        return conn.execute(text("SELECT * FROM uses ORDER BY id DESC LIMIT 1")).one()


def use_count(world: SharingWorld) -> int:
    with world["GD"].engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM uses")).scalar_one())


def assert_refused(world: SharingWorld, answer: Any, code: str, *, case: str | None) -> None:
    """A problem document with ``code``, disclosing nothing, recorded as a use."""
    assert answer.value is None and answer.problem is not None, answer
    assert answer.problem.code == code, answer.problem
    text_of_it = answer.problem.to_json().decode("utf-8")
    for secret in (world.licence.id, world.licence.holder_name, "token"):
        assert secret not in text_of_it
    use = last_use(world)
    assert (use.outcome, use.problem) == ("refused", code if code != "malformed_request"
                                          else "bad_request")
    certificates = use.certificates  # JSON: text on SQLite, decoded on PostgreSQL
    assert (json.loads(certificates) if isinstance(certificates, str) else certificates) == []
    if case is not None:
        assert use.case_no == case
    (entry,) = world["GD"].events(f"use:{use.id}")
    assert entry.action == "share.fetch" and entry.details["problem"] == use.problem


# -- granted -----------------------------------------------------------------------------------


def test_a_zj_agency_fetches_a_copy_with_the_holders_consent(world: SharingWorld) -> None:
    consent = world.consent("ZJ/zj-amr", PURPOSE)
    answer = world.fetch("ZJ/zj-amr", context_of(GRANTED, consent.code))
    assert answer.status == 200 and answer.problem is None, answer
    (item,) = answer.value["copies"]  # type: ignore[index]
    parsed = parse_compact(item["token"], max_bytes=1 << 20)
    assert parsed.header["typ"] == COPY_TYP
    copy = CopyClaims.from_payload(parsed.payload)
    assert (copy.copy_of, copy.aud, copy.purpose, copy.case) == (
        world.licence.id, "ZJ/zj-amr", PURPOSE, GRANTED["case_no"])
    assert sorted(copy.claims) == sorted(GRANTED["expect_claims"])
    assert copy.exp - copy.iat == 24 * 3600
    (use, *_) = world["GD"].uses(world.holder_id).items
    assert (use.outcome, use.requester, use.consent, use.certificates) == (
        "granted", "ZJ/zj-amr", consent.id, (world.licence.id,))
    # The record hashes the very bytes the requester received.
    assert use.response_hash == b64url_encode(hashlib.sha256(answer.body).digest())
    assert (use.staff_id, use.staff_role, use.service_item) == (
        "zj-0042", "受理员", GRANTED["service_item"])


def test_an_agency_of_the_region_fetches_by_statute_without_consent(
        world: SharingWorld) -> None:
    entry = sample_request("by statute, no consent")
    answer = world.fetch(entry["requester"], context_of(entry))
    (item,) = answer.value["copies"]  # type: ignore[index]
    copy = CopyClaims.from_payload(parse_compact(item["token"], max_bytes=1 << 20).payload)
    assert (copy.aud, copy.purpose) == ("GD/gd-hrss", entry["purpose"])
    assert sorted(copy.claims) == sorted(entry["expect_claims"])
    use = world["GD"].uses(world.holder_id).items[0]
    assert (use.requester, use.consent, use.outcome) == ("GD/gd-hrss", "by statute",
                                                        "granted")


def test_a_holder_without_such_a_certificate_gets_an_empty_list(world: SharingWorld) -> None:
    entry = sample_request("by statute, no consent")
    answer = world.fetch(entry["requester"], context_of(entry, case="GD-EMPTY-1"),
                         holder_id=uscc(4242))
    assert answer.status == 200 and answer.value == {"copies": []}, answer
    use = last_use(world)
    assert (use.outcome, use.case_no) == ("granted", "GD-EMPTY-1")
    # Another holder's consent does not hold for this one: refused, nothing disclosed.
    consent = world.consent("ZJ/zj-amr", PURPOSE)
    refused = world.fetch("ZJ/zj-amr", context_of(GRANTED, consent.code, case="ZJ-H-1"),
                          holder_id=uscc(4242))
    assert_refused(world, refused, "consent_invalid", case="ZJ-H-1")


# -- refused -----------------------------------------------------------------------------------


def test_an_agency_without_an_entitlement_is_refused(world: SharingWorld) -> None:
    entry = sample_request("consent for another requester")
    consent = world.consent("ZJ/zj-amr", PURPOSE)
    answer = world.fetch(entry["requester"], context_of(entry, consent.code))
    assert_refused(world, answer, "not_entitled", case=entry["case_no"])
    assert last_use(world).requester == "ZJ/zj-psb-traffic"


def test_a_type_outside_the_entitlement_is_refused(world: SharingWorld) -> None:
    consent = world.consent("ZJ/zj-amr", PURPOSE, types=(FBL,))
    answer = world.fetch("ZJ/zj-amr", context_of(GRANTED, consent.code, case="ZJ-T-1"),
                         types=(FBL,))
    assert_refused(world, answer, "not_entitled", case="ZJ-T-1")


def test_an_unrecognized_region_is_refused(world: SharingWorld) -> None:
    entry = sample_request("unrecognized region")
    answer = world.fetch(entry["requester"], context_of(entry))
    assert_refused(world, answer, "region_not_recognized", case=None)
    assert last_use(world).requester == "-"  # not authenticated: nobody is named


def test_no_consent_is_refused(world: SharingWorld) -> None:
    entry = sample_request("no consent")
    answer = world.fetch("ZJ/zj-amr", context_of(entry))
    assert_refused(world, answer, "consent_required", case=entry["case_no"])


def test_a_purpose_outside_the_entitlement_is_refused(world: SharingWorld) -> None:
    entry = sample_request("purpose outside entitlement")
    consent = world.consent("ZJ/zj-amr", entry["purpose"])
    answer = world.fetch("ZJ/zj-amr", context_of(entry, consent.code))
    assert_refused(world, answer, "purpose_not_permitted", case=entry["case_no"])


def test_an_expired_consent_is_refused(world: SharingWorld) -> None:
    consent = world.consent("ZJ/zj-amr", PURPOSE, ttl=60)
    world.clock.advance(seconds=61)
    answer = world.fetch("ZJ/zj-amr", context_of(GRANTED, consent.code, case="ZJ-E-1"))
    assert_refused(world, answer, "consent_invalid", case="ZJ-E-1")


def test_a_used_consent_is_refused(world: SharingWorld) -> None:
    consent = world.consent("ZJ/zj-amr", PURPOSE)
    first = world.fetch("ZJ/zj-amr", context_of(GRANTED, consent.code, case="ZJ-U-1"))
    assert first.status == 200
    again = world.fetch("ZJ/zj-amr", context_of(GRANTED, consent.code, case="ZJ-U-2"))
    assert_refused(world, again, "consent_invalid", case="ZJ-U-2")


@pytest.mark.parametrize("to, purpose", [("ZJ/zj-psb-traffic", PURPOSE),
                                         ("ZJ/zj-amr", OTHER_PURPOSE)],
                         ids=["another requester", "another purpose"])
def test_a_consent_for_another_requester_or_purpose_is_refused(
        world: SharingWorld, to: str, purpose: str) -> None:
    consent = world.consent(to, purpose)
    answer = world.fetch("ZJ/zj-amr", context_of(GRANTED, consent.code, case="ZJ-O-1"))
    assert_refused(world, answer, "consent_invalid", case="ZJ-O-1")


def test_a_replayed_request_is_refused(world: SharingWorld) -> None:
    assert world.service is not None
    consent = world.consent("ZJ/zj-amr", PURPOSE)
    body = ShareRequest(world.holder_id, (BL,),
                        context_of(GRANTED, consent.code, case="ZJ-R-1")).to_json()
    headers = signed_headers(world.fetch_url, body, world.signer("ZJ/zj-amr"), "ZJ/zj-amr",
                             clock=world.clock)
    raw = request_bytes("POST", "/v1/copies", world.service.port, headers, body)
    first = raw_exchange(world.service.port, raw)
    assert status_of(first) == 200, first
    before = use_count(world)
    replayed = raw_exchange(world.service.port, raw)
    assert status_of(replayed) == 401
    problem = json.loads(body_of(replayed))
    assert problem["code"] == "replay" and "copies" not in problem
    assert use_count(world) == before + 1
    use = last_use(world)
    assert (use.requester, use.problem) == ("ZJ/zj-amr", "replay")


def test_a_malformed_body_from_an_authenticated_requester_is_recorded(
        world: SharingWorld) -> None:
    assert world.service is not None
    body = b'{"holder_id": "91440300MA5F3K2L8G", "types": []}'
    headers = signed_headers(world.fetch_url, body, world.signer("ZJ/zj-amr"), "ZJ/zj-amr",
                             clock=world.clock)
    answer = raw_exchange(world.service.port, request_bytes(
        "POST", "/v1/copies", world.service.port, headers, body))
    assert status_of(answer) == 400
    assert json.loads(body_of(answer))["code"] == "malformed_request"
    use = last_use(world)
    assert (use.requester, use.problem, use.outcome) == ("ZJ/zj-amr", "bad_request",
                                                         "refused")


class _Impostor:
    """Signs with another key under zj-amr's key id."""

    def __init__(self, real: Signer) -> None:
        self._other = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
        self.kid, self.alg = real.kid, real.alg

    def sign(self, data: bytes) -> bytes:
        return self._other.sign(data)


def test_a_wrong_key_is_refused(world: SharingWorld) -> None:
    consent = world.consent("ZJ/zj-amr", PURPOSE)
    impostor: Any = _Impostor(world.signer("ZJ/zj-amr"))
    answer = world.fetch("ZJ/zj-amr", context_of(GRANTED, consent.code), signer=impostor)
    assert_refused(world, answer, "not_authenticated", case=None)
    # Its keyid named a published key, but the signature did not verify: nothing proves the
    # request came from ZJ/zj-amr, so the refusal is recorded as nobody's (anyone could
    # otherwise have refusals logged in any agency's name).
    assert last_use(world).requester == "-"
    # The consent was not touched: the right key still fetches with it.
    assert world.fetch("ZJ/zj-amr", context_of(GRANTED, consent.code)).status == 200


# -- every refusal is recorded as the kind of request it refused -------------------------------

#: The endpoints and the kind of request each serves.
ENDPOINTS = {"fetch": "/v1/copies", "check": "/v1/checks"}


@dataclass(frozen=True)
class Attempt:
    """How a refused request is made (from a valid one of the endpoint's kind)."""

    requester: str = "ZJ/zj-amr"
    holder_id: str | None = None  #: another holder than the sample's
    context: dict[str, str] = field(default_factory=dict)  #: changes to the case context
    consent: str | None = None
    unsigned: bool = False
    signer: Callable[[SharingWorld], Signer] | None = None
    skew: int = 0  #: ``created`` this many seconds after the service's clock
    body: bytes | None = None  #: instead of a well-formed request body
    tamper: bool = False  #: change the body after signing
    garble: bool = False  #: a signature that does not parse
    content_type: str | None = None
    twice: bool = False  #: send the very same bytes twice


def _new_key(world: SharingWorld) -> Signer:
    return LocalSigner(ec.generate_private_key(ec.SECP256R1()))


def _impostor(world: SharingWorld) -> Signer:
    return _Impostor(world.signer("ZJ/zj-amr"))  # type: ignore[return-value]


#: Every way the service refuses: the attempt, the problem answered, the problem recorded,
#: and whom the record names (``-``: nobody, the request was not authenticated).
REFUSALS: dict[str, tuple[Attempt, str, str, str]] = {
    "unsigned": (Attempt(unsigned=True), "not_authenticated", "not_authenticated", "-"),
    "body changed after signing": (Attempt(tamper=True), "not_authenticated",
                                   "not_authenticated", "-"),
    "signature does not parse": (Attempt(garble=True), "not_authenticated",
                                 "not_authenticated", "-"),
    "unknown key": (Attempt(signer=_new_key), "not_authenticated", "not_authenticated", "-"),
    "wrong key": (Attempt(signer=_impostor), "not_authenticated", "not_authenticated", "-"),
    "unrecognized region": (Attempt(requester="SH/sh-amr"), "region_not_recognized",
                            "region_not_recognized", "-"),
    # Ahead, not behind: the requester key is younger than the freshness window.
    "stale": (Attempt(skew=FRESHNESS_WINDOW + 100), "not_authenticated",
              "not_authenticated", "ZJ/zj-amr"),
    "replay": (Attempt(twice=True), "replay", "replay", "ZJ/zj-amr"),
    "not json": (Attempt(content_type="text/plain"), "unsupported_media_type",
                 "bad_request", "-"),
    "malformed body": (Attempt(body=b'{"purpose": 1}'), "malformed_request", "bad_request",
                       "ZJ/zj-amr"),
    "malformed for the registry": (Attempt(context={"staff_id": "a\u180eb"}),
                                   "malformed_request", "bad_request", "ZJ/zj-amr"),
    "rate limit": (Attempt(), "too_many_requests", "too_many_requests", "ZJ/zj-amr"),
    "not entitled": (Attempt(requester="ZJ/zj-psb-traffic"), "not_entitled",
                     "not_entitled", "ZJ/zj-psb-traffic"),
    "purpose": (Attempt(context={"purpose": sample_request("purpose outside entitlement")[
        "purpose"]}), "purpose_not_permitted", "purpose_not_permitted", "ZJ/zj-amr"),
    "no consent": (Attempt(), "consent_required", "consent_required", "ZJ/zj-amr"),
    # For another holder: wrong codes are counted per requester and holder.
    "wrong consent": (Attempt(consent="0000-0000-0000-0000", holder_id=uscc(4343)),
                      "consent_invalid",
                      "consent_invalid", "ZJ/zj-amr"),
}


#: The refusals decided once the body was read (their records carry the case).
DECIDED_BY_THE_REGISTRY = frozenset({"malformed for the registry", "rate limit",
                                     "not entitled", "purpose", "no consent",
                                     "wrong consent"})


def attempt(world: SharingWorld, kind: str, how: Attempt, case: str) -> bytes:
    """Make the request ``how`` says at the endpoint of ``kind``; the raw answer."""
    assert world.service is not None
    path, port = ENDPOINTS[kind], world.service.port
    context = context_of(GRANTED, how.consent, **{"case": case, **how.context})
    holder_id = how.holder_id or world.holder_id
    body = how.body if how.body is not None else (
        ShareRequest(holder_id, (BL,), context).to_json() if kind == "fetch"
        else CheckRequest(BL, {"holder_id": holder_id}, context).to_json())
    signer = how.signer(world) if how.signer else world.signer(how.requester)
    clock = FakeClock(world.clock() + timedelta(seconds=how.skew))
    headers = [("Content-Type", "application/json")] if how.unsigned else signed_headers(
        world.service.url(path), body, signer, how.requester, clock=clock)
    if how.garble:
        headers = [(k, "sig=:AAAA") if k.lower() == "signature" else (k, v)
                   for k, v in headers]
    if how.content_type is not None:
        headers = [(k, how.content_type) if k.lower() == "content-type" else (k, v)
                   for k, v in headers]
    raw = request_bytes("POST", path, port, headers, body + b" " if how.tamper else body)
    answer = raw_exchange(port, raw)
    return raw_exchange(port, raw) if how.twice else answer


@pytest.mark.parametrize("kind", sorted(ENDPOINTS))
@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_every_refusal_is_recorded_as_the_kind_of_request_refused(
        world: SharingWorld, kind: str, refusal: str) -> None:
    """Whichever check refuses it — the HTTP layer's or the registry's — a refused check
    (核验) is a use record of kind ``check`` and a ``share.check`` entry, a refused fetch
    one of kind ``fetch`` and a ``share.fetch`` entry."""
    assert world.backend is not None
    how, answered, recorded, requester = REFUSALS[refusal]
    world.ticks.now += world.backend.limiter.window  # a fresh window: recorded one by one
    case = f"KIND-{kind}-{refusal}"[:40]
    if refusal == "rate limit":
        world["GD"].set_share_limits(fetches_per_hour=0, checks_per_hour=0)
    try:
        answer = attempt(world, kind, how, case)
        # The service hands out what its last lease of the hourly count still holds.
        for _ in range(MAX_LEASE if refusal == "rate limit" else 0):
            if json.loads(body_of(answer))["code"] == answered:
                break
            answer = attempt(world, kind, how, case)
    finally:
        if refusal == "rate limit":
            defaults = ecert.registry.ShareLimits()
            world["GD"].set_share_limits(fetches_per_hour=defaults.fetches_per_hour,
                                         checks_per_hour=defaults.checks_per_hour)
    assert json.loads(body_of(answer))["code"] == answered, answer
    use = last_use(world)
    assert (use.kind, use.outcome, use.problem, use.requester) == (
        kind, "refused", recorded, requester)
    if refusal in DECIDED_BY_THE_REGISTRY:
        assert use.case_no == case  # the record of this very request
    (entry,) = world["GD"].events(f"use:{use.id}")
    assert (entry.action, entry.details.get("kind", "fetch")) == (f"share.{kind}", kind)


# -- the command line --------------------------------------------------------------------------


def zj_cli(world: SharingWorld) -> Cli:
    return Cli(world["ZJ"].home, world.database_urls["ZJ"],
               env={"ECERT_PASSPHRASE": PASSPHRASE, "ECERT_LANG": "en"}, clock=world.clock)


def test_share_fetch_prints_the_copies(world: SharingWorld) -> None:
    assert world.service is not None
    consent = world.consent("ZJ/zj-amr", PURPOSE)
    cli = zj_cli(world)
    args = ["share", "fetch", world.service.base_url, "--agency", "zj-amr", "--holder-id",
            world.holder_id, "--type", BL, "--purpose", PURPOSE, "--case", "ZJ-C-1",
            "--service-item", "330000-SX-0001", "--staff-id", "zj-0042"]
    found = cli.json(*args, "--consent", consent.code)
    (copy,) = found["copies"]
    assert (copy["copy_of"], copy["type"], copy["purpose"], copy["case"], copy["audience"]) == (
        world.licence.id, BL, PURPOSE, "ZJ-C-1", "ZJ/zj-amr")
    assert copy["token"].count(".") == 2
    # In Chinese, a summary per copy, then the token.
    second = world.consent("ZJ/zj-amr", PURPOSE)
    shown = cli.ok(*args, "--consent", second.code, env={"ECERT_LANG": "zh_CN"}).stdout
    assert world.licence.id in shown and "ZJ-C-1" in shown and "加注件" in shown
    # A refusal: exit 4, the problem's code in one line; --json: the problem document.
    message = cli.fails(*args, exit_code=4)
    assert "consent_required" in message
    refused = cli(*args, "--json")
    assert refused.exit_code == 4
    assert json.loads(refused.stdout)["code"] == "consent_required"


def test_share_fetch_says_when_the_service_cannot_be_reached(world: SharingWorld,
                                                            tmp_path: Path) -> None:
    for static in serve(tmp_path / "gone"):
        port = static.port
    message = zj_cli(world).fails(
        "share", "fetch", f"http://127.0.0.1:{port}", "--agency", "zj-amr", "--holder-id",
        world.holder_id, "--type", BL, "--purpose", PURPOSE, "--case", "ZJ-N-1")
    assert f"127.0.0.1:{port}" in message


# -- a long-running service --------------------------------------------------------------------


def test_a_requester_key_published_later_is_used_without_a_restart(
        world: SharingWorld) -> None:
    assert world.keys is not None
    entry = sample_request("consent for another requester")
    world.ticks.now += 61  # whatever came before: the next request reloads the lists
    world.fetch(entry["requester"], context_of(entry))
    assert world.keys.settle()  # in the background
    sequence = world.keys.sequence
    world["ZJ"].rotate_requester_key("zj-psb-traffic")
    world.publish("ZJ")
    # At once: the service still has the old list, and does not reload on every miss.
    answer = world.fetch(entry["requester"], context_of(entry))
    assert answer.problem is not None and answer.problem.code == "not_authenticated"
    world.ticks.now += 6  # a miss after 5 s reloads: the new key is found
    answer = world.fetch(entry["requester"], context_of(entry))
    assert answer.problem is not None and answer.problem.code == "not_entitled"
    assert world.keys.sequence == sequence  # GD's own list had not changed
    world["GD"].share_allow("ZJ/zj-psb-traffic", [BL], [PURPOSE])
    world.publish("GD")
    world.ticks.now += 61  # older than a minute: reloaded, in the background
    world.fetch(entry["requester"], context_of(entry))
    assert world.keys.settle()
    assert world.keys.sequence > sequence


# -- a slow or hostile region -------------------------------------------------------------------


def test_a_stalled_region_delays_only_the_requests_that_need_it(world: SharingWorld) -> None:
    """While another region's host stalls, only requests that need its trust list wait:
    the service's own agencies and every other region are answered meanwhile."""
    statute = sample_request("by statute, no consent")
    with another_service(world, wait=60.0) as (service, _), \
            world.static.hold("/zj/") as zj, ThreadPoolExecutor(1) as pool:
        url = service.url("/v1/copies")
        # A ZJ agency's request needs ZJ's list, which this service does not hold yet: it
        # waits for the download, which stalls.
        waiting = pool.submit(world.fetch, "ZJ/zj-amr",
                              context_of(GRANTED, case="ZJ-STALL-1"), url=url)
        assert zj.arrived.wait(30)
        answered = world.fetch(statute["requester"], context_of(statute), url=url)
        assert answered.status == 200, answered
        other = world.fetch("SH/sh-amr", context_of(sample_request("unrecognized region")),
                            url=url)
        assert other.problem is not None and other.problem.code == "region_not_recognized"
        assert not waiting.done()  # still waiting for ZJ's host: nothing else did
        zj.release()
        stalled = waiting.result(timeout=60)
    # Once the list came, verified, the request was authenticated and decided.
    assert stalled.problem is not None and stalled.problem.code == "consent_required"
    assert zj.count == 1  # one download, however many requests wait for it


def _forged(world: SharingWorld, signer: Signer) -> bytes:
    """ZJ's trust list, newer, with ``signer``'s key as a requester key of zj-amr, signed
    by a stranger instead of ZJ's root."""
    listed = load_trust_list((world.static.root / "zj" / TRUST_LIST_PATH).read_text(),
                             world.anchors["ZJ"], now=int(world.clock().timestamp()),
                             grace=0)
    key = TrustedKey(signer.public_jwk, int(world.clock().timestamp()) - 3600)
    agencies = tuple(replace(a, requester_keys=(*a.requester_keys, key))
                     if a.code == "zj-amr" else a for a in listed.agencies)
    stranger = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
    return replace(listed, agencies=agencies, sequence=listed.sequence + 1
                   ).sign(stranger).encode()


def test_a_hostile_region_cannot_make_the_service_use_an_unverified_key(
        world: SharingWorld, caplog: pytest.LogCaptureFixture) -> None:
    """A region's host that stalls and then serves a list not signed by the root our
    agreement pins: the list verified before stays in use (its keys are answered while
    the refresh stalls), and the key the forged list adds is never believed."""
    attacker = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
    served = world.static.root / "zj" / TRUST_LIST_PATH
    genuine = served.read_bytes()
    with another_service(world, wait=60.0) as (service, keys):
        url = service.url("/v1/copies")

        def fetch(signer: Signer | None, case: str) -> Any:
            return world.fetch("ZJ/zj-amr", context_of(GRANTED, case=case), url=url,
                               signer=signer)

        assert fetch(None, "ZJ-H-1").problem.code == "consent_required"  # ZJ's list held
        try:
            with world.static.hold("/zj/") as zj, ThreadPoolExecutor(1) as pool:
                world.ticks.now += keys.max_age  # ZJ's list is old: refreshed
                # Answered from the list held, while its refresh stalls.
                assert fetch(None, "ZJ-H-2").problem.code == "consent_required"
                assert zj.arrived.wait(30)
                # A key not in it: the request waits for the refresh in flight ...
                waiting = pool.submit(fetch, attacker, "ZJ-H-3")
                served.write_bytes(_forged(world, attacker))
                zj.release()  # ... which brings a list signed by a stranger
                assert waiting.result(timeout=60).problem.code == "not_authenticated"
            assert keys.settle()
            world.ticks.now += keys.retry_after_miss  # read again for a miss: forged again
            assert fetch(attacker, "ZJ-H-4").problem.code == "not_authenticated"
            assert keys.settle()
        finally:
            served.write_bytes(genuine)
        assert fetch(None, "ZJ-H-5").problem.code == "consent_required"  # still held
    assert any("trust list of ZJ" in r.getMessage() and "not signed by its pinned root"
               in r.getMessage() for r in caplog.records)
    assert not any(u.case == "ZJ-H-3" or u.case == "ZJ-H-4"
                   for u in world["GD"].uses(world.holder_id).items)  # never reached


def test_a_flood_of_unsigned_requests_is_recorded_within_bounds(world: SharingWorld) -> None:
    assert world.service is not None and world.backend is not None
    limiter = world.backend.limiter
    world.ticks.now += 120  # a fresh window
    before = use_count(world)
    raw = request_bytes("POST", "/v1/copies", world.service.port,
                        [("Content-Type", "application/json")], b"{}")
    for _ in range(limiter.burst + 7):
        assert status_of(raw_exchange(world.service.port, raw)) == 401
    assert use_count(world) == before + limiter.burst
    world.ticks.now += limiter.window  # the window ended: the next refusal writes its summary
    assert status_of(raw_exchange(world.service.port, raw)) == 401
    assert use_count(world) == before + limiter.burst + 2
    with world["GD"].engine.connect() as conn:
        summary = conn.execute(text("SELECT * FROM uses WHERE service_item = 'summary' "
                                    "ORDER BY id DESC LIMIT 1")).one()
    assert (summary.problem, summary.requester) == ("not_authenticated", "-")
    assert summary.case_no.startswith("7 more not_authenticated from ")
    assert world["GD"].audit().intact


# -- ecert serve (a real process) --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """``ecert serve`` as GD's service operator, in a process of its own."""

    def __init__(self, world: SharingWorld, *args: str, operator_passphrase: str =
                 SERVICE_PASSPHRASE) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ECERT_HOME": str(world["GD"].home), "ECERT_LANG": "en",
               "ECERT_OPERATOR": SERVICE_OPERATOR, "ECERT_PASSPHRASE": PASSPHRASE,
               "ECERT_OPERATOR_PASSPHRASE": operator_passphrase}
        if world.database_urls["GD"]:
            env["ECERT_DATABASE_URL"] = world.database_urls["GD"] or ""
        ecert_program = Path(sys.executable).with_name("ecert")
        self.process = subprocess.Popen(
            [str(ecert_program), "serve", "--port", str(self.port), *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_ready(self) -> None:
        for _ in range(600):  # up to 30 s: workers start in fresh interpreters
            if self.process.poll() is not None:
                raise AssertionError(self.process.communicate())
            try:
                with urllib.request.urlopen(f"{self.base_url}/openapi.json", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("ecert serve did not start")

    def stop(self, signum: int) -> tuple[int, str, str]:
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err


def test_ecert_serve_with_two_workers_serves_and_stops_on_sigterm(world: SharingWorld) -> None:
    served = Served(world, "--workers", "2")
    try:
        served.wait_ready()
        for case in ("ZJ-S-1", "ZJ-S-2", "ZJ-S-3"):  # whichever worker answers
            consent = world.consent("ZJ/zj-amr", PURPOSE)
            request = ShareRequest(world.holder_id, (BL,),
                                   context_of(GRANTED, consent.code, case=case))
            answer = send(f"{served.base_url}/v1/copies", request, world.signer("ZJ/zj-amr"),
                          "ZJ/zj-amr", timeout=30)  # the process's clock: the system's
            assert answer.status == 200, answer
            assert last_use(world).case_no == case
    finally:
        code, out, err = served.stop(signal.SIGTERM)
    assert code == 0, (out, err)
    assert "serving the sharing service on " + served.base_url in out
    assert out.strip().splitlines()[-1] == "stopped (SIGTERM)", out


def test_ecert_serve_ends_on_ctrl_c_with_exit_130(world: SharingWorld) -> None:
    served = Served(world)
    try:
        served.wait_ready()
    finally:
        code, out, err = served.stop(signal.SIGINT)
    assert code == 130, (out, err)
    assert err.strip() == "ecert: error: interrupted", err


def test_ecert_serve_refuses_a_wrong_passphrase_at_once(world: SharingWorld) -> None:
    served = Served(world, "--workers", "2", operator_passphrase="wrong")
    out, err = served.process.communicate(timeout=60)
    assert served.process.returncode == 4, (out, err)
    assert len(err.strip().splitlines()) == 1 and "could not be authenticated" in err


def test_ecert_serve_without_the_server_extra_says_so(tmp_path: Path) -> None:
    run = ecert_without_extras("serve", "--port", "8080", tmp_path=tmp_path,
                               now=datetime.now(UTC), blocked=("starlette", "uvicorn"))
    assert run.returncode == 2, run
    assert run.stderr.strip() == ("ecert: error: this command needs the 'server' extra of "
                                  "ecert: pip install 'ecert[server]'"), run.stderr


def test_the_requester_verifies_its_copy_for_its_audience_and_purpose(
        world: SharingWorld, tmp_path: Path) -> None:
    consent = world.consent("ZJ/zj-amr", PURPOSE)
    answer = world.fetch("ZJ/zj-amr", context_of(GRANTED, consent.code, case="ZJ-V-1"))
    (item,) = answer.value["copies"]  # type: ignore[index]
    verify = Cli(tmp_path / "verifier", None, env={"ECERT_LANG": "en"}, clock=world.clock)
    bundle = str(world.static.root / "zj")  # ZJ's own trust list, recognizing GD
    accepted = verify.json("verify", item["token"], "--bundle", bundle,
                           "--audience", "ZJ/zj-amr", "--purpose", PURPOSE)
    assert accepted["valid"] is True, accepted
    for args, code in ((["--audience", "ZJ/zj-psb-traffic", "--purpose", PURPOSE],
                        "wrong_audience"),
                       (["--audience", "ZJ/zj-amr", "--purpose", OTHER_PURPOSE],
                        "wrong_purpose")):
        refused = verify("verify", item["token"], "--bundle", bundle, *args, "--json")
        assert refused.exit_code == 1, refused.output
        assert code in json.loads(refused.stdout)["errors"], refused.stdout


def test_a_stopping_worker_writes_the_summaries_it_holds(world: SharingWorld) -> None:
    backend = RegistryBackend(world.service_registry,
                              limiter=RefusalLimiter(burst=1, monotonic=world.ticks))
    before = use_count(world)
    for n in range(3):
        backend.refused(None, Problem.of("replay"), f"{n:064x}", kind=UseKind.CHECK)
        backend.refused(None, Problem.of("replay"), f"{n:064x}", kind=UseKind.FETCH)
    assert use_count(world) == before + 2  # the first of each kind
    backend.close()  # what the worker's lifespan shutdown does
    assert use_count(world) == before + 4
    with world["GD"].engine.connect() as conn:
        summaries = conn.execute(text("SELECT * FROM uses ORDER BY id DESC LIMIT 2")).all()
    # One summary per kind: refused checks are summed up as checks.
    assert sorted(s.kind for s in summaries) == ["check", "fetch"]
    for summary in summaries:
        assert (summary.service_item, summary.problem) == ("summary", "replay")
        assert summary.case_no.startswith("2 more replay from ")
        expected = hashlib.sha256(b"".join(f"{n:064x}\n".encode() for n in (1, 2))
                                  ).hexdigest()
        assert summary.request_hash == expected


def test_a_reload_that_fails_or_goes_back_keeps_the_current_lists() -> None:
    class Listed:
        def __init__(self, sequence: int) -> None:
            self.trust_list = SimpleNamespace(sequence=sequence)

    made: Iterator[int | Exception] = iter([5, 4, TrustListError("unreachable"), 6])

    def make() -> Any:
        value = next(made)
        if isinstance(value, Exception):
            raise value
        return Listed(value)

    keys = RefreshingRequesterKeys(make, monotonic=Ticks())
    assert keys.sequence == 5
    assert not keys.refresh() and keys.sequence == 5  # an older list: a rollback
    assert not keys.refresh() and keys.sequence == 5  # a failure: the current one stays
    assert keys.refresh() and keys.sequence == 6


# -- checks (核验) -------------------------------------------------------------------------------


def test_a_zj_agency_checks_values_over_http(world: SharingWorld) -> None:
    assert world.service is not None
    url = world.service.url("/v1/checks")
    name = world.licence.holder_name

    def check(values: dict[str, str], consent: str | None, case: str) -> Any:
        request = CheckRequest(BL, values, context_of(GRANTED, consent, case=case))
        return send(url, request, world.signer("ZJ/zj-amr"), "ZJ/zj-amr", clock=world.clock,
                    timeout=30)

    values = {"holder_id": world.holder_id, "name": name}
    matched = check(values, world.consent("ZJ/zj-amr", PURPOSE).code, "ZJ-CHK-1")
    assert (matched.status, matched.value) == (200, {"match": True}), matched
    other = check({**values, "name": name + "X"}, world.consent("ZJ/zj-amr", PURPOSE).code,
                  "ZJ-CHK-2")
    assert (other.status, other.value) == (200, {"match": False}), other
    (use, *_) = world["GD"].uses(world.holder_id).items
    assert (use.kind, use.case, use.outcome, use.certificates) == (
        "check", "ZJ-CHK-2", "granted", ())
    (entry,) = world["GD"].events(f"use:{use.id}")
    assert entry.action == "share.check"
    refused = check(values, None, "ZJ-CHK-3")
    assert refused.problem is not None and refused.problem.code == "consent_required"
    hidden = check({**values, "registered_capital": "x"},
                   world.consent("ZJ/zj-amr", PURPOSE).code, "ZJ-CHK-4")
    assert hidden.problem is not None and hidden.problem.code == "not_entitled"
    assert last_use(world).kind == "check"


# -- copies bound to their use records in the log ----------------------------------------------


def test_a_served_copy_is_proven_by_its_use_entry_and_a_minted_one_is_not(
        world: SharingWorld) -> None:
    """Issue 10's insider review, item 3: a copy is provable from the log. The use entry
    commits to each copy's hash and the service names that entry (``Ecert-Log-Index``);
    a copy signed with the sharing key but never served has no entry to point to."""
    from ecert import KeyRole
    from ecert._formats.log import token_hash
    from ecert.inclusion import check_inclusion

    consent = world.consent("ZJ/zj-amr", PURPOSE)
    answer = world.fetch("ZJ/zj-amr", context_of(GRANTED, consent.code, case="ZJ-LOG-1"))
    (item,) = answer.value["copies"]  # type: ignore[index]
    token = item["token"]
    index = answer.log_index
    assert index is not None
    (entry,) = world["GD"].events(f"use:{last_use(world).id}")
    assert entry.seq == index and entry.details["copies"] == [token_hash(token)]
    assert entry.details["version"] == 2
    world.publish("GD")
    verifier = ecert_verifier(world, "ZJ")
    included = check_inclusion(verifier, token, leaf_index=index, audience="ZJ/zj-amr")
    assert included.included, included.messages
    # Or with the proof of 'ecert audit prove use:N --json', as for a certificate.
    proof = world["GD"].history(f"use:{last_use(world).id}").to_json()
    assert check_inclusion(verifier, token, proof=proof, audience="ZJ/zj-amr").included
    # The insider's copy: the same claims, its own id, signed with GD's sharing key.
    gd = world["GD"]
    (key,) = [k for k in gd.keys(agency_code=None)
              if k.role is KeyRole.SHARING and k.retired_at is None]
    claims = CopyClaims.from_payload(parse_compact(token, max_bytes=1 << 20).payload)
    minted = claims._replace(jti="minted-by-an-insider").sign(gd.keystore.signer(key.kid))
    assert ecert_verifier(world, "ZJ").verify(minted, audience="ZJ/zj-amr").valid
    assert check_inclusion(verifier, minted, leaf_index=index,
                           audience="ZJ/zj-amr").errors == ("not_logged",)
    assert check_inclusion(verifier, minted, audience="ZJ/zj-amr").errors == ("no_proof",)
    assert check_inclusion(verifier, token).errors == ("not_verified",)  # whose copy?
    # From the command line, with the index the service answered.
    anchor = world.tmp / "zj-anchor.json"
    anchor.write_bytes(world.anchors["ZJ"].to_bytes())
    run = Cli(world.tmp / "copy-verifier", None, env={"ECERT_LANG": "en"}, clock=world.clock)
    args = ["verify", "--anchor", str(anchor), "--audience", "ZJ/zj-amr",
            "--require-inclusion", "--leaf-index", str(index), "--json"]
    proven = run(args[0], token, *args[1:])
    assert proven.exit_code == 0, proven.output
    assert json.loads(proven.stdout)["inclusion"]["included"] is True
    refused = run(args[0], minted, *args[1:])
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["inclusion"]["errors"] == ["not_logged"]


def ecert_verifier(world: SharingWorld, home: str) -> Any:
    import ecert

    return ecert.Verifier.from_anchor(world.anchors[home], clock=world.clock)
