"""The sharing service's ASGI application (Starlette; the ``server`` extra).

:func:`create_app` wires four things the caller supplies: where requester keys come from
(:class:`~ecert.sharing.RequesterKeys`), the nonce store
(:class:`~ecert._formats.sharing.NonceStore`), the registry side
(:class:`~ecert.sharing.SharingBackend`) and a clock. The application

1. enforces the transport's limits in a plain ASGI guard, before any routing: header
   count and size (431), body size (413, from ``Content-Length`` or as it arrives), and
   one deadline for the whole request, headers and body (408) — uvicorn has none. The
   deadline starts when the request's first byte arrived if the server says so
   (:data:`REQUEST_STARTED`, set by :class:`ecert.sharing.server.DeadlineH11Protocol`,
   which also cuts off clients too slow to finish their headers), else when the
   application is called;
2. authenticates: the Content-Digest against the body, then the one signature tagged
   ``ecert-share`` (RFC 9421, covering :data:`~ecert._formats.httpsig.SHARE_COMPONENTS`),
   its key resolved by ``keyid``, its ``created`` within the freshness window, its nonce
   never seen from that requester within it. Every failure is a ``not_authenticated``,
   ``region_not_recognized`` or ``replay`` problem, never a 5xx;
3. decodes the body strictly and hands the request to the backend, whose answer (or
   problem) it returns. Every refusal is an RFC 9457 problem document.

Blocking work (signature checks, the backend's database) runs in a worker thread, so a
slow request never stalls the event loop that answers the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecert._clock import Clock, now_seconds, system_clock
from ecert._formats import httpsig
from ecert._formats.jose import canonical_json
from ecert._formats.sharing import (
    FRESHNESS_WINDOW,
    MAX_REQUEST_BYTES,
    PROBLEM_MEDIA_TYPE,
    PROBLEMS,
    CheckRequest,
    NonceStore,
    Problem,
    ShareRequest,
)
from ecert.errors import FormatError
from ecert.sharing._holder_app import holder_routes
from ecert.sharing._openapi import openapi_document
from ecert.sharing._service import (
    AuthenticatedRequest,
    CheckResult,
    FetchResult,
    RequesterKeys,
    SharingBackend,
)
from ecert.sharing.holder import HolderChannel

log = logging.getLogger(__name__)

#: The ASGI scope extension under which a server may put the ``time.monotonic()`` at which
#: the request's first byte arrived (the whole-request deadline then counts from there).
REQUEST_STARTED = "ecert.request_started"
#: ASGI extension: the request's number on its connection (1 for the first), set by
#: :class:`ecert.sharing.server.DeadlineH11Protocol`.
REQUEST_NUMBER = "ecert.request_number"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Limits:
    """The service's bounds on one request."""

    max_body_bytes: int = MAX_REQUEST_BYTES
    max_header_count: int = 64
    max_header_bytes: int = 16 * 1024
    #: Seconds from the request's first byte to its last, headers and body together.
    deadline_seconds: float = 10.0
    #: Seconds a signature's ``created`` may be from the service's clock, either way.
    freshness_window: int = FRESHNESS_WINDOW
    #: Connections (and requests in progress) one worker serves at a time; beyond, uvicorn
    #: answers 503 at once. Each connection's time is bounded by the deadline, but not how
    #: many there are: without this, a flood would exhaust the worker's file descriptors.
    max_connections: int = 1000
    #: Requests one keep-alive connection may carry: the answer to the last says
    #: ``Connection: close``, and the client's next connection may go to another worker
    #: (each listens on its own socket and the kernel spreads new connections), so that
    #: a few busy long-lived connections do not stay on one worker while another idles.
    max_requests_per_connection: int = 100


def _problem_response(problem: Problem, *, close: bool = False) -> Response:
    headers = {"Cache-Control": "no-store"}
    if close:
        headers["Connection"] = "close"
    return Response(problem.to_json(), status_code=problem.status, headers=headers,
                    media_type=PROBLEM_MEDIA_TYPE)


def _closing(send: Send) -> Send:
    """``send``, with ``Connection: close`` added to the response's headers."""
    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", [])
                       if k.lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)
    return closing


class _Guard:
    """Header and body limits and the whole-request deadline, before any routing.

    Reads the whole body (bounded in size and time) and hands it on, so nothing behind it
    ever waits on a client.
    """

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        number = scope.get("extensions", {}).get(REQUEST_NUMBER)
        if isinstance(number, int) and number >= limits.max_requests_per_connection:
            send = _closing(send)
        started = scope.get("extensions", {}).get(REQUEST_STARTED)
        deadline = (started if isinstance(started, float) else time.monotonic()) \
            + limits.deadline_seconds
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if len(headers) > limits.max_header_count or \
                sum(len(k) + len(v) for k, v in headers) > limits.max_header_bytes:
            await _problem_response(Problem.of("headers_too_large"), close=True)(
                scope, receive, send)
            return
        lengths = [v for k, v in headers if k == b"content-length"]
        if lengths and (len(lengths) > 1 or not lengths[0].isdigit()):
            await _problem_response(Problem.of("malformed_request", "bad Content-Length"),
                                    close=True)(scope, receive, send)
            return
        if lengths and int(lengths[0]) > limits.max_body_bytes:
            await _problem_response(Problem.of("payload_too_large"), close=True)(
                scope, receive, send)
            return
        body = bytearray()
        problem: Problem | None = None
        try:
            with anyio.fail_after(max(0.0, deadline - time.monotonic())):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    if len(body) > limits.max_body_bytes:
                        problem = Problem.of("payload_too_large")
                        break
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            problem = Problem.of("request_timeout",
                                 f"the request took more than {limits.deadline_seconds} s")
        if problem is not None:
            await _problem_response(problem, close=True)(scope, receive, send)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


_Body = TypeVar("_Body", ShareRequest, CheckRequest)


class _Service:
    """Authentication, decoding and the backend call for one request (in a thread)."""

    def __init__(self, keys: RequesterKeys, nonces: NonceStore | None,
                 backend: SharingBackend, clock: Clock, limits: Limits,
                 base_url: str) -> None:
        self.keys = keys
        self.nonces = nonces
        self.backend = backend
        self.clock = clock
        self.limits = limits
        self.base_url = base_url.rstrip("/")

    def refuse(self, problem: Problem, requester: str | None, request_hash: str) -> Problem:
        self.backend.refused(requester, problem, request_hash)
        return problem

    def authenticate(self, message: httpsig.HttpMessage, body: bytes
                     ) -> AuthenticatedRequest | Problem:
        field = message.field
        digest, sig_input, sig = (field("content-digest"), field("signature-input"),
                                  field("signature"))
        request_hash = hashlib.sha256(
            f"{sig_input or ''}\n{sig or ''}\n".encode("latin-1") + body).hexdigest()
        if digest is None or sig_input is None or sig is None:
            return self.refuse(Problem.of("not_authenticated", "the request is not signed "
                                          "(Content-Digest, Signature-Input, Signature)"),
                               None, request_hash)
        try:
            httpsig.check_content_digest(digest, body)
            parsed = httpsig.parse_signature(sig_input, sig)
        except FormatError as e:
            return self.refuse(Problem.of("not_authenticated", e.message), None, request_hash)
        params = parsed.params
        resolved = self.keys.resolve(params.keyid, params.created)
        if isinstance(resolved, Problem):
            return self.refuse(resolved, None, request_hash)
        now = now_seconds(self.clock)
        try:
            httpsig.verify_message(message, parsed, resolved.key)
        except FormatError as e:
            # Not proven to come from the agency its keyid names: recorded as nobody's, or
            # anyone could have refusals logged (and rate budgets spent) in any agency's name.
            return self.refuse(Problem.of("not_authenticated", e.message), None, request_hash)
        try:
            httpsig.check_fresh(params, now, window=self.limits.freshness_window)
            nonce = httpsig.check_nonce(params.nonce)
        except FormatError as e:
            return self.refuse(Problem.of("not_authenticated", e.message),
                               resolved.requester, request_hash)
        # Kept until the request is stale anyway: a replay after that is refused as stale.
        expires_at = params.created + self.limits.freshness_window + 1
        # Without a store the backend keeps the nonce in its own transaction (checked
        # when the app was made: one of the two does).
        if self.nonces is not None and not self.nonces.remember(resolved.requester, nonce,
                                                                expires_at):
            return self.refuse(Problem.of("replay", "this nonce was seen before"),
                               resolved.requester, request_hash)
        return AuthenticatedRequest(resolved.requester, params.keyid, params.created, now,
                                    nonce, request_hash, expires_at)

    def handle(self, method: str, path: str, query: str,
               headers: tuple[tuple[str, str], ...], body: bytes,
               decode: Callable[[bytes], _Body],
               call: Callable[[AuthenticatedRequest, _Body], FetchResult | CheckResult | Problem],
               ) -> tuple[int, bytes, str]:
        """Status, body and media type of the answer."""
        target = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        message = httpsig.HttpMessage(headers, method=method, target_uri=target)
        content_type = (message.field("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            problem = Problem.of("unsupported_media_type")
            return problem.status, problem.to_json(), PROBLEM_MEDIA_TYPE
        authenticated = self.authenticate(message, body)
        if isinstance(authenticated, Problem):
            return authenticated.status, authenticated.to_json(), PROBLEM_MEDIA_TYPE
        try:
            decoded = decode(body)
        except FormatError as e:
            problem = Problem.of("malformed_request", e.message)
            self.refuse(problem, authenticated.requester, authenticated.request_hash)
            return problem.status, problem.to_json(), PROBLEM_MEDIA_TYPE
        result = call(authenticated, decoded)
        if isinstance(result, Problem):
            return result.status, result.to_json(), PROBLEM_MEDIA_TYPE
        if isinstance(result, FetchResult):
            answer: dict[str, Any] = {"copies": [{"token": t} for t in result.copies]}
        else:
            answer = {"match": result.match}
        # Canonical JSON: for copies these are the bytes the registry's use record hashes.
        return 200, canonical_json(answer), "application/json"


def create_app(*, keys: RequesterKeys, nonces: NonceStore | None, backend: SharingBackend,
               base_url: str, clock: Clock = system_clock,
               limits: Limits | None = None, holder: HolderChannel | None = None) -> ASGIApp:
    """The sharing service as an ASGI application.

    ``base_url`` is the service's public base URL (scheme, host, port, any path prefix):
    the ``@target-uri`` and ``@authority`` a request signs are taken from it, never from
    the request's own Host header, so a request signed for another service does not
    verify here. ``holder``: also serve the holder's channel (``/v1/holder/…``, behind
    its identity hook; :mod:`ecert.sharing.holder`). ``nonces``: where the shell keeps
    the requests' nonces; None for a backend that keeps them itself (its
    ``remembers_nonces`` is True, as :class:`~ecert.sharing.RegistryBackend`'s): exactly
    one of the two must, or no app is made (a replay would go through).
    """
    remembers = getattr(backend, "remembers_nonces", False) is True
    if nonces is None and not remembers:
        raise ValueError("no nonce store, and the backend does not remember nonces: "
                         "replays would go through")
    if nonces is not None and remembers:
        raise ValueError("a nonce store and a backend that remembers nonces: each "
                         "request would be seen twice, as its own replay")
    limits = limits or Limits()
    httpsig.component_value(httpsig.HttpMessage((), method="GET", target_uri=base_url),
                            "@authority")  # refuses a base URL that is no http(s) URL
    service = _Service(keys, nonces, backend, clock, limits, base_url)

    async def serve(request: Request, decode: Callable[[bytes], _Body],
                    call: Callable[[AuthenticatedRequest, _Body],
                                   FetchResult | CheckResult | Problem]) -> Response:
        body = await request.body()
        headers = tuple((k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in request.scope["headers"])
        status, content, media_type = await run_in_threadpool(
            service.handle, request.method, request.url.path,
            request.url.query, headers, body, decode, call)
        return Response(content, status_code=status, media_type=media_type,
                        headers={"Cache-Control": "no-store"})

    async def copies(request: Request) -> Response:
        return await serve(request, ShareRequest.from_json, backend.fetch)

    async def checks(request: Request) -> Response:
        return await serve(request, CheckRequest.from_json, backend.check)

    document = json.dumps(openapi_document(), ensure_ascii=False, indent=1).encode()

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    async def problem_page(request: Request) -> Response:
        code = request.path_params["code"]
        if code not in PROBLEMS:
            return _problem_response(Problem.of("not_found"))
        status, title = PROBLEMS[code]
        return Response(json.dumps({"code": code, "status": status, "title": title}),
                        media_type="application/json")

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "malformed_request")
        return _problem_response(Problem.of(code))

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error in the sharing service", exc_info=exc)
        return _problem_response(Problem.of("internal_error"))

    app = Starlette(
        routes=[Route("/v1/copies", copies, methods=["POST"]),
                Route("/v1/checks", checks, methods=["POST"]),
                Route("/openapi.json", openapi, methods=["GET"]),
                Route("/problems/{code}", problem_page, methods=["GET"]),
                *([] if holder is None else holder_routes(holder))],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
    return _Guard(app, limits)
