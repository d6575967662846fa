"""The sharing service's HTTP shell on a real uvicorn on 127.0.0.1: signed requests
answered through a fake backend, and hostile clients refused without harm to others."""

from __future__ import annotations

import dataclasses
import http.client
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecert._clock import now_seconds
from ecert._formats.jose import public_jwk
from ecert._formats.sharing import Problem, UseKind
from ecert._formats.trustlist import Agreement, TrustedAgency, TrustedKey, TrustList
from ecert.errors import TrustListError
from ecert.keys import LocalSigner
from ecert.sharing import (
    AuthenticatedRequest,
    CaseContext,
    CheckRequest,
    CheckResult,
    FetchResult,
    MemoryNonceStore,
    ResolvedKey,
    ShareRequest,
    TrustListRequesterKeys,
    requester_keyid,
)
from ecert.sharing._openapi import openapi_document
from ecert.sharing._refresh import Refreshed
from ecert.sharing.app import ASGIApp, Limits, Receive, Scope, Send, create_app
from ecert.sharing.client import send, signed_headers
from ecert.verify import VerificationLimits
from tests.support.clock import FakeClock
from tests.support.sharing_service import (
    ServiceHost,
    body_of,
    raw_exchange,
    read_response,
    request_bytes,
    status_of,
)
from tests.support.sharing_world import Ticks

ROOT = Path(__file__).resolve().parent.parent
CLOCK = FakeClock()
NOW = now_seconds(CLOCK)
ZJ_KEY = LocalSigner(ed25519.Ed25519PrivateKey.generate())
ZJ_ES256 = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
OTHER_KEY = LocalSigner(ed25519.Ed25519PrivateKey.generate())
CONTEXT = CaseContext(purpose="跨省迁移登记", case="ZJ2026120100001",
                      service_item="330000-SX-0001", staff_id="zj-0042", staff_role="受理员")
FETCH = ShareRequest("91440300MA5F3K2L8G", ("cn.business-licence",), CONTEXT)
CHECK = CheckRequest("cn.business-licence", {"holder_id": "91440300MA5F3K2L8G"}, CONTEXT)
LIMITS = Limits(max_body_bytes=4096, max_header_count=40, max_header_bytes=8192,
                deadline_seconds=1.0)


class FakeKeys:
    """Requester keys: ZJ/zj-amr's two keys; region XX is not recognized."""

    def resolve(self, keyid: str, signed_at: int) -> ResolvedKey | Problem:
        for signer in (ZJ_KEY, ZJ_ES256):
            if keyid == requester_keyid("ZJ/zj-amr", signer.kid):
                return ResolvedKey("ZJ/zj-amr", signer._key.public_key(),  # type: ignore[attr-defined]
                                   TrustedKey(signer.public_jwk, 0))
        if keyid.startswith("XX/"):
            return Problem.of("region_not_recognized")
        return Problem.of("not_authenticated", "unknown key")


class FakeBackend:
    """Grants ZJ/zj-amr's fetches and checks; refuses purpose 'not-allowed'."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, AuthenticatedRequest, object]] = []
        self.refusals: list[tuple[str | None, str, UseKind]] = []
        self.lock = threading.Lock()

    def fetch(self, request: AuthenticatedRequest, body: ShareRequest
              ) -> FetchResult | Problem:
        with self.lock:
            self.calls.append(("fetch", request, body))
        if body.context.purpose == "not-allowed":
            return Problem.of("purpose_not_permitted")
        return FetchResult(("copy.token.one",))

    def check(self, request: AuthenticatedRequest, body: CheckRequest) -> CheckResult | Problem:
        with self.lock:
            self.calls.append(("check", request, body))
        return CheckResult(match=True)

    def refused(self, requester: str | None, problem: Problem, request_hash: str, *,
                kind: UseKind) -> None:
        assert len(request_hash) == 64
        with self.lock:
            self.refusals.append((requester, problem.code, kind))


BACKEND = FakeBackend()


def _host(http: Literal["auto", "httptools", "h11"] = "auto") -> ServiceHost:
    return ServiceHost(lambda base: create_app(
        keys=FakeKeys(), nonces=MemoryNonceStore(CLOCK), backend=BACKEND, base_url=base,
        clock=CLOCK, limits=LIMITS), LIMITS, http)


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceHost]:
    host = _host()
    yield host
    host.stop()


@pytest.fixture(scope="module", params=["httptools", "h11"])
def transport(request: pytest.FixtureRequest) -> Iterator[ServiceHost]:
    """The service on each of uvicorn's HTTP/1.1 parsers (each with its deadline port):
    the transport's hostile cases must hold on both."""
    host = _host(request.param)
    yield host
    host.stop()


def _signed(service: ServiceHost, body: bytes, signer: LocalSigner = ZJ_KEY,
            requester: str = "ZJ/zj-amr", path: str = "/v1/copies",
            clock: FakeClock = CLOCK, nonce: str | None = None) -> bytes:
    headers = signed_headers(service.url(path), body, signer, requester, clock=clock,
                             nonce=nonce)
    return request_bytes("POST", path, service.port, headers, body)


def _problem(response: bytes) -> str:
    assert response.split(b"\r\n\r\n")[0].lower().count(b"application/problem+json") == 1
    document = json.loads(body_of(response))
    return str(Problem.from_json(body_of(response)).code) if document else ""


# -- granted ---------------------------------------------------------------------------------


def test_fetch_and_check_with_both_key_types(service: ServiceHost) -> None:
    answer = send(service.url("/v1/copies"), FETCH, ZJ_KEY, "ZJ/zj-amr", clock=CLOCK)
    assert (answer.status, answer.value) == (200, {"copies": [{"token": "copy.token.one"}]})
    kind, request, body = BACKEND.calls[-1]
    assert (kind, body, request.requester, request.received_at) == \
        ("fetch", FETCH, "ZJ/zj-amr", NOW)
    assert len(request.request_hash) == 64
    answer = send(service.url("/v1/checks"), CHECK, ZJ_ES256, "ZJ/zj-amr", clock=CLOCK)
    assert (answer.status, answer.value) == (200, {"match": True})
    assert BACKEND.calls[-1][0] == "check"


def test_backend_problems_are_passed_on(service: ServiceHost) -> None:
    refused = ShareRequest(FETCH.holder_id, FETCH.types,
                           CaseContext("not-allowed", "c", "s", "i", "r"))
    answer = send(service.url("/v1/copies"), refused, ZJ_KEY, "ZJ/zj-amr", clock=CLOCK)
    assert answer.status == 403 and answer.problem is not None
    assert answer.problem.code == "purpose_not_permitted"


# -- authentication --------------------------------------------------------------------------


def test_replay_is_refused(service: ServiceHost) -> None:
    raw = _signed(service, FETCH.to_json())
    assert status_of(raw_exchange(service.port, raw)) == 200
    again = raw_exchange(service.port, raw)
    assert (status_of(again), _problem(again)) == (401, "replay")
    assert BACKEND.refusals[-1] == ("ZJ/zj-amr", "replay", "fetch")


@pytest.mark.parametrize(("seconds", "fresh"), [(-301, False), (-299, True), (299, True),
                                                  (301, False)])
def test_freshness_window(service: ServiceHost, seconds: int, fresh: bool) -> None:
    clock = FakeClock(CLOCK.now)
    clock.advance(seconds=seconds)
    answer = raw_exchange(service.port, _signed(service, FETCH.to_json(), clock=clock))
    if fresh:
        assert status_of(answer) == 200
    else:
        assert (status_of(answer), _problem(answer)) == (401, "not_authenticated")
        assert b"not fresh" in body_of(answer)


def _tampered(service: ServiceHost, what: str) -> bytes:
    body = FETCH.to_json()
    raw = _signed(service, body)
    if what == "body":  # same length, other bytes: the digest no longer matches
        return raw.replace(b"91440300MA5F3K2L8G", b"91440300MA5F3K2L8H")
    if what == "digest":  # a digest of the new body, but not the signed one
        other = body.replace(b"91440300MA5F3K2L8G", b"91440300MA5F3K2L8H")
        fresh = dict(signed_headers(service.url("/v1/copies"), other, ZJ_KEY, "ZJ/zj-amr",
                                    clock=CLOCK))["Content-Digest"]
        start = raw.index(b"Content-Digest: ") + len(b"Content-Digest: ")
        end = raw.index(b"\r\n", start)
        return (raw[:start] + fresh.encode() + raw[end:]).replace(
            b"91440300MA5F3K2L8G", b"91440300MA5F3K2L8H")
    if what == "path":
        return raw.replace(b"POST /v1/copies", b"POST /v1/checks")
    if what == "unsigned":
        return request_bytes("POST", "/v1/copies", service.port,
                             [("Content-Type", "application/json")], body)
    if what == "garbage":
        return raw.replace(b"Signature-Input: ecert=(", b"Signature-Input: ecert=((")
    raise AssertionError(what)


@pytest.mark.parametrize("what", ["body", "digest", "path", "unsigned", "garbage"])
def test_tampered_requests_are_not_authenticated(service: ServiceHost, what: str) -> None:
    answer = raw_exchange(service.port, _tampered(service, what))
    assert (status_of(answer), _problem(answer)) == (401, "not_authenticated")


def test_wrong_key_and_unknown_region(service: ServiceHost) -> None:
    # OTHER_KEY signs, claiming to be ZJ's key: the kid names no published key.
    answer = raw_exchange(service.port, _signed(service, FETCH.to_json(), signer=OTHER_KEY))
    assert (status_of(answer), _problem(answer)) == (401, "not_authenticated")
    answer = raw_exchange(service.port, _signed(service, FETCH.to_json(), signer=OTHER_KEY,
                                                requester="XX/xx-amr"))
    assert (status_of(answer), _problem(answer)) == (403, "region_not_recognized")


def _answered_meanwhile(service: ServiceHost, hostile: list[Callable[[], None]]) -> bool:
    """Run the hostile clients in threads; whether a genuine request is answered while
    they run."""
    threads = [threading.Thread(target=target) for target in hostile]
    for thread in threads:
        thread.start()
    good = send(service.url("/v1/copies"), FETCH, ZJ_KEY, "ZJ/zj-amr", clock=CLOCK)
    for thread in threads:
        thread.join()
    return good.status == 200


def test_a_flood_of_bad_signatures_leaves_the_service_answering(service: ServiceHost) -> None:
    bad = _tampered(service, "body")
    results: list[int] = []

    def flood() -> None:
        for _ in range(25):
            results.append(status_of(raw_exchange(service.port, bad)))

    assert _answered_meanwhile(service, [flood] * 4)
    assert results == [401] * 100


# -- transport -------------------------------------------------------------------------------


def test_malformed_json_and_media_type(transport: ServiceHost) -> None:
    answer = raw_exchange(transport.port, _signed(transport, b'{"holder_id": '))
    assert (status_of(answer), _problem(answer)) == (400, "malformed_request")
    body = FETCH.to_json()
    headers = [(k, "text/plain" if k == "Content-Type" else v) for k, v in signed_headers(
        transport.url("/v1/copies"), body, ZJ_KEY, "ZJ/zj-amr", clock=CLOCK)]
    answer = raw_exchange(transport.port,
                          request_bytes("POST", "/v1/copies", transport.port, headers, body))
    assert (status_of(answer), _problem(answer)) == (415, "unsupported_media_type")


def test_oversized_bodies(transport: ServiceHost) -> None:
    big = b"{" + b" " * LIMITS.max_body_bytes + b"}"
    answer = raw_exchange(transport.port, _signed(transport, big))
    assert (status_of(answer), _problem(answer)) == (413, "payload_too_large")
    # Chunked, so no Content-Length announces it: refused as it arrives.
    chunk = b" " * 1000
    head = (f"POST /v1/copies HTTP/1.1\r\nHost: 127.0.0.1:{transport.port}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10))
    answer = raw_exchange(transport.port, head + chunks + b"0\r\n\r\n")
    assert (status_of(answer), _problem(answer)) == (413, "payload_too_large")


def test_oversized_headers(transport: ServiceHost) -> None:
    many = [(f"X-Filler-{i}", "x") for i in range(LIMITS.max_header_count)]
    answer = raw_exchange(transport.port,
                          request_bytes("POST", "/v1/copies", transport.port, many, b"{}"))
    assert (status_of(answer), _problem(answer)) == (431, "headers_too_large")
    long = [("X-Filler", "x" * (LIMITS.max_header_bytes + 10))]
    answer = raw_exchange(transport.port,
                          request_bytes("POST", "/v1/copies", transport.port, long, b"{}"))
    assert (status_of(answer), _problem(answer)) == (431, "headers_too_large")
    # Beyond what the server parses at all: refused before the application sees it.
    huge = [("X-Filler", "x" * (LIMITS.max_header_bytes * 4))]
    answer = raw_exchange(transport.port,
                          request_bytes("POST", "/v1/copies", transport.port, huge, b"{}"))
    assert status_of(answer) in ((400, 431) if transport.http == "h11" else (431,))


def test_endless_headers_are_cut_off_by_the_server(transport: ServiceHost) -> None:
    """Headers that never end, sent quickly: the server stops buffering them at its bound
    (llhttp has none of its own) and hangs up, long before the deadline — and answers
    others meanwhile."""
    start = f"POST /v1/copies HTTP/1.1\r\nHost: 127.0.0.1:{transport.port}\r\n".encode()
    filler = b"X-Filler: " + b"x" * 4000 + b"\r\n"
    outcome: dict[str, tuple[bytes, float]] = {}

    def endless() -> None:
        began = time.monotonic()
        answer = raw_exchange(transport.port, start, *([filler, 0.001] * 200))
        outcome["answer"] = (answer, time.monotonic() - began)

    assert _answered_meanwhile(transport, [endless])
    answer, took = outcome["answer"]
    if transport.http == "h11":  # h11's own bound: uvicorn answers 400 or 431
        assert status_of(answer) in (400, 431)
    else:
        assert (status_of(answer), _problem(answer)) == (431, "headers_too_large")
    assert took < LIMITS.deadline_seconds  # cut off by size, not by the deadline


def test_slow_clients_are_cut_off_and_others_are_answered(transport: ServiceHost) -> None:
    raw = _signed(transport, FETCH.to_json())
    head, _, body = raw.partition(b"\r\n\r\n")
    outcomes: dict[str, bytes] = {}

    def slow_body() -> None:  # headers at once, then the body never finishes
        outcomes["body"] = raw_exchange(transport.port, head + b"\r\n\r\n" + body[:10])

    def slow_headers() -> None:  # a header line a while, never the end of the headers
        outcomes["headers"] = raw_exchange(transport.port, head[:30], 0.4, head[30:60], 0.4,
                                           head[60:90])

    assert _answered_meanwhile(transport, [slow_body, slow_headers])
    assert (status_of(outcomes["body"]), _problem(outcomes["body"])) == \
        (408, "request_timeout")
    assert status_of(outcomes["headers"]) == 408


def test_keep_alive_deadline_counts_from_each_request_s_first_byte(
        transport: ServiceHost) -> None:
    """Idle time between two requests on one connection is not the second one's."""
    first = _signed(transport, FETCH.to_json())
    second = _signed(transport, FETCH.to_json())
    with socket.create_connection(("127.0.0.1", transport.port), timeout=10) as sock:
        sock.sendall(first)
        assert status_of(read_response(sock)) == 200
        time.sleep(0.9)  # idle: below uvicorn's keep-alive, 0.9 of the 1 s deadline
        sock.sendall(second[:40])
        time.sleep(0.2)  # 1.1 s after the first response, 0.2 s into this request
        sock.sendall(second[40:])
        assert status_of(read_response(sock)) == 200


def test_not_found_method_and_openapi(service: ServiceHost) -> None:
    answer = raw_exchange(service.port, request_bytes("GET", "/nothing", service.port, [], b""))
    assert (status_of(answer), _problem(answer)) == (404, "not_found")
    answer = raw_exchange(service.port,
                          request_bytes("GET", "/v1/copies", service.port, [], b""))
    assert (status_of(answer), _problem(answer)) == (405, "method_not_allowed")
    answer = raw_exchange(service.port,
                          request_bytes("GET", "/openapi.json", service.port, [], b""))
    assert status_of(answer) == 200
    assert json.loads(body_of(answer)) == openapi_document()
    answer = raw_exchange(service.port,
                          request_bytes("GET", "/problems/replay", service.port, [], b""))
    assert json.loads(body_of(answer))["status"] == 401


def test_the_openapi_document_in_docs_is_current() -> None:
    checked_in = json.loads((ROOT / "docs" / "sharing-openapi.json").read_text("utf-8"))
    # Regenerate with: python -m ecert.sharing._openapi > docs/sharing-openapi.json
    assert checked_in == openapi_document()


# -- properties: whatever is sent, signed or not, the answer is never a 5xx ------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=12)
_FIELDS = st.fixed_dictionaries({}, optional={
    "holder_id": _JSON, "types": st.lists(st.text(max_size=12), max_size=3) | _JSON,
    "type": st.text(max_size=20) | _JSON, "values": st.dictionaries(
        st.sampled_from(["holder_id", "certificate_id", "name", "X"]), st.text(max_size=10)),
    "purpose": st.text(max_size=30) | _JSON, "case": st.text(max_size=10),
    "service_item": st.text(max_size=10), "staff_id": st.text(max_size=10),
    "staff_role": st.text(max_size=10), "consent": st.text(max_size=10) | _JSON,
    "other": _JSON})


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_FIELDS | _JSON, path=st.sampled_from(["/v1/copies", "/v1/checks"]),
       signed=st.booleans())
def test_no_body_gets_a_5xx(service: ServiceHost, body: object, path: str,
                            signed: bool) -> None:
    data = json.dumps(body).encode()
    raw = _signed(service, data, path=path) if signed else request_bytes(
        "POST", path, service.port, [("Content-Type", "application/json")], data)
    answer = raw_exchange(service.port, raw)
    status = status_of(answer)
    assert status in (200, 400, 401, 403, 413), answer[:300]
    if status != 200:
        assert _problem(answer)
    documented = openapi_document()["paths"][path]["post"]["responses"]
    assert str(status) in documented


# -- requester keys from trust lists ---------------------------------------------------------


def _key(signer: LocalSigner, valid_from: int = 0, valid_until: int | None = None,
         compromised_since: int | None = None) -> TrustedKey:
    return TrustedKey(public_jwk(signer._key), valid_from, valid_until,  # type: ignore[attr-defined]
                      "compromised" if compromised_since else "active", compromised_since)


def _agreement(region: str, valid_from: int = 0) -> Agreement:
    return Agreement(region, region, {"kid": f"root-{region}"},
                     f"https://{region.lower()}.example/trustlist.jwt", valid_from, None, {})


def _trust_list(region: str, keys: tuple[TrustedKey, ...],
                agreements: tuple[Agreement, ...] = ()) -> TrustList:
    agency = TrustedAgency(f"{region.lower()}-amr", "AMR", "91440300MA5F3K2L8G",
                           f"https://{region.lower()}.example/amr", (), (), (), keys)
    return TrustList(region, region, f"https://{region.lower()}.example", 1, 0, 2**31,
                     (agency,), (), (), agreements)


class _Verifier:
    """What the requester keys read of a Verifier: its home list, its clock, and the
    lists of the regions it recognizes (fetched and checked by the real one)."""

    def __init__(self, home: TrustList, foreign: dict[str, TrustList | str]) -> None:
        self.trust_list = home
        self.foreign = foreign
        self.limits = VerificationLimits()
        self.at = 0
        self.fetched: list[tuple[str, int | None]] = []

    def now(self) -> int:
        return self.at

    def fetch_foreign_trust_list(self, region: str, *, min_sequence: int | None = None
                                 ) -> tuple[TrustList, Agreement]:
        self.fetched.append((region, min_sequence))
        found = self.foreign[region]
        if isinstance(found, str):
            raise TrustListError("no", code=found)
        agreement = self.trust_list.agreement_with(region)
        assert agreement is not None
        return found, agreement


def test_trust_list_requester_keys() -> None:
    gd_key, zj_key, old, bad = (LocalSigner(ed25519.Ed25519PrivateKey.generate())
                                for _ in range(4))
    home = _trust_list("GD", (_key(gd_key),), (_agreement("ZJ"), _agreement("HK"),
                                                _agreement("SH", valid_from=10**9)))
    verifier = _Verifier(
        home, {"ZJ": _trust_list("ZJ", (_key(zj_key, valid_from=1000),
                                        _key(old, valid_until=500),
                                        _key(bad, compromised_since=800))),
               "HK": "trust_list_unavailable", "SH": "agreement_not_in_force"})
    ticks = Ticks()
    keys = TrustListRequesterKeys(verifier, leeway=10, monotonic=ticks)  # type: ignore[arg-type]

    def outcome(requester: str, signer: LocalSigner, at: int) -> str:
        found = keys.resolve(requester_keyid(requester, signer.kid), at)
        return found.code if isinstance(found, Problem) else found.requester

    assert outcome("GD/gd-amr", gd_key, 100) == "GD/gd-amr"
    assert outcome("ZJ/zj-amr", zj_key, 1000) == "ZJ/zj-amr"
    assert outcome("ZJ/zj-amr", zj_key, 995) == "ZJ/zj-amr"  # leeway
    assert outcome("ZJ/zj-amr", zj_key, 989) == "not_authenticated"  # not yet valid
    assert outcome("ZJ/zj-amr", old, 400) == "ZJ/zj-amr"
    assert outcome("ZJ/zj-amr", old, 501) == "not_authenticated"  # retired
    # A request claiming to be signed before the key's end, arriving after it: refused
    # (created is the client's word; freshness would let it lie 300 s back).
    verifier.at = 510
    assert outcome("ZJ/zj-amr", old, 400) == "not_authenticated"
    verifier.at = 800  # likewise a key compromised since 800, claiming 700
    assert outcome("ZJ/zj-amr", bad, 700) == "not_authenticated"
    verifier.at = 0
    assert outcome("ZJ/zj-amr", bad, 700) == "ZJ/zj-amr"
    assert outcome("ZJ/zj-amr", bad, 795) == "not_authenticated"  # compromised
    assert outcome("ZJ/zj-other", zj_key, 1000) == "not_authenticated"
    assert outcome("GD/gd-amr", zj_key, 1000) == "not_authenticated"  # another's key
    assert outcome("XX/xx-amr", zj_key, 1000) == "region_not_recognized"
    assert outcome("SH/sh-amr", zj_key, 1000) == "region_not_recognized"
    assert outcome("HK/hk-amr", zj_key, 1000) == "not_authenticated"
    assert isinstance(keys.resolve("not a keyid", 0), Problem)
    # One download per region; a key not found reads the list again (5 s on), never
    # accepting one older than the list held (a rollback).
    assert verifier.fetched == [("ZJ", None), ("HK", None)]
    ticks.now += keys.retry_after_miss
    assert outcome("ZJ/zj-amr", gd_key, 1000) == "not_authenticated"
    assert verifier.fetched[2:] == [("ZJ", 1)]
    # A home list past its next update and the grace: none of its keys (nor its
    # agreements) is believed (one may have been retired or marked compromised since),
    # while the verifier cannot fetch a newer one.
    verifier.at = home.next_update + verifier.limits.trust_list_grace_seconds
    assert outcome("GD/gd-amr", gd_key, 100) == "GD/gd-amr"
    verifier.at += 1
    assert outcome("GD/gd-amr", gd_key, 100) == "not_authenticated"
    assert outcome("ZJ/zj-amr", zj_key, 1000) == "not_authenticated"


# -- one download at a time, in the background -------------------------------------------------


class Loads:
    """A load function whose every call waits for the test to let it end."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.results: queue.Queue[int | Exception] = queue.Queue()
        self.calls: list[int | None] = []

    def __call__(self, current: int | None) -> int:
        self.calls.append(current)
        self.started.release()
        result = self.results.get(timeout=30)
        if isinstance(result, Exception):
            raise result
        return result


def test_a_source_loads_once_at_a_time_and_keeps_what_verified() -> None:
    loads, ticks = Loads(), Ticks()
    source = Refreshed(loads, name="test list", value=1, max_waiting=1, monotonic=ticks)
    assert not source.due(60) and source.value == 1
    ticks.now += 60
    source.refresh_if_due(60)  # in the background: returns at once
    assert loads.started.acquire(timeout=30)
    assert source.value == 1 and not source.due(0)  # still held while loading
    source.refresh_if_due(0)  # one load at a time: no second one
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(source.wait, 30, start_after=60)  # joins the load in flight
        loads.results.put(2)
        assert waiting.result(timeout=30) == 2
    assert loads.calls == [1] and source.value == 2
    # A failed load keeps what is held, and the next one waits ``start_after``.
    source.refresh_if_due(0)
    assert loads.started.acquire(timeout=30)
    loads.results.put(TrustListError("unreachable"))
    assert source.join(30)
    assert source.value == 2
    assert source.wait(30, start_after=5) == 2 and len(loads.calls) == 2  # not yet
    ticks.now += 5
    loads.results.put(3)
    assert source.wait(30, start_after=5) == 3 and loads.calls == [1, 2, 2]


def test_no_more_than_max_waiting_requests_wait_for_a_source() -> None:
    loads = Loads()
    source = Refreshed(loads, name="test list", value=1, max_waiting=0, monotonic=Ticks())
    source.refresh_if_due(0)
    assert loads.started.acquire(timeout=30)
    assert source.wait(30, start_after=0) == 1  # answered at once from what is held
    loads.results.put(2)
    assert source.join(30) and source.value == 2


def test_the_requesting_side_needs_no_web_framework() -> None:
    """``ecert.sharing`` and its client import without Starlette or uvicorn (the
    ``server`` extra); only the application does."""
    import subprocess
    import sys

    code = ("import sys, ecert.sharing, ecert.sharing.client; "
            "assert not {'starlette', 'uvicorn', 'anyio'} & set(sys.modules), sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_connection_is_closed_after_its_last_request_so_workers_share_the_load() -> None:
    """After ``max_requests_per_connection`` requests the answer says ``Connection:
    close`` and the server hangs up: the client's next connection may land on another
    worker (each listens on its own socket)."""
    limits = dataclasses.replace(LIMITS, max_requests_per_connection=3)
    host = ServiceHost(lambda base: create_app(
        keys=FakeKeys(), nonces=MemoryNonceStore(CLOCK), backend=BACKEND, base_url=base,
        clock=CLOCK, limits=limits), limits)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=10)
        said = []
        for _ in range(3):
            connection.request("GET", "/openapi.json")
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            said.append(response.getheader("Connection"))
        assert said == [None, None, "close"]
        assert response.will_close
        connection.close()
        # A new connection is served again, from its first request.
        connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=10)
        connection.request("GET", "/openapi.json")
        answer = connection.getresponse()
        answer.read()
        assert (answer.status, answer.getheader("Connection")) == (200, None)
        connection.close()
    finally:
        host.stop()


class _SlowBackend(FakeBackend):
    """Grants, after a while, counting how many of its calls run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.running = self.most = 0

    def fetch(self, request: AuthenticatedRequest, body: ShareRequest
              ) -> FetchResult | Problem:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.15)
        with self.lock:
            self.running -= 1
        return super().fetch(request, body)


def test_a_worker_works_on_at_most_max_threads_requests_at_once() -> None:
    backend = _SlowBackend()
    limits = dataclasses.replace(LIMITS, max_threads=2, deadline_seconds=10.0)
    host = ServiceHost(lambda base: create_app(
        keys=FakeKeys(), nonces=MemoryNonceStore(CLOCK), backend=backend, base_url=base,
        clock=CLOCK, limits=limits), limits)
    try:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: send(host.url("/v1/copies"), FETCH, ZJ_KEY,
                                                   "ZJ/zj-amr", clock=CLOCK), range(6)))
    finally:
        host.stop()
    assert [a.status for a in answers] == [200] * 6  # the others waited their turn
    assert backend.most == 2


def _header_echo(base_url: str) -> ASGIApp:
    """An application answering with the names of the header fields its scope holds once
    the whole body was read (what a handler behind the protocol sees)."""
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        while (await receive()).get("more_body", False):
            pass
        names = json.dumps(sorted(k.decode("latin-1") for k, _v in scope["headers"]))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(names)).encode())]})
        await send({"type": "http.response.body", "body": names.encode()})
    return app


@pytest.fixture(scope="module", params=["httptools", "h11"])
def echo(request: pytest.FixtureRequest) -> Iterator[ServiceHost]:
    host = ServiceHost(_header_echo, LIMITS, request.param)
    yield host
    host.stop()


def _chunked(port: int, trailers: bytes) -> bytes:
    return (f"POST /v1/copies HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n").encode() + trailers


def test_a_chunked_body_s_trailers_never_become_header_fields(echo: ServiceHost) -> None:
    """Trailers arrive after the application has the request's headers (and after the
    guard checked them): none may be added to them — a "Signature" trailer least of all."""
    answer = raw_exchange(echo.port, _chunked(echo.port, b"Signature: forged\r\n"
                                                         b"X-Late: 1\r\n\r\n"))
    assert status_of(answer) == 200
    assert json.loads(body_of(answer)) == ["host", "transfer-encoding"]


def test_endless_trailers_are_cut_off_by_the_server(echo: ServiceHost) -> None:
    filler = b"X-Filler: " + b"x" * 4000 + b"\r\n"
    began = time.monotonic()
    answer = raw_exchange(echo.port, _chunked(echo.port, b""), *([filler, 0.001] * 300))
    assert status_of(answer) in (0, 400)  # hung up on (httptools), or h11's own 400
    assert time.monotonic() - began < LIMITS.deadline_seconds  # by size, not the deadline


def test_an_oversized_pipelined_request_never_cuts_into_the_answer_before_it() -> None:
    """Request 1 is being answered when request 2's headers grow past the bound: request
    1 gets its own answer (the backend granted and logged it), then the connection
    closes; no 431 stands in for it."""
    backend = _SlowBackend()
    limits = dataclasses.replace(LIMITS, deadline_seconds=5.0)
    for parser in ("httptools", "h11"):
        host = ServiceHost(lambda base: create_app(
            keys=FakeKeys(), nonces=MemoryNonceStore(CLOCK), backend=backend,
            base_url=base, clock=CLOCK, limits=limits), limits, parser)
        try:
            first = _signed(host, FETCH.to_json())
            with socket.create_connection(("127.0.0.1", host.port), timeout=10) as sock:
                sock.sendall(first + b"POST /v1/copies HTTP/1.1\r\nX-Big: ")
                try:
                    for _ in range(10):
                        sock.sendall(b"a" * 2000)
                except OSError:
                    pass  # the server stopped reading: fine
                answer = read_response(sock)
        finally:
            host.stop()
        assert status_of(answer) == 200, (parser, answer[:60])
