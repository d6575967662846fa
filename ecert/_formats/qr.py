"""The QR container (``EC1:``) and the QR token payload (``typ: ecert-qr+jwt``).

A QR code carries a standard compact JWS in a compact binary container written in
base45 (RFC 9285) after the prefix ``EC1:``, so the whole text is QR alphanumeric:
a certificate's QR token (``ecert-qr+jwt``, signed by the agency key) or a
purpose-bound copy (``ecert-copy+jwt``, signed by a sharing key: the copy token itself,
whose plain form is too long for a printable code). Unwrapping rebuilds the exact
compact JWS, byte for byte; after that any JOSE library verifies it with the published
JWKS.

Container (version 1), all integers big-endian::

    flags      1 byte   bits 0-1: alg (0 ES256, 1 Ed25519); bit 2: body is raw deflate;
                        bit 3: the JWS is a copy (typ ecert-copy+jwt); bits 4-7: zero
    kid ref    4 bytes  first 4 bytes of the kid (the key's RFC 7638 thumbprint);
                        the verifier resolves it through its trust lists
    signature  64 bytes the raw JWS signature (R||S for ES256)
    body       rest     the JWS payload, a JSON value, in the compact value encoding
                        below, raw-deflated when that is shorter

The header is rebuilt as ``{"alg":A,"kid":K,"typ":T}`` (pyjwt's sorted, compact
serialization; ``T`` is ``ecert-qr+jwt``, or ``ecert-copy+jwt`` with bit 3) and the
payload as the canonical JSON of the decoded value.

Value encoding: a CBOR-like head (3-bit major type, 5-bit argument; 24/25/26/27 mean a
1/2/4/8-byte argument follows, minimal length required) with these major types:
0 unsigned integer, 1 negative integer (-1-n), 2 text that is canonical base64url,
stored as its bytes, 3 UTF-8 text, 4 array, 5 object (key, value, ...; keys sorted as
canonical JSON sorts them), 6 GB18030 text (only CJK, ASCII and CJK punctuation:
Chinese costs 2 bytes a character instead of 3), 7 simple: 20 false, 21 true, 22
null, 27 float64, 0-19 a back-reference to the n-th text seen (24: index in the
next byte). Texts of 2 characters or more are remembered in order of appearance.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ecert._formats.bundle import STATUS_DIR, status_list_uri
from ecert._formats.copy import COPY_TYP
from ecert._formats.jose import (
    ED25519,
    ES256,
    TEXT_ONLY,
    SignerLike,
    b64url_decode,
    b64url_encode,
    canonical_json,
    plain_json_length,
    sign_compact,
    strict_json_loads,
)
from ecert.errors import FormatError

QR_TYP = "ecert-qr+jwt"
CONTAINER_VERSION = 1
PREFIX = "EC1:"
#: Bytes of SHA-256 kept in the QR to bind the full certificate token (see docs/qr.md).
DIGEST_BYTES = 16
#: Ceiling on a decoded (inflated) body: far above what any QR code holds (2953 bytes).
MAX_BODY_BYTES = 4096
#: Ceiling on QR text accepted for decoding.
MAX_QR_TEXT = 4400
KID_REF_BYTES = 4
SIGNATURE_BYTES = 64
_ALG_CODES = {ES256: 0, ED25519: 1}
_ALGS = {v: k for k, v in _ALG_CODES.items()}
_FLAG_DEFLATE = 0b100
_FLAG_COPY = 0b1000
#: The JWS types a container holds: a certificate's QR token, or a purpose-bound copy.
CONTAINER_TYPS = (QR_TYP, COPY_TYP)
_PREFIX_RE = re.compile(r"EC([0-9]{1,3}):")


class QrFormatError(FormatError):
    """A QR text that cannot be unwrapped (``code`` says why)."""


# -- base45 (RFC 9285) -----------------------------------------------------------------------

BASE45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_B45 = {c: i for i, c in enumerate(BASE45_ALPHABET)}


def _encode_pairs(data: bytes, alphabet: str) -> str:
    """Two bytes in three characters of ``alphabet`` (radix 45 or 43), a last byte in two."""
    radix = len(alphabet)
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        c, n = divmod(n, radix * radix)
        e, d = divmod(n, radix)
        out += (alphabet[d], alphabet[e], alphabet[c])
    if len(data) % 2:
        e, d = divmod(data[-1], radix)
        out += (alphabet[d], alphabet[e])
    return "".join(out)


def _decode_pairs(text: str, values_of: dict[str, int], name: str) -> bytes:
    """The inverse of :func:`_encode_pairs`, strictly: other characters, a dangling
    character and groups that overflow are refused, so every byte string has one text."""
    radix = len(values_of)
    if len(text) % 3 == 1:
        raise QrFormatError(f"{name} text has a dangling character", code="qr_malformed")
    try:
        values = [values_of[c] for c in text]
    except KeyError as e:
        raise QrFormatError(f"{e.args[0]!r} is not a {name} character",
                            code="qr_malformed") from None
    out = bytearray()
    for i in range(0, len(values), 3):
        chunk = values[i:i + 3]
        n = chunk[0] + chunk[1] * radix + (chunk[2] * radix * radix if len(chunk) == 3 else 0)
        if len(chunk) == 3:
            if n > 0xFFFF:
                raise QrFormatError(f"{name} triple exceeds 65535", code="qr_malformed")
            out += n.to_bytes(2, "big")
        else:
            if n > 0xFF:
                raise QrFormatError(f"{name} pair exceeds 255", code="qr_malformed")
            out.append(n)
    return bytes(out)


def b45encode(data: bytes) -> str:
    """Base45 of ``data`` (RFC 9285)."""
    return _encode_pairs(data, BASE45_ALPHABET)


def b45decode(text: str) -> bytes:
    """Strict base45: refuses other characters, a dangling character and overflows."""
    return _decode_pairs(text, _B45, "base45")


# -- the verification link (base43) ---------------------------------------------------------

#: Base45 without space and ``%``: what a link's fragment carries (section 14.1).
BASE43_ALPHABET = BASE45_ALPHABET.replace(" ", "").replace("%", "")
_B43 = {c: i for i, c in enumerate(BASE43_ALPHABET)}


def b43encode(data: bytes) -> str:
    """Like :func:`b45encode` over :data:`BASE43_ALPHABET`: 43**3 > 65535 and 43**2 > 255,
    so two bytes still take three characters (the text as long as base45's), and every
    character is QR alphanumeric and needs no escaping in a URL's fragment."""
    return _encode_pairs(data, BASE43_ALPHABET)


def b43decode(text: str) -> bytes:
    """Strict base43: other characters, a dangling character and overflows are refused."""
    return _decode_pairs(text, _B43, "base43")


def to_link_fragment(text: str) -> str:
    """The fragment of a verification link for QR text: ``EC1:`` + base43 of the container."""
    match = _PREFIX_RE.match(text)
    if match is None:
        raise QrFormatError("not an ecert QR code (no EC1: prefix)", code="qr_malformed")
    return match.group(0) + b43encode(b45decode(text[match.end():]))


def from_link_fragment(fragment: str) -> str:
    """The QR text a verification link's fragment carries (the inverse of
    :func:`to_link_fragment`); raises :class:`QrFormatError` ``qr_malformed``."""
    match = _PREFIX_RE.match(fragment)
    if match is None or len(fragment) > MAX_QR_TEXT:
        raise QrFormatError("not the fragment of an ecert verification link",
                            code="qr_malformed")
    return match.group(0) + b45encode(b43decode(fragment[match.end():]))


# -- value encoding --------------------------------------------------------------------------

_GB_OK = re.compile(r"[\x20-\x7e\u3000-\u303f\u4e00-\u9fff\uff01-\uff5e]*")


def _head(major: int, arg: int) -> bytes:
    if arg < 24:
        return bytes([major << 5 | arg])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if arg < 1 << (8 * size):
            return bytes([major << 5 | extra]) + arg.to_bytes(size, "big")
    raise FormatError("integer too large for a QR payload", code="qr_unencodable")


def _is_b64url_bytes(text: str) -> bool:
    if len(text) < 16 or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        return False
    try:
        return b64url_encode(b64url_decode(text)) == text
    except FormatError:
        return False


class _Encoder:
    def __init__(self) -> None:
        self.out = bytearray()
        self.texts: dict[str, int] = {}

    def value(self, v: Any) -> None:
        out = self.out
        if v is None:
            out.append(0xE0 | 22)
        elif v is True or v is False:
            out.append(0xE0 | (21 if v else 20))
        elif isinstance(v, int):
            out += _head(0, v) if v >= 0 else _head(1, -1 - v)
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise FormatError("non-finite number", code="qr_unencodable")
            out.append(0xE0 | 27)
            out += struct.pack(">d", v)
        elif isinstance(v, str):
            self.text(v)
        elif isinstance(v, list | tuple):
            out += _head(4, len(v))
            for item in v:
                self.value(item)
        elif isinstance(v, dict):
            out += _head(5, len(v))
            for key in sorted(v):
                if not isinstance(key, str):
                    raise FormatError("object keys are text", code="qr_unencodable")
                self.text(key)
                self.value(v[key])
        else:
            raise FormatError(f"cannot encode {type(v).__name__}", code="qr_unencodable")

    def text(self, s: str) -> None:
        out = self.out
        index = self.texts.get(s)
        if index is not None:
            out += bytes([0xE0 | index]) if index < 20 else bytes([0xE0 | 24, index])
            return
        if len(s) >= 2 and len(self.texts) < 256:
            self.texts[s] = len(self.texts)
        if _is_b64url_bytes(s):
            raw = b64url_decode(s)
            out += _head(2, len(raw)) + raw
            return
        utf8 = s.encode("utf-8")
        if _GB_OK.fullmatch(s):
            gb = s.encode("gb18030")
            if len(gb) < len(utf8):
                out += _head(6, len(gb)) + gb
                return
        out += _head(3, len(utf8)) + utf8


def encode_value(value: Any) -> bytes:
    """The compact encoding of a JSON value."""
    encoder = _Encoder()
    encoder.value(value)
    return bytes(encoder.out)


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.texts: list[str] = []
        self.depth = 0

    def _take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise QrFormatError("QR payload is truncated", code="qr_malformed")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def _arg(self, info: int) -> int:
        if info < 24:
            return info
        if info > 27:
            raise QrFormatError("reserved length in QR payload", code="qr_malformed")
        size = 1 << (info - 24)
        arg = int.from_bytes(self._take(size), "big")
        if arg < (24 if size == 1 else 1 << (4 * size)):
            raise QrFormatError("non-minimal length in QR payload", code="qr_malformed")
        return arg

    def value(self) -> Any:
        initial = self._take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self._simple(info)
        arg = self._arg(info)
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major in (2, 3, 6):
            return self._text(major, arg)
        self.depth += 1
        if self.depth > 16:
            raise QrFormatError("QR payload nests too deeply", code="qr_malformed")
        if arg > len(self.data) - self.pos:
            raise QrFormatError("QR payload is truncated", code="qr_malformed")
        result: Any
        if major == 4:
            result = [self.value() for _ in range(arg)]
        else:
            result = {}
            previous: str | None = None
            for _ in range(arg):
                key = self.value()
                if not isinstance(key, str):
                    raise QrFormatError("object keys are text", code="qr_malformed")
                if previous is not None and key <= previous:
                    raise QrFormatError("object keys are not sorted", code="qr_malformed")
                previous = key
                result[key] = self.value()
        self.depth -= 1
        return result

    def _simple(self, info: int) -> Any:
        if info < 20 or info == 24:
            index = info if info < 20 else self._take(1)[0]
            if info == 24 and index < 20:
                raise QrFormatError("non-minimal back-reference", code="qr_malformed")
            if index >= len(self.texts):
                raise QrFormatError("back-reference to an unseen text", code="qr_malformed")
            return self.texts[index]
        if info in (20, 21):
            return info == 21
        if info == 22:
            return None
        if info == 27:
            value = struct.unpack(">d", self._take(8))[0]
            if not math.isfinite(value):
                raise QrFormatError("number not allowed in QR payload", code="qr_malformed")
            return value
        raise QrFormatError("unknown simple value in QR payload", code="qr_malformed")

    def _text(self, major: int, length: int) -> str:
        raw = self._take(length)
        try:
            if major == 2:
                text = b64url_encode(raw)
                if len(text) < 16:
                    raise QrFormatError("short base64url text", code="qr_malformed")
            elif major == 3:
                text = raw.decode("utf-8")
            else:
                text = raw.decode("gb18030")
                if not _GB_OK.fullmatch(text) or len(text.encode("utf-8")) <= len(raw):
                    raise QrFormatError("GB18030 text out of range", code="qr_malformed")
        except UnicodeDecodeError as e:
            raise QrFormatError("bad text in QR payload", code="qr_malformed") from e
        if len(text) >= 2 and len(self.texts) < 256:
            if text in self.texts:
                raise QrFormatError("repeated text not back-referenced", code="qr_malformed")
            self.texts.append(text)
        return text


def decode_value(data: bytes) -> Any:
    """Decode :func:`encode_value` output strictly (one value, nothing after it)."""
    decoder = _Decoder(data)
    value = decoder.value()
    if decoder.pos != len(data):
        raise QrFormatError("trailing bytes after the QR payload", code="qr_malformed")
    return value


# -- deflate ---------------------------------------------------------------------------------


def deflate(data: bytes) -> bytes:
    """Raw deflate (RFC 1951), best compression."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return compressor.compress(data) + compressor.flush()


def inflate(data: bytes, limit: int = MAX_BODY_BYTES) -> bytes:
    """Raw inflate that stops at ``limit`` output bytes: a deflate bomb is refused."""
    decompressor = zlib.decompressobj(-15)
    try:
        out = decompressor.decompress(data, limit)
        if decompressor.unconsumed_tail:
            raise QrFormatError(f"QR body inflates past {limit} bytes", code="qr_too_large")
        out += decompressor.flush(limit)
    except zlib.error as e:
        raise QrFormatError("QR body is not valid deflate data", code="qr_malformed") from e
    if not decompressor.eof or decompressor.unused_data or len(out) > limit:
        raise QrFormatError("QR body deflate stream is incomplete or has trailing data",
                            code="qr_malformed")
    return out


# -- container -------------------------------------------------------------------------------


class Unwrapped(NamedTuple):
    """A decoded container: everything but the full kid, which the verifier resolves."""

    alg: str
    kid_ref: bytes
    signature: bytes
    payload: bytes  #: canonical JSON, exactly the signed JWS payload
    #: The JWS's ``typ``: ``ecert-qr+jwt``, or ``ecert-copy+jwt`` for a copy.
    typ: str = QR_TYP

    def compact(self, kid: str) -> str:
        """The compact JWS with ``kid`` (which must start with ``kid_ref``)."""
        header = canonical_json({"alg": self.alg, "kid": kid, "typ": self.typ})
        return ".".join((b64url_encode(header), b64url_encode(self.payload),
                         b64url_encode(self.signature)))


def kid_ref(kid: str) -> bytes:
    """The container's reference to ``kid``: its first bytes."""
    try:
        return b64url_decode(kid)[:KID_REF_BYTES]
    except FormatError:
        return kid.encode("utf-8", "replace")[:KID_REF_BYTES]


def is_qr_text(text: str) -> bool:
    """Whether ``text`` looks like an ecert QR container (any version)."""
    return bool(_PREFIX_RE.match(text))


def wrap(token: str) -> str:
    """``EC1:`` + base45 of the container of a QR token or a purpose-bound copy (a
    compact JWS made by ecert: canonical header and payload)."""
    try:
        h, p, s = token.split(".")
        header = strict_json_loads(b64url_decode(h))
        payload_bytes = b64url_decode(p)
        signature = b64url_decode(s)
    except ValueError as e:
        raise FormatError("not a compact JWS", code="malformed") from e
    payload = strict_json_loads(payload_bytes)
    if not isinstance(header, dict) or set(header) != {"alg", "kid", "typ"} \
            or header["typ"] not in CONTAINER_TYPS or header["alg"] not in _ALG_CODES \
            or not isinstance(header["kid"], str):
        raise FormatError("not the header of an ecert QR token or copy",
                          code="qr_unencodable")
    if canonical_json(payload) != payload_bytes or len(signature) != SIGNATURE_BYTES:
        raise FormatError("QR token payload is not canonical JSON", code="qr_unencodable")
    unwrapped = Unwrapped(header["alg"], kid_ref(header["kid"]), signature, payload_bytes,
                          header["typ"])
    if unwrapped.compact(header["kid"]) != token:
        raise FormatError("QR token header is not in canonical form", code="qr_unencodable")
    body = encode_value(payload)
    flags = _ALG_CODES[header["alg"]] | (_FLAG_COPY if header["typ"] == COPY_TYP else 0)
    packed = deflate(body)
    if len(packed) < len(body):
        body, flags = packed, flags | _FLAG_DEFLATE
    container = bytes([flags]) + unwrapped.kid_ref + signature + body
    return PREFIX + b45encode(container)


def unwrap(text: str) -> Unwrapped:
    """Decode QR text into its parts; the payload is the exact signed bytes."""
    if not isinstance(text, str):
        raise QrFormatError("QR text must be text", code="qr_malformed")
    if len(text) > MAX_QR_TEXT:
        raise QrFormatError("QR text is too long", code="too_large")
    match = _PREFIX_RE.match(text)
    if match is None:
        raise QrFormatError("not an ecert QR code (no EC1: prefix)", code="qr_malformed")
    if match.group(1) != str(CONTAINER_VERSION):
        raise QrFormatError(f"QR container version {match.group(1)} is not supported "
                            f"(this verifier reads version {CONTAINER_VERSION})",
                            code="qr_unknown_version")
    data = b45decode(text[match.end():])
    head = 1 + KID_REF_BYTES + SIGNATURE_BYTES
    if len(data) <= head:
        raise QrFormatError("QR container is truncated", code="qr_malformed")
    flags = data[0]
    if flags & ~(_FLAG_COPY | _FLAG_DEFLATE | 0b11) or (flags & 0b11) not in _ALGS:
        raise QrFormatError("QR container has unknown flags", code="qr_malformed")
    body = data[head:]
    if flags & _FLAG_DEFLATE:
        body = inflate(body)
    value = decode_value(body)
    try:
        payload = canonical_json(value)
    except ValueError as e:  # pragma: no cover - decode_value yields JSON values
        raise QrFormatError("QR payload is not JSON", code="qr_malformed") from e
    return Unwrapped(_ALGS[flags & 0b11], data[1:1 + KID_REF_BYTES],
                     data[1 + KID_REF_BYTES:head], payload,
                     COPY_TYP if flags & _FLAG_COPY else QR_TYP)


# -- the QR token payload --------------------------------------------------------------------


def token_digest(token: str) -> str:
    """The digest binding a certificate token: SHA-256 of its payload bytes, truncated."""
    return payload_digest(b64url_decode(token.split(".")[1]))


def payload_digest(payload: bytes) -> str:
    """:func:`token_digest` of a token whose payload bytes are ``payload``."""
    return b64url_encode(hashlib.sha256(payload).digest()[:DIGEST_BYTES])


def _status_ref(uri: str, base_url: str) -> int | str:
    prefix = f"{base_url}/{STATUS_DIR}/"
    rest = uri[len(prefix):-len(".jwt")] if uri.startswith(prefix) and uri.endswith(
        ".jwt") else ""
    if rest.isdigit() and rest.isascii() and str(int(rest)) == rest:
        return int(rest)
    return uri


def status_uri(ref: int | str, base_url: str) -> str:
    """The status list URI a QR payload refers to."""
    return status_list_uri(base_url, ref) if isinstance(ref, int) else ref


def qr_payload(token_payload: Mapping[str, Any], token: str, qr_claims: Sequence[str],
               base_url: str, signed_at: int, *, full: bool = False,
               digest: str | None = None) -> dict[str, Any]:
    """The QR token payload for a certificate token (already verified by the caller).

    Keys: ``t`` type, ``v`` type version, ``r`` region, ``n`` serial (``w`` id version when
    not 001), ``i`` iat, ``f`` nbf (when not iat), ``e`` exp, ``a`` when the QR was
    signed, ``s`` [status list number or URI, index], ``c`` claims (the type's
    ``qr_claims``, or all with ``full``), ``h`` holder name, ``d`` digest of the full
    token (``digest`` when the caller has it already), ``x`` 1 when every claim is present.
    """
    jti = str(token_payload["jti"])
    parts = jti.split(".")
    serial, version = parts[-3], parts[-2]
    claims = dict(token_payload["claims"])
    chosen = claims if full else {n: claims[n] for n in qr_claims if n in claims}
    status = token_payload["status"]["status_list"]
    payload: dict[str, Any] = {
        "t": token_payload["vct"], "v": token_payload["vct_version"],
        "r": token_payload["region"], "n": serial, "i": token_payload["iat"],
        "a": signed_at, "s": [_status_ref(status["uri"], base_url), status["idx"]],
        "c": chosen, "h": token_payload["holder_name"],
        "d": token_digest(token) if digest is None else digest,
    }
    if version != "001":
        payload["w"] = version
    if token_payload["nbf"] != token_payload["iat"]:
        payload["f"] = token_payload["nbf"]
    if token_payload.get("exp") is not None:
        payload["e"] = token_payload["exp"]
    if full or set(chosen) == set(claims):
        payload["x"] = 1
    return payload


def probe_text(payload: Mapping[str, Any], alg: str, kid: str) -> str:
    """The QR text a QR token with ``payload`` will have, without signing it.

    Signatures have a fixed size (64 bytes for ES256 and Ed25519), so a zero signature
    gives the exact length. The text is unwrapped again and must give back the payload
    byte for byte: issuance uses this to refuse a certificate whose QR could not be
    printed and read (``qr_unencodable``).
    """
    body = canonical_json(dict(payload))
    header = canonical_json({"alg": alg, "kid": kid, "typ": QR_TYP})
    token = ".".join((b64url_encode(header), b64url_encode(body),
                      b64url_encode(bytes(SIGNATURE_BYTES))))
    text = wrap(token)
    if unwrap(text).payload != body:
        raise FormatError("the QR code would not read back as signed", code="qr_unencodable")
    return text


def probe_length_bound(payload: Mapping[str, Any]) -> int | None:
    """An upper bound of ``len(probe_text(payload, …))`` from canonical JSON alone, or
    None where no bound is given (a float, an integer beyond 64 bits, nesting deeper
    than four levels: the caller then computes the exact length).

    The compact encoding of such a value is at most its canonical JSON plus one byte per
    string of 256 UTF-8 bytes or more: a null, boolean or integer head is no longer than
    its digits; a string's head (one byte below 24 bytes, two below 256, three below
    65,536) against its two quotes, and GB 18030, byte-string and back-reference forms
    are used only when shorter; an array's or object's head no longer than its brackets.
    Deflate is used only when it is shorter. So the QR text is at most ``EC1:`` plus the
    base45 of flags, kid reference, signature and that many bytes. Such values also read
    back as they were (the probe's other check). For batch issuance, where the exact
    probe costs ten bare signatures per certificate.
    """
    def extra(members: Any, depth: int) -> int | None:
        # The bytes a string, integer or container head may take beyond its JSON, summed
        # over ``members``; None where no bound is given.
        total = 0
        for item in members:
            kind = type(item)
            if kind is str:
                if len(item) >= 64:  # at most 4 UTF-8 bytes a character
                    if len(item) >= 16_384:
                        return None
                    total += 1  # a head of 3 bytes against 2 quotes
            elif item is None or kind is bool:
                pass
            elif kind is int:
                if not -(1 << 63) <= item < (1 << 63):
                    return None
            elif kind is dict:
                if depth >= 3 or (item and not TEXT_ONLY.issuperset(map(type, item))):
                    return None
                more = extra(item, depth + 1)  # the keys
                if more is None:
                    return None
                values = extra(item.values(), depth + 1)
                if values is None:
                    return None
                total += more + values
            elif kind is list:
                if depth >= 3:
                    return None
                more = extra(item, depth + 1)
                if more is None:
                    return None
                total += more
            else:
                return None
        return total

    if payload and not TEXT_ONLY.issuperset(map(type, payload)):
        return None
    keys = extra(payload, 0)
    values = extra(payload.values(), 0)
    if keys is None or values is None:
        return None
    # Plain values only (checked above: exact types, 64-bit integers, shallow), so the
    # canonical JSON's length is that of any compact JSON of them: no sorting needed.
    size = 1 + KID_REF_BYTES + SIGNATURE_BYTES + plain_json_length(payload) + keys + values
    return len(PREFIX) + size // 2 * 3 + (2 if size % 2 else 0)


def sign_qr_token(payload: Mapping[str, Any], signer: SignerLike) -> str:
    """Sign a QR payload as a compact JWS ``{alg, kid, typ: "ecert-qr+jwt"}``."""
    return sign_compact(payload, signer, QR_TYP)


class QrClaims(NamedTuple):
    """A decoded QR token payload (shape checked; meaning checked by the verifier)."""

    vct: str
    vct_version: int
    region: str
    serial: str
    id_version: str
    iat: int
    nbf: int
    exp: int | None
    signed_at: int
    status_ref: int | str
    status_index: int
    claims: dict[str, Any]
    holder_name: str
    digest: str
    complete: bool


def read_qr_payload(payload: Mapping[str, Any]) -> QrClaims:
    """Check the shape of a QR token payload."""
    get = payload.get

    def is_int(v: Any) -> bool:
        return type(v) is int and 0 <= v <= 253_402_300_799

    status: Any = get("s")
    ok = (
        isinstance(get("t"), str) and is_int(get("v")) and isinstance(get("r"), str)
        and isinstance(get("n"), str) and isinstance(get("w", "001"), str)
        and is_int(get("i")) and is_int(get("f", 0)) and (get("e") is None or is_int(get("e")))
        and is_int(get("a")) and isinstance(status, list) and len(status) == 2
        and (is_int(status[0]) or isinstance(status[0], str)) and is_int(status[1])
        and isinstance(get("c"), dict) and isinstance(get("h"), str)
        and isinstance(get("d"), str) and get("x", 1) == 1
        and set(payload) <= set("tvrnwifeascdhx")
    )
    if not ok:
        raise FormatError("QR token claims have the wrong shape", code="bad_claims")
    return QrClaims(
        vct=payload["t"], vct_version=payload["v"], region=payload["r"], serial=payload["n"],
        id_version=get("w", "001"), iat=payload["i"], nbf=get("f", payload["i"]),
        exp=get("e"), signed_at=payload["a"], status_ref=status[0], status_index=status[1],
        claims=dict(payload["c"]), holder_name=payload["h"], digest=payload["d"],
        complete="x" in payload,
    )


def parse_token_payload(token: str) -> dict[str, Any]:
    """The decoded payload of a compact JWS (no checks beyond strict JSON)."""
    value = strict_json_loads(b64url_decode(token.split(".")[1]))
    if not isinstance(value, dict):
        raise FormatError("payload is not an object", code="malformed")
    return value


__all__ = [
    "BASE43_ALPHABET",
    "CONTAINER_TYPS",
    "CONTAINER_VERSION",
    "PREFIX",
    "QR_TYP",
    "QrClaims",
    "QrFormatError",
    "Unwrapped",
    "b43decode",
    "b43encode",
    "b45decode",
    "b45encode",
    "decode_value",
    "encode_value",
    "from_link_fragment",
    "inflate",
    "is_qr_text",
    "payload_digest",
    "probe_length_bound",
    "probe_text",
    "qr_payload",
    "read_qr_payload",
    "sign_qr_token",
    "status_uri",
    "to_link_fragment",
    "token_digest",
    "unwrap",
    "wrap",
]
