"""The holder's channel: the OIDC identity hook against a test IdP (its JWKS on loopback),
and the holder's endpoints over real HTTP on 127.0.0.1 against a real registry."""

from __future__ import annotations

import base64
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from email.message import Message
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ecert
from ecert._formats.sharing import Problem, UseKind
from ecert.sharing import AuthenticatedRequest, CheckRequest, MemoryNonceStore, ShareRequest
from ecert.sharing._openapi import openapi_document
from ecert.sharing.app import ASGIApp, Limits, create_app
from ecert.sharing.holder import (
    HolderChannel,
    OidcHolderIdentity,
    OidcSettings,
    bearer_token,
)
from tests.support import FakeClock, LocalServer
from tests.support.idp import AUDIENCE, HOLDER_CLAIM, ISSUER, TestIdp
from tests.support.sharing_registry import HOLDER, LICENCE, Sharing
from tests.support.sharing_service import ServiceHost

SETTINGS = OidcSettings(ISSUER, AUDIENCE, holder_claim=HOLDER_CLAIM)


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def refusal(found: str | Problem) -> str:
    assert isinstance(found, Problem), found
    assert found.code == "not_authenticated"
    return found.detail or ""


# -- the OIDC identity hook ----------------------------------------------------------------


def test_a_valid_id_token_names_the_holder(clock: FakeClock) -> None:
    idp = TestIdp(clock, algorithms=("ES256", "RS256", "EdDSA"))
    identity = OidcHolderIdentity(SETTINGS, jwks=idp.jwks(), clock=clock)
    for kid in idp.keys:
        assert identity.identify(bearer(idp.token(HOLDER, kid=kid))) == HOLDER
    assert identity.identify({"authorization": "bearer  " + idp.token(HOLDER)}) == HOLDER


@pytest.mark.parametrize(("change", "why"), [
    ({"aud": "another-client"}, "does not verify"),
    ({"iss": "https://evil.example"}, "does not verify"),
    ({"exp": None}, "does not verify"),  # required
    ({HOLDER_CLAIM: None}, "no 'national_id' claim"),
    ({HOLDER_CLAIM: 42}, "no 'national_id' claim"),
    ({"iat": "yesterday"}, "whole seconds"),
])
def test_tokens_not_for_us_are_refused(clock: FakeClock, change: dict[str, Any],
                                       why: str) -> None:
    idp = TestIdp(clock)
    identity = OidcHolderIdentity(SETTINGS, jwks=idp.jwks(), clock=clock)
    assert why in refusal(identity.identify(bearer(idp.token(HOLDER, **change))))


def test_token_times_follow_the_services_clock(clock: FakeClock) -> None:
    idp = TestIdp(clock)
    identity = OidcHolderIdentity(SETTINGS, jwks=idp.jwks(), clock=clock)
    token = idp.token(HOLDER, lifetime=300)
    clock.advance(seconds=300 + 59)  # within the leeway
    assert identity.identify(bearer(token)) == HOLDER
    clock.advance(seconds=1)
    assert "expired" in refusal(identity.identify(bearer(token)))
    future = idp.token(HOLDER, iat=int(clock().timestamp()) + 120,
                       exp=int(clock().timestamp()) + 400)
    assert "not yet valid" in refusal(identity.identify(bearer(future)))
    assert "long-lived" in refusal(identity.identify(bearer(idp.token(HOLDER,
                                                                      lifetime=86400))))


def test_forged_and_malformed_tokens_are_refused(clock: FakeClock) -> None:
    idp = TestIdp(clock, algorithms=("RS256",))
    identity = OidcHolderIdentity(SETTINGS, jwks=idp.jwks(), clock=clock)
    (kid,) = idp.keys
    impostor = TestIdp(clock, algorithms=("RS256",))
    forged = impostor.token(HOLDER, kid=next(iter(impostor.keys)))
    _, payload, _ = forged.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    # the impostor's token under our IdP's kid: the signature does not verify
    relabelled = jwt.encode(claims, impostor.keys[next(iter(impostor.keys))][1],
                            algorithm="RS256", headers={"kid": kid})
    assert "does not verify" in refusal(identity.identify(bearer(relabelled)))
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": kid})
    assert "algorithm" in refusal(identity.identify(bearer(unsigned)))
    # HS256 keyed with the IdP's public key (algorithm confusion): not an accepted alg
    public = json.dumps(idp.jwks()["keys"][0]).encode()
    signing_input = b".".join(b64(json.dumps(part).encode()) for part in (
        {"alg": "HS256", "kid": kid}, claims))
    confused = (signing_input + b"." + b64(hmac.new(public, signing_input, "sha256").digest())
                ).decode()
    assert "algorithm" in refusal(identity.identify(bearer(confused)))
    assert "not among" in refusal(identity.identify(bearer(forged)))  # unknown kid
    for headers in ({}, {"authorization": "Basic dXNlcjpwYXNz"},
                    {"authorization": "Bearer"}, {"authorization": "Bearer a b"},
                    {"authorization": "Bearer not.a.jwt"},
                    {"authorization": "Bearer " + "a" * 9000}):
        assert refusal(identity.identify(headers))


def test_the_jwks_is_fetched_bounded_and_cached(clock: FakeClock,
                                                http_server: LocalServer) -> None:
    idp = TestIdp(clock)
    path = idp.publish(http_server.root)
    identity = OidcHolderIdentity(SETTINGS, jwks_uri=http_server.url(path), clock=clock)

    def fetches() -> int:
        return sum(1 for p, _ in http_server.log if p == "/" + path)

    assert identity.identify(bearer(idp.token(HOLDER))) == HOLDER
    assert identity.identify(bearer(idp.token(HOLDER))) == HOLDER
    assert fetches() == 1  # cached
    # A rotated key is found by refetching, at most once a minute for unknown kids.
    new_kid = idp.add_key()
    idp.publish(http_server.root)
    assert refusal(identity.identify(bearer(idp.token(HOLDER, kid=new_kid))))
    assert fetches() == 1
    clock.advance(seconds=60)
    stranger = TestIdp(clock)
    for _ in range(5):  # a flood of unknown kids costs one fetch
        assert refusal(identity.identify(bearer(stranger.token(HOLDER))))
    assert fetches() == 2
    assert identity.identify(bearer(idp.token(HOLDER, kid=new_kid))) == HOLDER
    # The IdP down: the keys we had still verify; refreshed again (in the background)
    # after the cache time, and kept when that fails.
    http_server.down.add("/idp")
    clock.advance(seconds=300)
    assert identity.identify(bearer(idp.token(HOLDER))) == HOLDER
    assert identity.settle() and fetches() == 3
    assert identity.identify(bearer(idp.token(HOLDER))) == HOLDER
    # An oversized or malformed JWKS is not taken.
    (http_server.root / path).write_text(json.dumps({"keys": "x" * 70_000}))
    http_server.down.clear()
    clock.advance(seconds=300)
    assert identity.identify(bearer(idp.token(HOLDER))) == HOLDER
    assert identity.settle() and fetches() == 4
    assert identity.identify(bearer(idp.token(HOLDER))) == HOLDER


def test_a_stalled_idp_delays_only_tokens_whose_key_is_not_held(
        clock: FakeClock, http_server: LocalServer) -> None:
    """The keys held answer while their refresh stalls on the IdP's host; only a token
    whose key is not held waits for it (under no lock the others need)."""
    idp = TestIdp(clock)
    path = idp.publish(http_server.root)
    settings = replace(SETTINGS, jwks_timeout=60.0)
    identity = OidcHolderIdentity(settings, jwks_uri=http_server.url(path), clock=clock)
    assert identity.identify(bearer(idp.token(HOLDER))) == HOLDER  # the keys are held
    new_kid = idp.add_key()
    idp.publish(http_server.root)
    clock.advance(seconds=settings.jwks_cache_seconds)  # stale: refreshed in the background
    with http_server.hold("/idp/") as held, ThreadPoolExecutor(1) as pool:
        assert identity.identify(bearer(idp.token(HOLDER))) == HOLDER
        assert held.arrived.wait(30)
        waiting = pool.submit(identity.identify, bearer(idp.token(HOLDER, kid=new_kid)))
        assert identity.identify(bearer(idp.token(HOLDER))) == HOLDER  # still answered
        assert not waiting.done()  # waits for the refresh in flight
        held.release()
        assert waiting.result(timeout=60) == HOLDER
    assert held.count == 1 and identity.settle()


def test_bearer_token_parsing() -> None:
    assert bearer_token({"authorization": "Bearer abc.def.ghi"}) == "abc.def.ghi"
    assert bearer_token({"authorization": "Bearer abc, Bearer def"}) is None
    with pytest.raises(ValueError):
        OidcHolderIdentity(SETTINGS)


# -- the holder's endpoints over HTTP ------------------------------------------------------


class _NoFetches:
    """The requesters' side is not what these tests are about."""

    def fetch(self, request: AuthenticatedRequest, body: ShareRequest) -> Problem:
        return Problem.of("not_entitled")

    def check(self, request: AuthenticatedRequest, body: CheckRequest) -> Problem:
        return Problem.of("not_entitled")

    def refused(self, requester: str | None, problem: Problem, request_hash: str, *,
                kind: UseKind) -> None:
        pass


class _NoKeys:
    def resolve(self, keyid: str, signed_at: int) -> Problem:
        return Problem.of("not_authenticated")


class Channel:
    """The sample GD registry's service with the holder's channel, on loopback."""

    def __init__(self, sharing: Sharing, clock: FakeClock) -> None:
        self.sharing, self.clock = sharing, clock
        self.idp = TestIdp(clock)
        identity = OidcHolderIdentity(SETTINGS, jwks=self.idp.jwks(), clock=clock)
        channel = HolderChannel(identity, sharing.service)

        def make(base: str) -> ASGIApp:
            return create_app(keys=_NoKeys(), nonces=MemoryNonceStore(clock),
                              backend=_NoFetches(), base_url=base, clock=clock,
                              holder=channel)

        self.host = ServiceHost(make, Limits())

    def call(self, method: str, path: str, body: Any = None, *, holder: str | None = HOLDER,
             token: str | None = None, content_type: str = "application/json"
             ) -> tuple[int, Message, Any]:
        headers = {"Content-Type": content_type}
        if token is None and holder is not None:
            token = self.idp.token(holder)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else (
            body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(self.host.url(path), data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                raw = answer.read()
                status, fields = answer.status, answer.headers
        except urllib.error.HTTPError as e:
            raw, status, fields = e.read(), e.code, e.headers
        documented = openapi_document()["paths"]
        template = "/v1/holder/consents/{consent_id}" if path.startswith(
            "/v1/holder/consents/") else path.split("?")[0]
        assert str(status) in documented[template][method.lower()]["responses"], (status, raw)
        if status >= 400:
            assert fields["Content-Type"] == "application/problem+json"
        return status, fields, json.loads(raw) if raw else None

    def grant(self, **changes: Any) -> dict[str, Any]:
        body = {"to": "ZJ/zj-amr", "types": [LICENCE], "purpose": "跨省迁移登记", **changes}
        status, _, answer = self.call("POST", "/v1/holder/consents", body)
        assert status == 201, answer
        return dict(answer)


@pytest.fixture
def channel(sharing: Sharing, clock: FakeClock) -> Iterator[Channel]:
    world = Channel(sharing, clock)
    try:
        yield world
    finally:
        world.host.stop()


def test_the_holder_grants_a_code_that_works_once(channel: Channel,
                                                  registry: ecert.Registry) -> None:
    made = channel.grant(ttl=600)
    assert made["expires_at"] == int(channel.clock().timestamp()) + 600
    assert channel.sharing.fetch(consent=made["code"]).granted
    status, _, listed = channel.call("GET", "/v1/holder/consents")
    assert status == 200
    (consent,) = listed["items"]
    assert (consent["id"], consent["channel"], consent["requester"]) == (
        made["id"], "holder", "ZJ/zj-amr")
    assert consent["used_at"] is not None and "code" not in consent
    (entry,) = [e for e in registry.events() if e.action == "consent.grant"]
    assert entry.details["channel"] == "holder"
    assert registry.audit().intact


def test_the_holder_revokes_only_their_own_open_consents(channel: Channel) -> None:
    made = channel.grant()
    path = f"/v1/holder/consents/{made['id']}"
    assert channel.call("DELETE", path, holder="91440300MA5F3K2L9X")[0] == 404  # not theirs
    assert channel.call("DELETE", path)[0] == 204
    status, _, problem = channel.call("DELETE", path)
    assert (status, problem["code"]) == (409, "consent_not_open")
    assert channel.sharing.fetch(consent=made["code"]).problem == "consent_invalid"
    assert channel.call("DELETE", "/v1/holder/consents/c-unknown")[0] == 404
    channel.clock.advance(seconds=1)  # newest first
    clerk_made = channel.sharing.consent()  # at the window: the holder sees and revokes it
    status, _, listed = channel.call("GET", "/v1/holder/consents")
    assert [c["channel"] for c in listed["items"]] == ["clerk", "holder"]
    assert channel.call("DELETE", f"/v1/holder/consents/{clerk_made.id}")[0] == 204


def test_the_holder_pages_their_use_records(channel: Channel) -> None:
    code = channel.grant()["code"]
    channel.sharing.fetch(consent=code, case="CASE-1")
    channel.sharing.fetch(purpose="市场营销", case="CASE-2")
    channel.sharing.check({"holder_id": HOLDER}, "GD/gd-hrss", purpose="社会保险登记")
    status, _, page = channel.call("GET", "/v1/holder/uses?limit=2")
    assert status == 200 and set(page) == {"items", "more", "next"} and page["more"]
    assert [u["kind"] for u in page["items"]] == ["check", "fetch"]
    assert page["items"][1]["problem"] == "purpose_not_permitted"
    _, _, rest = channel.call("GET", f"/v1/holder/uses?limit=2&after={page['next']}")
    assert [u["case"] for u in rest["items"]] == ["CASE-1"] and not rest["more"]
    assert rest["items"][0]["consent"] is not None
    # Another holder sees none of them.
    _, _, other = channel.call("GET", "/v1/holder/uses", holder="91440300MA5F3K2L9X")
    assert other == {"items": [], "more": False, "next": None}
    for query in ("limit=0", "limit=101", "limit=x", "after=garbage"):
        status, _, problem = channel.call("GET", f"/v1/holder/uses?{query}")
        assert (status, problem["code"]) == (400, "malformed_request")


def test_a_holder_grants_a_bounded_number_of_codes(channel: Channel, registry: ecert.Registry,
                                                   clock: FakeClock) -> None:
    registry.set_share_limits(grants_per_holder=2)
    channel.grant()
    channel.grant()
    body = {"to": "ZJ/zj-amr", "types": [LICENCE], "purpose": "跨省迁移登记"}
    status, _, problem = channel.call("POST", "/v1/holder/consents", body)
    assert (status, problem["code"]) == (429, "too_many_requests")
    assert channel.call("POST", "/v1/holder/consents", body,
                        holder="91440300MA5F3K2L9X")[0] == 201  # another holder's own
    assert len(registry.consents(HOLDER)) == 2
    clock.advance(hours=1)
    assert channel.grant()["code"]
    # At the window a clerk is not bound by it (the grant names the clerk).
    registry.set_share_limits(grants_per_holder=0)
    assert channel.sharing.consent().code
    with pytest.raises(ecert.PermissionDenied) as refused:
        channel.sharing.service.consent_grant_by_holder(HOLDER, "ZJ/zj-amr", [LICENCE], "p")
    assert refused.value.code == "too_many_requests"


def test_no_identity_no_channel(channel: Channel, clock: FakeClock) -> None:
    for method, path in (("GET", "/v1/holder/uses"), ("GET", "/v1/holder/consents"),
                         ("POST", "/v1/holder/consents"),
                         ("DELETE", "/v1/holder/consents/c-1")):
        status, fields, problem = channel.call(method, path, {} if method == "POST" else None,
                                               holder=None)
        assert (status, problem["code"]) == (401, "not_authenticated")
        assert fields["WWW-Authenticate"].startswith("Bearer")
    expired = channel.idp.token(HOLDER, lifetime=60)
    clock.advance(seconds=121)
    assert channel.call("GET", "/v1/holder/uses", token=expired)[0] == 401
    other_idp = TestIdp(clock)
    assert channel.call("GET", "/v1/holder/uses", token=other_idp.token(HOLDER))[0] == 401
    assert not channel.sharing.registry.consents(HOLDER)


@pytest.mark.parametrize(("body", "status"), [
    (b'{"to": ', 400),
    ({"to": "ZJ/zj-amr", "types": [LICENCE]}, 400),  # no purpose
    ({"to": "ZJ", "types": [LICENCE], "purpose": "p"}, 400),  # a region, not an agency
    ({"to": "ZJ/zj-amr", "types": ["cn.unknown"], "purpose": "p"}, 400),
    ({"to": "ZJ/zj-amr", "types": [LICENCE], "purpose": "p", "ttl": 10}, 400),
    ({"to": "ZJ/zj-amr", "types": [LICENCE], "purpose": "p", "ttl": "1h"}, 400),
    ({"to": "ZJ/zj-amr", "types": [LICENCE], "purpose": "p", "holder": "x"}, 400),
])
def test_bad_grants_are_problems(channel: Channel, body: Any, status: int) -> None:
    answer_status, _, problem = channel.call("POST", "/v1/holder/consents", body)
    assert (answer_status, problem["code"]) == (status, "malformed_request")
    assert channel.call("POST", "/v1/holder/consents", b"{}",
                        content_type="text/plain")[0] == 415
    assert not channel.sharing.registry.consents(HOLDER)


def test_the_openapi_document_describes_the_channel() -> None:
    paths = openapi_document()["paths"]
    assert set(paths["/v1/holder/consents"]) == {"post", "get"}
    assert paths["/v1/holder/uses"]["get"]["security"] == [{"holderBearer": []}]
    assert Path(__file__).parent.parent.joinpath("docs", "sharing-openapi.json").exists()


_TEXT = st.text(max_size=12)
_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | _TEXT,
                      lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=8)
_GRANT = st.fixed_dictionaries({}, optional={
    "to": st.sampled_from(["ZJ/zj-amr", "ZJ", "zj-amr", ""]) | _VALUE,
    "types": st.lists(st.sampled_from([LICENCE, "x", ""]), max_size=3) | _VALUE,
    "purpose": _TEXT | _VALUE, "ttl": st.integers() | _VALUE, "other": _VALUE})


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_GRANT | _VALUE)
def test_no_grant_gets_a_5xx(channel: Channel, body: Any) -> None:
    status, _, answer = channel.call("POST", "/v1/holder/consents", body)
    assert status in (201, 400), answer  # and documented: call() checks it
