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

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecert._clock import Clock, now_seconds, system_clock
from ecert._formats import httpsig
from ecert._formats.jose import canonical_json
from ecert._formats.sharing import (
    FRESHNESS_WINDOW,
    LOG_INDEX_HEADER,
    MAX_REQUEST_BYTES,
    PROBLEM_MEDIA_TYPE,
    PROBLEMS,
    CheckRequest,
    NonceStore,
    Problem,
    ShareRequest,
    UseKind,
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
    #: Requests one worker process works on at once in its threads (signature checks and
    #: the registry's transaction, each on a database connection of its own); the rest
    #: wait their turn. More threads than this only contend for the interpreter's lock:
    #: measured on 2 cores, 2 cost 5 % less CPU per request than 4, and 4 less than anyio's 40.
    max_threads: int = 2


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
            # asyncio's own timeout, not anyio's: this runs on every request, and the
            # service runs on asyncio (uvicorn) only.
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
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


@dataclass(frozen=True, slots=True)
class _Endpoint(Generic[_Body]):
    """A signed-request endpoint: the kind of request it serves (what each of its use
    records says, refusals included), its body's strict decoder, the backend's call."""

    kind: UseKind
    decode: Callable[[bytes], _Body]
    call: Callable[[AuthenticatedRequest, _Body], FetchResult | CheckResult | Problem]


def _request_hash(message: httpsig.HttpMessage, body: bytes) -> str:
    """What names a request in its use record (:class:`AuthenticatedRequest`)."""
    sig_input, sig = message.field("signature-input"), message.field("signature")
    return hashlib.sha256(
        f"{sig_input or ''}\n{sig or ''}\n".encode("latin-1") + body).hexdigest()


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

    def refuse(self, kind: UseKind, problem: Problem, requester: str | None,
               request_hash: str) -> Problem:
        """Report ``problem`` to the backend (recorded as a request of ``kind``), and
        answer it."""
        self.backend.refused(requester, problem, request_hash, kind=kind)
        return problem

    def authenticate(self, kind: UseKind, message: httpsig.HttpMessage, body: bytes
                     ) -> AuthenticatedRequest | Problem:
        field = message.field
        digest, sig_input, sig = (field("content-digest"), field("signature-input"),
                                  field("signature"))
        request_hash = _request_hash(message, body)

        def refuse(problem: Problem, requester: str | None = None) -> Problem:
            return self.refuse(kind, problem, requester, request_hash)

        if digest is None or sig_input is None or sig is None:
            return refuse(Problem.of("not_authenticated", "the request is not signed "
                                     "(Content-Digest, Signature-Input, Signature)"))
        try:
            httpsig.check_content_digest(digest, body)
            parsed = httpsig.parse_signature(sig_input, sig)
        except FormatError as e:
            return refuse(Problem.of("not_authenticated", e.message))
        params = parsed.params
        resolved = self.keys.resolve(params.keyid, params.created)
        if isinstance(resolved, Problem):
            return refuse(resolved)
        now = now_seconds(self.clock)
        try:
            httpsig.verify_message(message, parsed, resolved.key)
        except FormatError as e:
            # Not proven to come from the agency its keyid names: recorded as nobody's, or
            # anyone could have refusals logged (and rate budgets spent) in any agency's name.
            return refuse(Problem.of("not_authenticated", e.message))
        try:
            httpsig.check_fresh(params, now, window=self.limits.freshness_window)
            nonce = httpsig.check_nonce(params.nonce)
        except FormatError as e:
            return refuse(Problem.of("not_authenticated", e.message), resolved.requester)
        # Kept until the request is stale anyway: a replay after that is refused as stale.
        expires_at = params.created + self.limits.freshness_window + 1
        # Without a store the backend keeps the nonce in its own transaction (checked
        # when the app was made: one of the two does).
        if self.nonces is not None and not self.nonces.remember(resolved.requester, nonce,
                                                                expires_at):
            return refuse(Problem.of("replay", "this nonce was seen before"),
                          resolved.requester)
        return AuthenticatedRequest(resolved.requester, params.keyid, params.created, now,
                                    nonce, request_hash, expires_at)

    def handle(self, endpoint: _Endpoint[_Body], method: str, path: str, query: str,
               headers: tuple[tuple[str, str], ...], body: bytes
               ) -> tuple[int, bytes, str, dict[str, str]]:
        """Status, body, media type and further header fields of the answer. Every
        refusal on the way is reported to the backend as a request of the endpoint's
        kind."""
        target = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        message = httpsig.HttpMessage(headers, method=method, target_uri=target)
        content_type = (message.field("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            problem = self.refuse(endpoint.kind, Problem.of("unsupported_media_type"), None,
                                  _request_hash(message, body))
            return problem.status, problem.to_json(), PROBLEM_MEDIA_TYPE, {}
        authenticated = self.authenticate(endpoint.kind, message, body)
        if isinstance(authenticated, Problem):
            return authenticated.status, authenticated.to_json(), PROBLEM_MEDIA_TYPE, {}
        try:
            decoded = endpoint.decode(body)
        except FormatError as e:
            problem = self.refuse(endpoint.kind, Problem.of("malformed_request", e.message),
                                  authenticated.requester, authenticated.request_hash)
            return problem.status, problem.to_json(), PROBLEM_MEDIA_TYPE, {}
        result = endpoint.call(authenticated, decoded)
        if isinstance(result, Problem):
            return result.status, result.to_json(), PROBLEM_MEDIA_TYPE, {}
        extra: dict[str, str] = {}
        if isinstance(result, FetchResult):
            answer: dict[str, Any] = {"copies": [{"token": t} for t in result.copies]}
            if result.log_index is not None:
                # Beside the body, not in it: the body's hash is in that very entry.
                extra[LOG_INDEX_HEADER] = str(result.log_index)
        else:
            answer = {"match": result.match}
        # Canonical JSON: for copies these are the bytes the registry's use record hashes.
        return 200, canonical_json(answer), "application/json", extra


class _SignedEndpoints:
    """The two signed-request endpoints answered here, everything else by ``app``.

    They carry the service's load, and Starlette's middleware stack, routing and request
    and response objects cost a worker about a tenth of its CPU per request while adding
    nothing to them: the guard before this has read and bounded the body, and the
    answer is one body of known length. Their behaviour is the same as a Starlette route's
    (other methods on these paths fall through to it and get 405).
    """

    def __init__(self, app: ASGIApp, service: _Service,
                 endpoints: dict[str, _Endpoint[Any]], threads: int) -> None:
        self.app = app
        self.service = service
        self.endpoints = endpoints
        # A pool of its own rather than anyio's default limiter and worker threads: its
        # queue is the C SimpleQueue, where anyio's hand-off (queue.Queue and a Condition)
        # took a twelfth of a worker's CPU per request.
        self._executor = ThreadPoolExecutor(max_workers=threads,
                                            thread_name_prefix="ecert-sharing")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.endpoints.get(_route_path(scope)) \
            if scope["type"] == "http" and scope["method"] == "POST" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = tuple((k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in scope["headers"])
        # The path as Starlette's ``request.url.path`` gives it (the root path included).
        path = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            status, content, media_type, extra = await asyncio.get_running_loop(
            ).run_in_executor(self._executor, self.service.handle, endpoint, "POST", path,
                              query, headers, bytes(body))
        except Exception:
            log.exception("internal error in the sharing service")
            problem = Problem.of("internal_error")
            status, content, media_type, extra = (
                problem.status, problem.to_json(), PROBLEM_MEDIA_TYPE, {})
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-length", str(len(content)).encode("ascii")),
            (b"content-type", media_type.encode("ascii")),
            (b"cache-control", b"no-store"),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items())]})
        await send({"type": "http.response.body", "body": content})


def _route_path(scope: Scope) -> str:
    """The request's path below the application's root path (as Starlette routes it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] == "/":
        return path[len(root):]
    return path


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

    fetch = _Endpoint(UseKind.FETCH, ShareRequest.from_json, backend.fetch)
    check = _Endpoint(UseKind.CHECK, CheckRequest.from_json, backend.check)

    async def signed_only(request: Request) -> Response:
        # POST never gets here (_SignedEndpoints answers it); the route is declared so
        # that other methods get 405, as on any route.
        raise HTTPException(405)

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
        routes=[Route("/v1/copies", signed_only, methods=["POST"]),
                Route("/v1/checks", signed_only, methods=["POST"]),
                Route("/openapi.json", openapi, methods=["GET"]),
                Route("/problems/{code}", problem_page, methods=["GET"]),
                *([] if holder is None else holder_routes(holder))],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
    return _Guard(_SignedEndpoints(app, service, {"/v1/copies": fetch, "/v1/checks": check},
                                   limits.max_threads), limits)
