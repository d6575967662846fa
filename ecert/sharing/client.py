"""The requesting side: sign a sharing request and send it (stdlib only, no extra needed).

Used by ``ecert share fetch``: the agency's requester key signs each request (a
:class:`ecert.keys.Signer`, so an HSM can hold it); the answer is the decoded JSON, or the
:class:`~ecert._formats.sharing.Problem` the service refused with.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from ecert._clock import Clock, now_seconds, system_clock
from ecert._formats import httpsig
from ecert._formats.jose import SignerLike, strict_json_loads
from ecert._formats.sharing import (
    LOG_INDEX_HEADER,
    PROBLEM_MEDIA_TYPE,
    REQUEST_MEDIA_TYPE,
    CheckRequest,
    Problem,
    ShareRequest,
    requester_keyid,
)
from ecert._formats.url import check_http_url
from ecert.errors import FormatError

#: The most a client reads of an answer, in bytes (a few copies are a few KiB each).
MAX_ANSWER_BYTES = 4 * 1024 * 1024


def new_nonce() -> str:
    """A fresh nonce: 128 random bits, base64url."""
    return secrets.token_urlsafe(16)


def signed_headers(url: str, body: bytes, signer: SignerLike, requester: str, *,
                   clock: Clock = system_clock, nonce: str | None = None
                   ) -> list[tuple[str, str]]:
    """The header fields that sign a ``POST`` of ``body`` to ``url`` as ``requester``
    (``REGION/agency-code``, whose trust list publishes the signer's key)."""
    return httpsig.sign_request(
        method="POST", url=url, body=body, content_type=REQUEST_MEDIA_TYPE, signer=signer,
        created=now_seconds(clock), nonce=nonce or new_nonce(),
        keyid=requester_keyid(requester, signer.kid))


@dataclass(frozen=True, slots=True)
class Answer:
    """A service's answer: ``value`` (the JSON of a 200) or ``problem``.

    ``body`` is the answer's bytes as received: for granted copies, its SHA-256 is the
    ``response_hash`` of the serving registry's use record (format section 15.14), so a
    requester can keep what it was given and prove it later.
    """

    status: int
    value: dict[str, Any] | None = None
    problem: Problem | None = None
    body: bytes = b""
    #: For granted copies: the log index of the serving registry's use record entry,
    #: which commits to each copy's hash (``ecert verify --require-inclusion``).
    log_index: int | None = None


def send(url: str, request: ShareRequest | CheckRequest, signer: SignerLike, requester: str,
         *, clock: Clock = system_clock, timeout: float = 30.0) -> Answer:
    """Sign ``request`` and ``POST`` it to ``url`` (the service's ``/v1/copies`` or
    ``/v1/checks``). Raises :class:`FormatError` for an answer that is neither."""
    check_http_url(url)  # http(s) only: never file: or another scheme
    body = request.to_json()
    headers = dict(signed_headers(url, body, signer, requester, clock=clock))
    http_request = urllib.request.Request(  # noqa: S310 -- checked above
        url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(http_request, timeout=timeout) as response:  # noqa: S310
            status, media_type = response.status, response.headers.get_content_type()
            index = response.headers.get(LOG_INDEX_HEADER)
            data = response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as e:
        status, media_type, index = e.code, e.headers.get_content_type(), None
        data = e.read(MAX_ANSWER_BYTES + 1)
    if len(data) > MAX_ANSWER_BYTES:
        raise FormatError("the service's answer is too large", code="too_large")
    if status == 200 and media_type == "application/json":
        value = strict_json_loads(data)
        if not isinstance(value, dict):
            raise FormatError("the service's answer is not a JSON object", code="malformed")
        # Only a locator (the entry itself proves the binding): anything but a number is
        # no index.
        log_index = int(index) if isinstance(index, str) and index.isascii() \
            and index.isdigit() and len(index) <= 19 else None
        return Answer(status, value=value, body=data, log_index=log_index)
    if media_type == PROBLEM_MEDIA_TYPE:
        return Answer(status, problem=Problem.from_json(data), body=data)
    raise FormatError(f"the service answered {status} {media_type}: "
                      f"{json.dumps(data[:100].decode('utf-8', 'replace'))}", code="malformed")
