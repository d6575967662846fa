"""JOSE primitives: the only module that touches pyjwt and raw signature checks.

* The algorithm allow-list is pinned here (ES256, Ed25519 per RFC 9864); a token's
  ``alg`` is only ever looked up in it, never trusted to choose a key type.
* Signing goes through :class:`ecert.keys.Signer`, so an HSM or KMS can replace file
  keys: pyjwt serializes the compact JWS and calls back into the signer through the
  algorithms registered on a private :class:`jwt.PyJWS` instance.
* Verification parses compact JWS strictly (canonical base64url, no duplicate JSON
  members, bounded size and depth) and checks signatures with ``cryptography`` directly:
  it is the hot path of every verifier.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import Algorithm

from ecert.errors import FormatError

try:  # optional (extra "audit"): the same verdicts as the stdlib, several times faster
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by the verifier-only install
    _orjson = None  # type: ignore[assignment]

ES256 = "ES256"
ED25519 = "Ed25519"
#: Signature algorithms ecert accepts. Never ``none``, never HMAC, never taken from a token.
ALLOWED_ALGS = frozenset({ES256, ED25519})

#: Header parameters that would let a token name its own key: always refused.
KEY_BEARING_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256"})

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class SignerLike(Protocol):
    """What JWS creation needs of a signer (see :class:`ecert.keys.Signer`)."""

    @property
    def alg(self) -> str: ...

    @property
    def kid(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


# -- base64url and strict JSON ---------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_+/", b"+/**")
_PADDING = {0: b"", 2: b"==", 3: b"="}
# With 2 or 3 characters in the last quantum, the unused low bits of the last character
# must be zero; otherwise two spellings would decode to the same bytes.
_B64URL_VALUES = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
_UNUSED_BITS_MASK = {0: 0, 2: 0b1111, 3: 0b11}


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url: no padding, no other alphabet, canonical trailing bits."""
    if not isinstance(text, str):
        raise FormatError("base64url must be text", code="malformed")
    return _b64url_decode_checked(text)


def _b64url_decode_checked(text: str) -> bytes:
    """Decode base64url; binascii's strict mode refuses every byte outside the alphabet."""
    remainder = len(text) % 4
    if remainder == 1 or "=" in text:
        raise FormatError("not base64url", code="malformed")
    if remainder and _B64URL_VALUES.get(text[-1], 0) & _UNUSED_BITS_MASK[remainder]:
        raise FormatError("non-canonical base64url", code="malformed")
    try:
        # '+' and '/' are mapped to '*' first, so strict mode refuses them with the rest.
        return binascii.a2b_base64(
            text.encode("ascii").translate(_URLSAFE_TO_STANDARD) + _PADDING[remainder],
            strict_mode=True,
        )
    except (binascii.Error, UnicodeEncodeError) as e:
        raise FormatError("not base64url", code="malformed") from e


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise FormatError("duplicate JSON member", code="malformed")
    return result


def _refuse_constant(name: str) -> Any:
    raise FormatError(f"JSON constant {name} is not allowed", code="malformed")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise FormatError(f"number {text[:20]} overflows", code="malformed")
    return value


_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant,
    parse_float=_finite_float,
)


def strict_json_loads(data: bytes | str) -> Any:
    """Parse UTF-8 JSON refusing duplicate members, NaN/Infinity, pathological nesting,
    and escapes of lone UTF-16 surrogates (no Unicode character: RFC 7493 I-JSON)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        value = _STRICT_DECODER.decode(text)
    except FormatError:
        raise
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise FormatError("invalid JSON", code="malformed") from e
    # Only an escape can produce a surrogate (raw ones are not UTF-8): look only then.
    if ("\\ud" in text or "\\uD" in text) and _has_surrogate(value):
        raise FormatError("JSON escapes a lone surrogate", code="malformed")
    return value


def _has_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def canonical_json(value: Any) -> bytes:
    """Compact, sorted, UTF-8 JSON used for every payload ecert signs.

    Through orjson where it is installed and ``value`` is made of nothing but dicts with
    text keys, lists, text, integers, booleans and None (exact types): for those both
    libraries write the very same bytes (checked for every code point in
    tests/test_formats.py; an integer beyond 64 bits makes orjson refuse, and the stdlib
    decides). Anything else — floats, tuples, subclasses, other objects — is the stdlib's
    alone, errors included.
    """
    if _orjson is not None and _plain_json(value):
        try:
            return _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS)
        except _orjson.JSONEncodeError:
            pass
    return stdlib_canonical_json(value)


def plain_json_length(value: Any) -> int:
    """``len(canonical_json(value))`` of a value the caller has checked to hold only
    exact dicts with text keys, lists, text, 64-bit integers, booleans and None, nested
    a few levels: the length of orjson's unsorted compact JSON, which is the same (for
    those values both libraries write the same bytes, key order aside), without
    checking or sorting again."""
    if _orjson is not None:
        try:
            return len(_orjson.dumps(value))
        except _orjson.JSONEncodeError:
            pass
    return len(canonical_json(value))


def json_text(value: Any) -> str:
    """``value`` as JSON text for storage (not signed: any spacing, keys as given), at C
    speed where orjson may write it (the same rule as :func:`canonical_json`)."""
    if _orjson is not None and _plain_json(value):
        try:
            return _orjson.dumps(value).decode("utf-8")
        except _orjson.JSONEncodeError:
            pass
    return json.dumps(value)


def stdlib_canonical_json(value: Any) -> bytes:
    """:func:`canonical_json` by the standard library alone (the reference)."""
    return json.dumps(
        value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def parse_canonical(data: bytes) -> tuple[Any, bool]:
    """``(strict_json_loads(data), canonical_json(value) == data)``, faster with orjson.

    For the audit's pass over millions of log entries. orjson's verdict is taken only
    where it is provably the stdlib's: a document orjson parses into a value without
    floats (it also reads integers beyond 64 bits as floats, and formats floats its own
    way) and re-encodes, keys sorted, to exactly ``data``. Such a document has no
    duplicate member (re-encoding would drop one), no lone surrogate (orjson refuses
    them) and no NaN; both libraries encode every string and integer alike (checked for
    every code point in tests/test_formats.py). Anything else takes the stdlib path,
    whose verdict is the reference.
    """
    if _orjson is not None:
        try:
            value = _orjson.loads(data)
            if not _has_float(value) and _orjson.dumps(
                    value, option=_orjson.OPT_SORT_KEYS) == data:
                return value, True
        except (_orjson.JSONDecodeError, _orjson.JSONEncodeError, RecursionError):
            pass
    value = strict_json_loads(data)
    return value, canonical_json(value) == bytes(data)


def canonical_json_probe(value: Any) -> bytes | None:
    """Canonical JSON of ``value`` for an equality test whose "no" costs only time.

    Equal to :func:`canonical_json` where both apply; orjson's bytes where it is
    installed (they may differ for floats, which can only make a comparison fail and
    send the caller the slow way), None where it cannot encode the value.
    """
    if _orjson is None:
        try:
            return canonical_json(value)
        except (TypeError, ValueError):
            return None
    try:
        return _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS)
    except (_orjson.JSONEncodeError, RecursionError):
        return None


def fast_json_loads(data: str | bytes) -> Any:
    """Parse JSON that the registry itself wrote (a column), with orjson when it can.

    Not for untrusted documents (use :func:`strict_json_loads`): a caller must treat
    the value only as a candidate that a later comparison confirms.
    """
    if _orjson is not None:
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(data)


#: The exact types of JSON scalars both libraries write alike (bool is not an int here:
#: ``type(True) is bool``).
_PLAIN_SCALARS = frozenset((str, int, bool, type(None)))
#: The key types of an object both libraries write alike (qr.py judges its bound by it).
TEXT_ONLY = frozenset((str,))


def _plain_json(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` holds only exact dicts (text keys), lists, text, integers,
    booleans and None, nested at most 64 deep (orjson's own limit is 254).

    The types of a container's keys and members are collected at C speed
    (``map(type, …)``); only containers among the members are walked in Python.
    """
    kind = type(value)
    if kind is dict:
        if value and not TEXT_ONLY.issuperset(map(type, value)):
            return False
        members: Any = value.values()
    elif kind is list:
        members = value
    else:
        return kind in _PLAIN_SCALARS
    if _PLAIN_SCALARS.issuperset(map(type, members)):
        return True
    if depth >= 64:
        return False
    for member in members:
        if type(member) not in _PLAIN_SCALARS and not _plain_json(member, depth + 1):
            return False
    return True


def _has_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is float:
            return True
        if type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False


# -- JWK -------------------------------------------------------------------------------------


def public_jwk(key: PublicKey | PrivateKey) -> dict[str, str]:
    """The public JWK of a key (members of RFC 7638 plus ``kid``, ``alg`` and ``use``)."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        key = key.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise FormatError("only P-256 EC keys are supported", code="unsupported_key")
        numbers = key.public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big")),
        }
        alg = ES256
    else:
        from cryptography.hazmat.primitives import serialization

        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
        alg = ED25519
    return {**jwk, "kid": jwk_thumbprint(jwk), "alg": alg, "use": "sig"}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK SHA-256 thumbprint, base64url: ecert's ``kid``."""
    kty = jwk.get("kty")
    members: tuple[str, ...]
    if kty == "EC":
        members = ("crv", "kty", "x", "y")
    elif kty == "OKP":
        members = ("crv", "kty", "x")
    else:
        raise FormatError(f"unsupported JWK key type {kty!r}", code="unsupported_key")
    try:
        required = {name: jwk[name] for name in members}
    except KeyError as e:
        raise FormatError(f"JWK lacks member {e.args[0]!r}", code="malformed") from e
    if not all(isinstance(v, str) for v in required.values()):
        raise FormatError("JWK members must be strings", code="malformed")
    digest = hashlib.sha256(
        json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    ).digest()
    return b64url_encode(digest)


def key_from_jwk(jwk: Mapping[str, Any]) -> tuple[str, PublicKey]:
    """Load a public JWK strictly; return ``(alg, key)``. Private members are refused."""
    if not isinstance(jwk, Mapping):
        raise FormatError("a JWK is a JSON object", code="malformed")
    if "d" in jwk:
        raise FormatError("a published JWK must not contain a private key", code="malformed")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    try:
        if kty == "EC" and crv == "P-256":
            x, y = b64url_decode(jwk["x"]), b64url_decode(jwk["y"])
            if len(x) != 32 or len(y) != 32:
                raise FormatError("P-256 coordinates have 32 bytes", code="malformed")
            key: PublicKey = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), b"\x04" + x + y
            )
            alg = ES256
        elif kty == "OKP" and crv == "Ed25519":
            x = b64url_decode(jwk["x"])
            key = ed25519.Ed25519PublicKey.from_public_bytes(x)
            alg = ED25519
        else:
            raise FormatError(f"unsupported key type {kty}/{crv}", code="unsupported_key")
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError("invalid JWK", code="malformed") from e
    declared = jwk.get("alg")
    if declared is not None and declared != alg:
        raise FormatError(f"JWK alg {declared!r} does not match its key", code="malformed")
    return alg, key


def alg_of_key(key: PublicKey | PrivateKey) -> str:
    """The JWS ``alg`` a key signs with."""
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return ED25519
    if isinstance(key.curve, ec.SECP256R1):
        return ES256
    raise FormatError("only P-256 and Ed25519 keys are supported", code="unsupported_key")


# -- signing ---------------------------------------------------------------------------------


def raw_signature(alg: str, key: PrivateKey, message: bytes) -> bytes:
    """Sign ``message`` and return the JWS signature bytes (R||S for ES256)."""
    if alg == ES256 and isinstance(key, ec.EllipticCurvePrivateKey):
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == ED25519 and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    raise FormatError(f"key cannot sign {alg}", code="unsupported_key")


class _SignerAlgorithm(Algorithm):
    """A pyjwt algorithm whose "key" is an ecert signer: pyjwt frames, the signer signs."""

    def __init__(self, alg: str) -> None:
        self._alg = alg

    def prepare_key(self, key: Any) -> Any:
        if getattr(key, "alg", None) != self._alg:
            raise FormatError(f"signer does not sign {self._alg}", code="unsupported_key")
        return key

    def sign(self, msg: bytes, key: Any) -> bytes:
        return bytes(key.sign(msg))

    def verify(self, msg: bytes, key: Any, sig: bytes) -> bool:  # pragma: no cover
        raise NotImplementedError("ecert verifies with verify_signature()")

    @staticmethod
    def to_jwk(key_obj: Any, as_dict: bool = False) -> Any:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def from_jwk(jwk: str | dict[str, Any]) -> Any:  # pragma: no cover
        raise NotImplementedError


_SIGNING_JWS = jwt.PyJWS(algorithms=[])
# pyjwt has no RFC 9864 "Ed25519" name: register it beside ES256.
for _alg in (ES256, ED25519):
    _SIGNING_JWS.register_algorithm(_alg, _SignerAlgorithm(_alg))


def sign_compact(payload: Mapping[str, Any], signer: SignerLike, typ: str) -> str:
    """Create a compact JWS with header ``{alg, kid, typ}`` over canonical JSON ``payload``."""
    if signer.alg not in ALLOWED_ALGS:
        raise FormatError(f"algorithm {signer.alg!r} is not allowed", code="unsupported_alg")
    return _SIGNING_JWS.encode(
        canonical_json(payload),
        key=signer,  # type: ignore[arg-type]  # our registered algorithms take a signer
        algorithm=signer.alg,
        headers={"kid": signer.kid, "typ": typ},
        sort_headers=True,
    )


class CompactSigner:
    """:func:`sign_compact` for many payloads under one signer and ``typ``: the header is
    encoded once and the signing input built directly (the same bytes as
    :func:`sign_compact`, without PyJWT's per-call framing, which costs as much as an
    ES256 signature). For batch issuance."""

    def __init__(self, signer: SignerLike, typ: str) -> None:
        if signer.alg not in ALLOWED_ALGS:
            raise FormatError(f"algorithm {signer.alg!r} is not allowed", code="unsupported_alg")
        self._signer = signer
        self._header = b64url_encode(canonical_json(
            {"alg": signer.alg, "kid": signer.kid, "typ": typ})).encode("ascii")

    def sign(self, payload: Mapping[str, Any]) -> tuple[str, bytes]:
        """The compact JWS of canonical JSON ``payload``, and those payload bytes."""
        data = canonical_json(payload)
        signing_input = self._header + b"." + base64.urlsafe_b64encode(data).rstrip(b"=")
        signature = base64.urlsafe_b64encode(self._signer.sign(signing_input)).rstrip(b"=")
        return (signing_input + b"." + signature).decode("ascii"), data


# -- parsing and verification ----------------------------------------------------------------


class ParsedJws(NamedTuple):
    """A structurally valid compact JWS whose signature is not yet checked."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse_compact(token: str, *, max_bytes: int) -> ParsedJws:
    """Split and decode a compact JWS; raise :class:`FormatError` with a stable code."""
    if not isinstance(token, str):
        raise FormatError("token must be text", code="malformed")
    if len(token) > max_bytes:
        raise FormatError(f"token exceeds {max_bytes} bytes", code="too_large")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise FormatError("a compact JWS has three non-empty parts", code="malformed")
    header = strict_json_loads(_b64url_decode_checked(parts[0]))
    payload = strict_json_loads(_b64url_decode_checked(parts[1]))
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise FormatError("JWS header and payload are JSON objects", code="malformed")
    return ParsedJws(
        header=header,
        payload=payload,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=_b64url_decode_checked(parts[2]),
    )


def check_header(header: Mapping[str, Any], expected_typ: str) -> str:
    """Apply the header policy; return the ``kid``. Raises :class:`FormatError`."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
        raise FormatError(f"algorithm {alg!r} is not allowed", code="unsupported_alg")
    if KEY_BEARING_HEADERS.intersection(header):
        raise FormatError("keys named by the token itself are refused", code="embedded_key")
    if "crit" in header:
        raise FormatError("critical header extensions are not supported", code="unsupported_crit")
    if header.get("typ") != expected_typ:
        raise FormatError(f"typ must be {expected_typ!r}", code="wrong_typ")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 128:
        raise FormatError("header lacks a kid", code="malformed")
    return kid


def verify_signature(alg: str, key: PublicKey, signing_input: bytes, signature: bytes) -> bool:
    """Check a JWS signature with the given trusted key. ``alg`` must match the key type."""
    try:
        if alg == ES256 and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 64:
                return False
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            # Explicit range check: r = s = 0 and friends are never valid (CVE-2022-21449).
            if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
                return False
            key.verify(encode_dss_signature(r, s), signing_input, _ECDSA_SHA256)
            return True
        if alg == ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
            if len(signature) != 64:
                return False
            key.verify(signature, signing_input)
            return True
    except InvalidSignature:
        return False
    return False
