"""Token surgery: compact JWS built from exactly the bytes a hostile case needs.

Issuers serialize canonically (:func:`ecert._formats.jose.sign_compact`); a hostile token
may need a header or payload that is not canonical, not JSON, or not even base64url, so
these helpers take texts and bytes as they are and sign what they are given.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from ecert._formats import qr as _qr
from ecert._formats.jose import SignerLike, b64url_decode, b64url_encode


def encode(value: Any) -> str:
    """base64url of a JSON value written plainly (``json.dumps``: not canonical)."""
    return b64url_encode(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def signed(header: str | dict[str, Any], payload: str | dict[str, Any],
           sign: SignerLike | Callable[[bytes], bytes]) -> str:
    """A compact JWS over exactly ``header`` and ``payload`` (JSON texts, or values
    written with :func:`encode`), signed by ``sign`` (a signer, or a function)."""
    h = b64url_encode(header.encode("utf-8")) if isinstance(header, str) else encode(header)
    p = b64url_encode(payload.encode("utf-8")) if isinstance(payload, str) else encode(payload)
    signing_input = f"{h}.{p}".encode("ascii")
    signature = sign(signing_input) if callable(sign) else sign.sign(signing_input)
    return f"{h}.{p}.{b64url_encode(signature)}"


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Header, payload and signature of a well-formed compact JWS."""
    h, p, s = token.split(".")
    header, payload = json.loads(b64url_decode(h)), json.loads(b64url_decode(p))
    assert isinstance(header, dict) and isinstance(payload, dict)  # noqa: S101 - ours
    return header, payload, b64url_decode(s)


def with_signature(token: str, signature: bytes) -> str:
    """``token`` with its signature replaced."""
    h, p, _ = token.split(".")
    return f"{h}.{p}.{b64url_encode(signature)}"


def with_payload_text(token: str, payload: str) -> str:
    """``token`` with its payload replaced by ``payload`` (base64url of those bytes)."""
    h, _, s = token.split(".")
    return f"{h}.{b64url_encode(payload.encode('utf-8'))}.{s}"


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def non_canonical_tail(text: str) -> str:
    """``text`` (base64url of 3n+1 bytes) with its last character changed in its unused
    bits only: the same bytes, spelled in a way strict decoders refuse."""
    return text[:-1] + _ALPHABET[_ALPHABET.index(text[-1]) ^ 1]


def hs256(secret: bytes) -> Callable[[bytes], bytes]:
    """An HMAC-SHA256 "signature" under ``secret`` (the alg confusion attack)."""
    return lambda message: hmac.new(secret, message, hashlib.sha256).digest()


def container(text: str) -> bytes:
    """The container bytes of QR text ``EC1:…``."""
    return _qr.b45decode(text[len(_qr.PREFIX):])


def qr_text(data: bytes) -> str:
    """QR text around container bytes."""
    return _qr.PREFIX + _qr.b45encode(data)


def deflate_bomb(flags: int, kid_ref: bytes, size: int) -> str:
    """QR text whose body inflates to ``size`` zero bytes."""
    body = _qr.deflate(bytes(size))
    return qr_text(bytes([flags | 0b100]) + kid_ref + bytes(_qr.SIGNATURE_BYTES) + body)
