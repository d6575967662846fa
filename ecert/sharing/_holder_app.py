"""The holder's channel's routes (Starlette; added by :func:`ecert.sharing.app.create_app`
when it is given a :class:`ecert.sharing.holder.HolderChannel`).

=========================================  ============================================
``POST /v1/holder/consents``               grant a consent code → 201 ``{"id", "code",
                                           "expires_at"}``
``GET /v1/holder/consents``                the holder's consents → ``{"items": […]}``
``DELETE /v1/holder/consents/{id}``        revoke one → 204
``GET /v1/holder/uses?limit=&after=``      their use records → ``{"items", "more",
                                           "next"}``
=========================================  ============================================

Each request is first given to the deployment's :class:`~ecert.sharing.holder.HolderIdentity`
(``not_authenticated``, 401 with ``WWW-Authenticate: Bearer``, if it refuses); the holder
it names is the only holder the request can act for. Identity checks and the registry's
work run in a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecert._formats.jose import strict_json_loads
from ecert._formats.sharing import PROBLEM_MEDIA_TYPE, Problem
from ecert.errors import AccessError, EcertError, FormatError, InputError, NotFound
from ecert.sharing.holder import HolderChannel

#: The members of a grant's body.
GRANT_MEMBERS = frozenset({"to", "types", "purpose", "ttl"})
#: A consent lives an hour unless the holder asks otherwise.
DEFAULT_TTL = 3600


def _problem(problem: Problem) -> Response:
    headers = {"Cache-Control": "no-store"}
    if problem.code == "not_authenticated":
        headers["WWW-Authenticate"] = 'Bearer realm="ecert-holder"'
    return Response(problem.to_json(), status_code=problem.status, headers=headers,
                    media_type=PROBLEM_MEDIA_TYPE)


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(),
                    status_code=status, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def _grant_body(data: bytes) -> dict[str, Any]:
    body = strict_json_loads(data)
    if not isinstance(body, dict):
        raise FormatError("a grant is a JSON object", code="malformed")
    unknown = sorted(set(body) - GRANT_MEMBERS)
    if unknown:
        raise FormatError(f"unknown member {unknown[0][:40]!r}", code="malformed")
    to, types, purpose = body.get("to"), body.get("types"), body.get("purpose")
    ttl = body.get("ttl", DEFAULT_TTL)
    if not isinstance(to, str) or not isinstance(purpose, str) \
            or not isinstance(types, list) or not types \
            or not all(isinstance(t, str) for t in types) \
            or type(ttl) is not int:
        raise FormatError("a grant has to (REGION/agency-code), types (a list of type "
                          "codes), purpose (text) and ttl (seconds, optional)",
                          code="malformed")
    return {"to": to, "types": types, "purpose": purpose, "ttl": ttl}


def _code_of(error: EcertError) -> str:
    """The problem code of the registry's refusal of a holder's request. An
    :class:`AccessError` other than the rate limit means no agency issues the type, so
    the service may not consent to it: the request is wrong."""
    if error.code in ("consent_not_open", "too_many_requests"):
        return error.code
    return "not_found" if isinstance(error, NotFound) else "malformed_request"


def holder_routes(channel: HolderChannel) -> list[Route]:
    """The routes of the holder's channel."""
    registry = channel.registry

    def answer(request_headers: dict[str, str],
               act: Callable[[str], Response]) -> Response:
        """Authenticate, then ``act`` for the holder; registry refusals as problems."""
        holder = channel.identity.identify(request_headers)
        if isinstance(holder, Problem):
            return _problem(holder)
        try:
            return act(holder)
        except (FormatError, InputError, AccessError) as e:
            return _problem(Problem.of(_code_of(e), e.message))

    async def run(request: Request, act: Callable[[str], Response]) -> Response:
        headers: dict[str, str] = {}
        for k, v in request.scope["headers"]:
            name = k.decode("latin-1").lower()
            value = v.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return await run_in_threadpool(answer, headers, act)

    async def grant(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _problem(Problem.of("unsupported_media_type"))
        data = await request.body()

        def act(holder: str) -> Response:
            body = _grant_body(data)
            try:
                made = registry.consent_grant_by_holder(holder, body["to"], body["types"],
                                                        body["purpose"], body["ttl"])
            except NotFound as e:  # no such type: the request is wrong, not the path
                return _problem(Problem.of("malformed_request", e.message))
            return _json({"id": made.id, "code": made.code, "expires_at": made.expires_at},
                         201)

        return await run(request, act)

    async def consents(request: Request) -> Response:
        def act(holder: str) -> Response:
            return _json({"items": [c._asdict() for c in registry.consents(holder)]})

        return await run(request, act)

    async def revoke(request: Request) -> Response:
        consent_id = request.path_params["consent_id"]

        def act(holder: str) -> Response:
            registry.consent_revoke(consent_id, holder_id=holder)
            return Response(status_code=204, headers={"Cache-Control": "no-store"})

        return await run(request, act)

    async def uses(request: Request) -> Response:
        query = request.query_params
        limit_text, after = query.get("limit", "50"), query.get("after")

        def act(holder: str) -> Response:
            if not limit_text.isdigit() or not 1 <= int(limit_text) <= channel.max_page:
                raise FormatError(f"limit is 1 to {channel.max_page}", code="malformed")
            page = registry.uses(holder, limit=int(limit_text), after=after)
            return _json(page.to_json(lambda u: u.to_json()))

        return await run(request, act)

    return [Route("/v1/holder/consents", grant, methods=["POST"]),
            Route("/v1/holder/consents", consents, methods=["GET"]),
            Route("/v1/holder/consents/{consent_id}", revoke, methods=["DELETE"]),
            Route("/v1/holder/uses", uses, methods=["GET"])]
