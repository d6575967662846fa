"""The sharing service's OpenAPI 3.1 document (served at ``/openapi.json``; a copy is
checked into ``docs/sharing-openapi.json`` and a test keeps the two equal)."""

from __future__ import annotations

from typing import Any

from ecert._formats.sharing import (
    CHECK_KEYS,
    LOG_INDEX_HEADER,
    MAX_CASE,
    MAX_FIELD,
    MAX_PURPOSE,
    MAX_TYPES,
    MAX_VALUES,
    PROBLEMS,
)

_TEXT = {"type": "string", "minLength": 1}


def _context() -> dict[str, Any]:
    return {
        "purpose": {**_TEXT, "maxLength": MAX_PURPOSE, "description": "用证事由"},
        "case": {**_TEXT, "maxLength": MAX_CASE, "description": "业务流水号"},
        "service_item": {**_TEXT, "maxLength": MAX_FIELD, "description": "事项编码"},
        "staff_id": {**_TEXT, "maxLength": MAX_FIELD},
        "staff_role": {**_TEXT, "maxLength": MAX_FIELD},
        "consent": {"type": "string", "pattern": "^[A-Za-z0-9-]{4,64}$",
                    "description": "用证码, where the entitlement needs the holder's consent"},
    }


_CODE = {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,99}$"}
_CONTEXT_REQUIRED = ["purpose", "case", "service_item", "staff_id", "staff_role"]

_SIGNATURE_HEADERS = [
    {"name": "Content-Digest", "in": "header", "required": True,
     "description": "RFC 9530: sha-256 (or sha-512) of the body.",
     "schema": {"type": "string"}},
    {"name": "Signature-Input", "in": "header", "required": True,
     "description": "RFC 9421: one signature tagged ecert-share covering @method, "
                    "@target-uri, @authority, @path, @query, content-digest and "
                    "content-type, with created, nonce and keyid (REGION/agency-code#kid).",
     "schema": {"type": "string"}},
    {"name": "Signature", "in": "header", "required": True,
     "schema": {"type": "string"}},
]


def _problems(*codes: str) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(PROBLEMS[code][0], []).append(code)
    return {str(status): {
        "description": ", ".join(found),
        "content": {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"}}},
    } for status, found in sorted(by_status.items())}


_REFUSALS = ("not_authenticated", "region_not_recognized", "not_entitled",
             "purpose_not_permitted", "consent_required", "consent_invalid", "replay",
             "too_many_requests", "malformed_request", "payload_too_large",
             "headers_too_large", "request_timeout", "unsupported_media_type")


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _operation(summary: str, request: str, answer: str, answer_schema: str,
               headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """A signed POST taking ``request`` and answering ``answer_schema`` or a problem."""
    ok: dict[str, Any] = {"description": answer, "content": _json(answer_schema)}
    if headers:
        ok["headers"] = headers
    return {"post": {
        "summary": summary,
        "parameters": _SIGNATURE_HEADERS,
        "requestBody": {"required": True, "content": _json(request)},
        "responses": {"200": ok, **_problems(*_REFUSALS)},
    }}


_LOG_INDEX = {LOG_INDEX_HEADER: {
    "description": "The log index of the fetch's share.fetch entry, which commits to every "
                   "copy's hash: the inclusion proof of the copies (ecert verify COPY "
                   "--require-inclusion --leaf-index N)",
    "schema": {"type": "integer", "minimum": 0}}}


_HOLDER_AUTH: list[dict[str, list[str]]] = [{"holderBearer": []}]


def _holder(method: str, summary: str, answer: tuple[str, str, str | None],
            refusals: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    """An operation of the holder's channel: ``answer`` is (status, description, schema)."""
    status, description, schema = answer
    responses: dict[str, Any] = {status: {"description": description}}
    if schema is not None:
        responses[status]["content"] = _json(schema)
    return {method: {
        "summary": summary, "security": _HOLDER_AUTH,
        "responses": {**responses, **_problems("not_authenticated", *refusals)}, **extra}}


def _holder_paths() -> dict[str, Any]:
    """The holder's channel (served when the deployment gives it an identity hook)."""
    limits = ("malformed_request", "payload_too_large", "headers_too_large",
              "request_timeout")
    return {
        "/v1/holder/consents": {
            **_holder("post", "The holder grants a consent code (用证码)",
                      ("201", "The code, shown once", "ConsentCode"),
                      (*limits, "unsupported_media_type", "too_many_requests"),
                      requestBody={"required": True, "content": _json("ConsentGrant")}),
            **_holder("get", "The holder's consents, newest first (never the codes)",
                      ("200", "The consents", "Consents"), limits),
        },
        "/v1/holder/consents/{consent_id}": _holder(
            "delete", "The holder revokes an open consent", ("204", "Revoked", None),
            (*limits, "not_found", "consent_not_open"),
            parameters=[{"name": "consent_id", "in": "path", "required": True,
                         "schema": {"type": "string"}}]),
        "/v1/holder/uses": _holder(
            "get", "Who used the holder's certificates (use records), newest first",
            ("200", "One page of use records", "UsePage"), limits,
            parameters=[{"name": "limit", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1, "maximum": 100,
                                    "default": 50}},
                        {"name": "after", "in": "query", "required": False,
                         "description": "the previous page's next",
                         "schema": {"type": "string"}}]),
    }


def _holder_schemas() -> dict[str, Any]:
    text_list = {"type": "array", "items": {"type": "string"}}
    consent = {
        "type": "object",
        "required": ["id", "requester", "types", "purpose", "channel", "created_at",
                     "expires_at", "used_at", "revoked_at"],
        "properties": {
            "id": {"type": "string"}, "requester": {"type": "string"}, "types": text_list,
            "purpose": {"type": "string"},
            "channel": {"type": "string", "enum": ["clerk", "holder"]},
            "created_at": {"type": "integer"}, "expires_at": {"type": "integer"},
            "used_at": {"type": ["integer", "null"]},
            "revoked_at": {"type": ["integer", "null"]},
            "scope": {"type": ["array", "null"], "description": "the [agency, type] pairs "
                      "whose certificates it releases (null: granted before consents were "
                      "scoped)", "items": {"type": "array", "items": {"type": "string"},
                                           "minItems": 2, "maxItems": 2}}}}
    nullable = {"type": ["string", "null"]}
    use = {
        "type": "object",
        "required": ["id", "at", "kind", "requester", "purpose", "outcome", "problem"],
        "properties": {
            "id": {"type": "integer"}, "at": {"type": "integer"},
            "kind": {"type": "string", "enum": ["fetch", "check"]},
            "requester": {"type": "string"}, "staff_id": {"type": "string"},
            "staff_role": {"type": "string"}, "service_item": {"type": "string"},
            "case": {"type": "string"}, "purpose": {"type": "string"}, "types": text_list,
            "certificates": text_list,
            "consent": {**nullable, "description": "a consent id, \"by statute\", or null"},
            "outcome": {"type": "string", "enum": ["granted", "refused"]},
            "problem": nullable, "request_hash": {"type": "string"},
            "response_hash": nullable}}
    return {
        "ConsentGrant": {
            "type": "object", "additionalProperties": False,
            "required": ["to", "types", "purpose"],
            "properties": {
                "to": {"type": "string", "description": "REGION/agency-code"},
                "types": {"type": "array", "items": _CODE, "minItems": 1},
                "purpose": {**_TEXT, "maxLength": MAX_PURPOSE},
                "ttl": {"type": "integer", "minimum": 60, "maximum": 30 * 86400,
                        "default": 3600, "description": "seconds"}}},
        "ConsentCode": {"type": "object", "required": ["id", "code", "expires_at"],
                        "properties": {"id": {"type": "string"},
                                       "code": {"type": "string",
                                                "pattern": "^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$"},
                                       "expires_at": {"type": "integer"}}},
        "Consents": {"type": "object", "required": ["items"],
                     "properties": {"items": {"type": "array", "items": consent}}},
        "UsePage": {"type": "object", "required": ["items", "more", "next"],
                    "properties": {"items": {"type": "array", "items": use},
                                   "more": {"type": "boolean"}, "next": nullable}},
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the sharing service."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "ecert sharing service", "version": "1",
                 "description": "Requests are signed with the requesting agency's requester "
                                "key (HTTP Message Signatures, RFC 9421); see "
                                "docs/format.md and docs/sharing-api.md."},
        "paths": {
            "/v1/copies": _operation(
                "Fetch a holder's certificates as purpose-bound copies", "ShareRequest",
                "The copies (possibly none)", "Copies", _LOG_INDEX),
            "/v1/checks": _operation(
                "Check (核验) whether values match a valid certificate", "CheckRequest",
                "Whether they match", "CheckResult"),
            **_holder_paths(),
        },
        "components": {"securitySchemes": {"holderBearer": {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "The holder's channel: what the deployment's identity hook "
                           "accepts (the OIDC example: an ID token of the IdP)"}},
        "schemas": {
            **_holder_schemas(),
            "ShareRequest": {
                "type": "object", "additionalProperties": False,
                "required": ["holder_id", "types", *_CONTEXT_REQUIRED],
                "properties": {
                    "holder_id": {**_TEXT, "maxLength": MAX_FIELD},
                    "types": {"type": "array", "items": _CODE, "minItems": 1,
                              "maxItems": MAX_TYPES, "uniqueItems": True},
                    **_context(),
                },
            },
            "CheckRequest": {
                "type": "object", "additionalProperties": False,
                "required": ["type", "values", *_CONTEXT_REQUIRED],
                "properties": {
                    "type": _CODE,
                    "values": {"type": "object", "minProperties": 1,
                               "maxProperties": MAX_VALUES,
                               "anyOf": [{"required": [key]} for key in CHECK_KEYS],
                               "additionalProperties": {**_TEXT, "maxLength": MAX_FIELD * 10}},
                    **_context(),
                },
            },
            "Copies": {"type": "object", "required": ["copies"], "properties": {
                "copies": {"type": "array", "items": {
                    "type": "object", "required": ["token"], "properties": {
                        "token": {"type": "string",
                                  "description": "compact JWS, typ ecert-copy+jwt"}}}}}},
            "CheckResult": {"type": "object", "required": ["match"],
                            "properties": {"match": {"type": "boolean"}}},
            "Problem": {
                "type": "object", "required": ["type", "title", "status", "code"],
                "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"},
                    "status": {"type": "integer"}, "detail": {"type": "string"},
                    "code": {"type": "string", "enum": list(PROBLEMS)},
                },
            },
        }},
    }


if __name__ == "__main__":  # python -m ecert.sharing._openapi > docs/sharing-openapi.json
    import json

    print(json.dumps(openapi_document(), ensure_ascii=False, indent=1))
