"""HTTP Message Signatures (RFC 9421) and Content-Digest (RFC 9530) for signed requests.

A requesting agency signs each request to a sharing service with its **requester key**
(``KeyRole.REQUESTER``, published in its region's trust list). This module is pure: it
knows headers as ``(name, value)`` pairs and bodies as bytes, never an HTTP framework.

* **Profile.** Algorithms ``ed25519`` and ``ecdsa-p256-sha256`` only (the keys ecert
  publishes as JWKs; the 64-byte signatures are the JWS ones, so any
  :class:`ecert.keys.Signer`, an HSM's included, signs requests too). Derived components
  ``@method``, ``@target-uri``, ``@authority``, ``@scheme``, ``@path``, ``@query`` and
  ``@status`` (responses), and lowercase header fields, without component parameters;
  signature parameters ``created``, ``expires``, ``nonce``, ``alg``, ``keyid``, ``tag``.
  The verifier picks the one signature whose ``tag`` is ``ecert-share`` and requires the
  service's components to be covered; freshness and nonce replay are the caller's
  (:func:`check_fresh`, and the service's nonce store).
* **Structured fields.** ``Signature-Input``, ``Signature`` and ``Content-Digest`` are
  RFC 8941/9651 Dictionaries. This module parses them with its own strict parser of just
  the shapes these three fields take (tokens, integers, strings, byte sequences, booleans,
  one level of inner lists, parameters). Why not ``http-sf`` or ``http-message-signatures``
  from PyPI: the verifier-only and client installs must stay light and this module pure
  (``http-message-signatures`` works on ``requests`` objects and leaves the content
  digest to the caller; ``http-sf`` parses every RFC 9651 type, dates and display strings
  included, with "last duplicate wins" semantics), and every refusal here must be a
  :class:`~ecert.errors.FormatError` with a stable code. The parser is stricter than RFC
  8941 where ambiguity could hide a second meaning: a repeated dictionary key or
  parameter is refused (not "last one wins"), byte sequences must be canonical padded
  base64, and sizes are bounded. Every valid field our signers produce is accepted.
* **Content-Digest.** ``sha-256`` and ``sha-512``; others are ignored (RFC 9530 §2), but
  at least one known digest must be present, and every known one must match.

Tested against the RFC 9421 Appendix B vectors (B.2.6 signed byte for byte, B.2.4
verified) and RFC 9530's examples (``tests/test_httpsig.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ecert._formats.jose import (
    ED25519,
    ES256,
    PrivateKey,
    PublicKey,
    SignerLike,
    alg_of_key,
    raw_signature,
    verify_signature,
)
from ecert.errors import FormatError

#: RFC 9421 algorithm names, and the JWS algorithm (ecert's key types) each one is.
ALG_ED25519 = "ed25519"
ALG_ECDSA_P256 = "ecdsa-p256-sha256"
_HTTPSIG_TO_JWS = {ALG_ED25519: ED25519, ALG_ECDSA_P256: ES256}
_JWS_TO_HTTPSIG = {jws: name for name, jws in _HTTPSIG_TO_JWS.items()}

#: The ``tag`` of an ecert sharing request's signature.
SHARE_TAG = "ecert-share"
#: The components an ecert sharing request signs (and a service requires), in order.
SHARE_COMPONENTS = ("@method", "@target-uri", "@authority", "@path", "@query",
                    "content-digest", "content-type")
#: Default label of the signature (any label is accepted: the tag selects the signature).
DEFAULT_LABEL = "ecert"

_DERIVED = frozenset({"@method", "@target-uri", "@authority", "@scheme", "@path", "@query",
                      "@status"})
_FIELD_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,64}")
_NONCE = re.compile(r"[A-Za-z0-9._~+/=-]{16,128}")

#: Bounds on what is parsed (a field longer than these is refused as ``too_large``).
MAX_FIELD_BYTES = 8192
MAX_MEMBERS = 8
MAX_COMPONENTS = 16
MAX_STRING = 256
#: A Unix time beyond this is no time we accept (year 10000).
_MAX_TIME = 253402300800

_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def _bad(message: str) -> FormatError:
    return FormatError(message, code="malformed")


# -- structured fields (RFC 8941 §4.2, the subset above) -------------------------------------

#: A bare item: int, str (sf-string), Token, bytes, bool.
BareItem = int | str | bytes | bool


@dataclass(frozen=True, slots=True)
class Token:
    """An sf-token (kept apart from strings: they serialize differently)."""

    value: str


Params = tuple[tuple[str, "BareItem | Token"], ...]


@dataclass(frozen=True, slots=True)
class Item:
    """A bare item with its parameters."""

    value: BareItem | Token
    params: Params = ()


@dataclass(frozen=True, slots=True)
class InnerList:
    """An inner list with its parameters."""

    items: tuple[Item, ...]
    params: Params = ()


_KEY = re.compile(r"[a-z*][a-z0-9_.*-]{0,63}")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+.^_`|~:/-]*")
_INTEGER = re.compile(r"-?[0-9]{1,15}")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_STRING = re.compile(r'"((?:[ !#-\[\]-~]|\\["\\])*)"')
_UNESCAPE = re.compile(r'\\(["\\])')


class _Parser:
    """One pass over one field value; every refusal is a FormatError."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t"):
            self.pos += 1

    def key(self) -> str:
        match = _KEY.match(self.text, self.pos)
        if match is None:
            raise _bad("a structured field key is expected")
        self.pos = match.end()
        return match.group()

    def bare_item(self) -> BareItem | Token:
        c = self.peek()
        if c == '"':
            return self.string()
        if c == ":":
            return self.byte_sequence()
        if c == "?":
            value = self.text[self.pos + 1:self.pos + 2]
            if value not in ("0", "1"):
                raise _bad("a boolean is ?0 or ?1")
            self.pos += 2
            return value == "1"
        if c == "-" or c.isdigit():
            match = _INTEGER.match(self.text, self.pos)
            if match is None or self.text[match.end():match.end() + 1] == ".":
                raise _bad("an integer of at most 15 digits is expected (no decimals)")
            self.pos = match.end()
            return int(match.group())
        match = _TOKEN.match(self.text, self.pos)
        if match is None:
            raise _bad("a structured field item is expected")
        if match.end() - self.pos > MAX_STRING:
            raise FormatError("a token is too long", code="too_large")
        self.pos = match.end()
        return Token(match.group())

    def string(self) -> str:
        # One regular expression instead of a loop per character: this is the hot part
        # of parsing a Signature-Input. Printable ASCII, escaping only '"' and '\\'.
        match = _STRING.match(self.text, self.pos)
        if match is None:
            raise _bad("a string is printable ASCII in quotes, escaping only quote and "
                       "backslash")
        self.pos = match.end()
        value = _UNESCAPE.sub(r"\1", match.group(1))
        if len(value) > MAX_STRING:
            raise FormatError("a string is too long", code="too_large")
        return value

    def byte_sequence(self) -> bytes:
        end = self.text.find(":", self.pos + 1)
        if end < 0:
            raise _bad("an unterminated byte sequence")
        body = self.text[self.pos + 1:end]
        self.pos = end + 1
        if _B64.fullmatch(body) is None or len(body) % 4:
            raise _bad("a byte sequence is padded base64")
        try:
            value = binascii.a2b_base64(body.encode("ascii"), strict_mode=True)
        except binascii.Error as e:
            raise _bad("a byte sequence is padded base64") from e
        if base64.b64encode(value).decode("ascii") != body:
            raise _bad("a byte sequence is canonical base64")
        return value

    def params(self) -> Params:
        out: list[tuple[str, BareItem | Token]] = []
        while self.peek() == ";":
            self.pos += 1
            self.skip_sp()
            name = self.key()
            value: BareItem | Token = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            if any(name == seen for seen, _ in out):
                raise _bad(f"parameter {name!r} is repeated")
            out.append((name, value))
            if len(out) > MAX_MEMBERS:
                raise FormatError("too many parameters", code="too_large")
        return tuple(out)

    def item_or_inner_list(self) -> Item | InnerList:
        if self.peek() != "(":
            value = self.bare_item()
            return Item(value, self.params())
        self.pos += 1
        items: list[Item] = []
        while True:
            self.skip_sp()
            if self.peek() == ")":
                self.pos += 1
                return InnerList(tuple(items), self.params())
            value = self.bare_item()
            items.append(Item(value, self.params()))
            if len(items) > MAX_COMPONENTS:
                raise FormatError("an inner list is too long", code="too_large")
            if self.peek() not in (" ", ")"):
                raise _bad("an inner list item is followed by a space or ')'")

    def dictionary(self) -> dict[str, Item | InnerList]:
        out: dict[str, Item | InnerList] = {}
        self.skip_sp()
        while self.pos < len(self.text):
            name = self.key()
            if self.peek() == "=":
                self.pos += 1
                member = self.item_or_inner_list()
            else:
                member = Item(True, self.params())
            if name in out:
                raise _bad(f"dictionary key {name!r} is repeated")
            out[name] = member
            if len(out) > MAX_MEMBERS:
                raise FormatError("too many dictionary members", code="too_large")
            self.skip_ows()
            if self.pos >= len(self.text):
                return out
            if self.peek() != ",":
                raise _bad("dictionary members are separated by commas")
            self.pos += 1
            self.skip_ows()
            if self.pos >= len(self.text):
                raise _bad("a dictionary ends with a comma")
        return out


def parse_dictionary(value: str) -> dict[str, Item | InnerList]:
    """Parse an sf-dictionary field value (several field lines joined with ``", "``)."""
    if not isinstance(value, str):
        raise _bad("a field value is text")
    if len(value) > MAX_FIELD_BYTES:
        raise FormatError("a structured field is too long", code="too_large")
    if not value.isascii():
        raise _bad("a structured field is ASCII")
    parser = _Parser(value)
    result = parser.dictionary()
    if not result:
        raise _bad("an empty dictionary")
    return result


def _serialize_bare(value: BareItem | Token) -> str:
    if isinstance(value, Token):
        return value.value
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _serialize_params(params: Params) -> str:
    return "".join(f";{name}" if value is True else f";{name}={_serialize_bare(value)}"
                   for name, value in params)


def serialize_inner_list(value: InnerList) -> str:
    """The RFC 8941 serialization of an inner list (what ``@signature-params`` covers)."""
    items = " ".join(_serialize_bare(i.value) + _serialize_params(i.params)
                     for i in value.items)
    return f"({items}){_serialize_params(value.params)}"


# -- Content-Digest (RFC 9530) ---------------------------------------------------------------


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The ``Content-Digest`` field value of ``body``."""
    digest = _DIGESTS[algorithm](body).digest()
    return f"{algorithm}=:{base64.b64encode(digest).decode('ascii')}:"


def parse_content_digest(value: str) -> dict[str, bytes]:
    """The known digests of a ``Content-Digest`` field (unknown algorithms are ignored)."""
    out: dict[str, bytes] = {}
    for name, member in parse_dictionary(value).items():
        if not isinstance(member, Item) or not isinstance(member.value, bytes) \
                or member.params:
            raise _bad("a content digest is a byte sequence without parameters")
        if name in _DIGESTS:
            if len(member.value) != _DIGESTS[name]().digest_size:
                raise _bad(f"a {name} digest has {_DIGESTS[name]().digest_size} bytes")
            out[name] = member.value
    if not out:
        raise FormatError("no sha-256 or sha-512 content digest", code="digest_mismatch")
    return out


def check_content_digest(value: str, body: bytes) -> None:
    """Raise ``FormatError(code="digest_mismatch")`` unless every known digest matches."""
    for name, expected in parse_content_digest(value).items():
        if not hmac.compare_digest(_DIGESTS[name](body).digest(), expected):
            raise FormatError("the content digest does not match the body",
                              code="digest_mismatch")


# -- messages and components -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpMessage:
    """What a signature can cover: a request (``method``, ``target_uri``), or a response
    (``status``), and its header fields as received, in order."""

    headers: tuple[tuple[str, str], ...]
    method: str | None = None
    target_uri: str | None = None
    status: int | None = None

    def field(self, name: str) -> str | None:
        """The combined value of the header field ``name`` (RFC 9421 §2.1), or None."""
        values = [v.strip(" \t") for k, v in self.headers if k.lower() == name]
        return ", ".join(values) if values else None


def _split_uri(uri: str) -> urllib.parse.SplitResult:
    try:
        parts = urllib.parse.urlsplit(uri)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as e:
        raise _bad("the target URI is not a URI") from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad("the target URI is an absolute http(s) URI")
    return parts


def component_value(message: HttpMessage, name: str) -> str:
    """The value of one covered component (RFC 9421 §2.1, §2.2)."""
    if name == "@status":
        if message.status is None:
            raise _bad("@status is a response component")
        return str(message.status)
    if name == "@method":
        if message.method is None:
            raise _bad("@method is a request component")
        return message.method
    if name.startswith("@"):
        if message.target_uri is None:
            raise _bad(f"{name} is a request component")
        parts = _split_uri(message.target_uri)
        if name == "@target-uri":
            return message.target_uri
        if name == "@scheme":
            return parts.scheme
        if name == "@authority":
            host = parts.hostname or ""
            host = f"[{host}]" if ":" in host else host
            default = {"http": 80, "https": 443}[parts.scheme]
            return host if parts.port in (None, default) else f"{host}:{parts.port}"
        if name == "@path":
            return parts.path or "/"
        if name == "@query":
            return "?" + parts.query
        raise _bad(f"unsupported derived component {name!r}")
    value = message.field(name)
    if value is None:
        raise FormatError(f"covered header field {name!r} is missing",
                          code="signature_invalid")
    return value


@dataclass(frozen=True, slots=True)
class SignatureParams:
    """The covered components and the signature parameters, in their order."""

    components: tuple[str, ...]
    params: Params

    def get(self, name: str) -> BareItem | Token | None:
        """The value of parameter ``name``, or None."""
        return next((value for key, value in self.params if key == name), None)

    @property
    def created(self) -> int:
        """``created``: required by this profile."""
        value = self.get("created")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def expires(self) -> int | None:
        """``expires``, if given."""
        value = self.get("expires")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def keyid(self) -> str:
        """``keyid``: required by this profile."""
        return str(self.get("keyid"))

    @property
    def nonce(self) -> str | None:
        """``nonce``, if given (a sharing request requires one)."""
        value = self.get("nonce")
        return value if isinstance(value, str) else None

    @property
    def alg(self) -> str | None:
        """``alg``, if given."""
        value = self.get("alg")
        return value if isinstance(value, str) else None

    @property
    def tag(self) -> str | None:
        """``tag``, if given."""
        value = self.get("tag")
        return value if isinstance(value, str) else None

    def serialize(self) -> str:
        """The ``@signature-params`` value (and the Signature-Input member)."""
        return serialize_inner_list(InnerList(
            tuple(Item(name) for name in self.components), self.params))


_PARAM_TYPES: dict[str, type] = {"created": int, "expires": int, "nonce": str, "alg": str,
                                 "keyid": str, "tag": str}


def _check_params(value: InnerList) -> SignatureParams:
    components: list[str] = []
    for item in value.items:
        name = item.value
        if not isinstance(name, str) or isinstance(name, bool):
            raise _bad("a covered component is a string")
        if item.params:
            raise _bad("component parameters are not supported")
        if not (name in _DERIVED or _FIELD_NAME.fullmatch(name)):
            raise _bad(f"unsupported component {name[:40]!r}")
        if name in components:
            raise _bad(f"component {name!r} is covered twice")
        components.append(name)
    for name, param in value.params:
        kind = _PARAM_TYPES.get(name)
        if kind is None:
            raise _bad(f"unknown signature parameter {name!r}")
        if type(param) is not kind:
            raise _bad(f"signature parameter {name!r} is a {kind.__name__}")
    params = SignatureParams(tuple(components), value.params)
    created = params.get("created")
    if not isinstance(created, int) or not 0 <= created < _MAX_TIME:
        raise _bad("created is required")
    expires = params.expires
    if expires is not None and not created < expires < _MAX_TIME:
        raise _bad("expires is after created")
    keyid = params.get("keyid")
    if not isinstance(keyid, str) or not keyid:
        raise _bad("keyid is required")
    if params.alg is not None and params.alg not in _HTTPSIG_TO_JWS:
        raise FormatError(f"algorithm {params.alg!r} is not allowed", code="unsupported_alg")
    return params


def signature_base(message: HttpMessage, params: SignatureParams) -> bytes:
    """The RFC 9421 §2.5 signature base of ``message`` under ``params``."""
    lines = [f'"{name}": {component_value(message, name)}' for name in params.components]
    for line in lines:
        if "\n" in line or "\r" in line:
            raise _bad("a component value spans lines")
    lines.append(f'"@signature-params": {params.serialize()}')
    try:
        return "\n".join(lines).encode("ascii")
    except UnicodeEncodeError as e:
        raise _bad("a component value is not ASCII") from e


# -- parsing a signed message ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    """One signature of a message, structurally valid, not yet verified."""

    label: str
    params: SignatureParams
    signature: bytes


def parse_signature(signature_input: str, signature: str, *, tag: str = SHARE_TAG
                    ) -> ParsedSignature:
    """Select and parse the one signature whose ``tag`` is ``tag``.

    Other signatures (without that tag) are ignored, as RFC 9421 §3.2 allows; two with
    the tag are refused as ambiguous.
    """
    inputs = parse_dictionary(signature_input)
    signatures = parse_dictionary(signature)
    chosen: ParsedSignature | None = None
    for label, member in inputs.items():
        if not isinstance(member, InnerList):
            raise _bad("a Signature-Input member is an inner list")
        if not any(name == "tag" and value == tag for name, value in member.params):
            continue
        if chosen is not None:
            raise _bad(f"two signatures are tagged {tag!r}")
        params = _check_params(member)
        sig = signatures.get(label)
        if sig is None:
            raise FormatError(f"no signature labelled {label!r}", code="signature_missing")
        if not isinstance(sig, Item) or not isinstance(sig.value, bytes) or sig.params:
            raise _bad("a Signature member is a byte sequence without parameters")
        chosen = ParsedSignature(label, params, sig.value)
    if chosen is None:
        raise FormatError(f"no signature is tagged {tag!r}", code="signature_missing")
    return chosen


def verify_message(message: HttpMessage, parsed: ParsedSignature, key: PublicKey, *,
                   required: Iterable[str] = SHARE_COMPONENTS) -> None:
    """Check ``parsed`` over ``message`` with the trusted ``key``.

    Raises ``FormatError``: ``signature_invalid`` (a required component not covered, an
    ``alg`` that is not the key's, a wrong signature), or ``malformed``.
    """
    missing = [name for name in required if name not in parsed.params.components]
    if missing:
        raise FormatError(f"the signature does not cover {', '.join(missing)}",
                          code="signature_invalid")
    jws_alg = alg_of_key(key)
    if parsed.params.alg is not None and _HTTPSIG_TO_JWS[parsed.params.alg] != jws_alg:
        raise FormatError("the signature's alg is not its key's", code="signature_invalid")
    base = signature_base(message, parsed.params)
    if not verify_signature(jws_alg, key, base, parsed.signature):
        raise FormatError("the request signature does not verify", code="signature_invalid")


def check_fresh(params: SignatureParams, now: int, *, window: int) -> None:
    """Refuse a signature ``created`` more than ``window`` seconds from ``now`` (either
    way) or past its ``expires``: ``FormatError(code="request_stale")``."""
    if abs(now - params.created) > window:
        raise FormatError("the request is not fresh (created too far from now)",
                          code="request_stale")
    if params.expires is not None and params.expires <= now:
        raise FormatError("the request signature has expired", code="request_stale")


# -- signing ---------------------------------------------------------------------------------


class _KeySigner:
    """A private key as a :class:`SignerLike` (tests and file keys)."""

    def __init__(self, key: PrivateKey, kid: str) -> None:
        self._key = key
        self.alg = alg_of_key(key)
        self.kid = kid

    def sign(self, message: bytes) -> bytes:
        return raw_signature(self.alg, self._key, message)


def as_signer(key: PrivateKey | SignerLike, kid: str) -> SignerLike:
    """A signer for ``key``: a private key is wrapped, a signer is returned as is."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return _KeySigner(key, kid)
    return key


def sign_message(message: HttpMessage, signer: SignerLike, *,
                 components: Sequence[str], params: Mapping[str, int | str],
                 label: str = DEFAULT_LABEL) -> tuple[tuple[str, str], tuple[str, str]]:
    """Sign ``message``; return the ``Signature-Input`` and ``Signature`` header fields.

    ``params`` are the signature parameters in the order they are to appear (``created``
    and ``keyid`` at least).
    """
    inner = InnerList(tuple(Item(name) for name in components),
                      tuple((name, value) for name, value in params.items()))
    parsed = _check_params(inner)
    if _KEY.fullmatch(label) is None:
        raise _bad("a signature label is an sf-key")
    if parsed.alg is not None and _HTTPSIG_TO_JWS[parsed.alg] != signer.alg:
        raise FormatError("alg is not the signer's", code="unsupported_alg")
    signature = signer.sign(signature_base(message, parsed))
    return (("Signature-Input", f"{label}={parsed.serialize()}"),
            ("Signature", f"{label}={_serialize_bare(signature)}"))


def sign_request(*, method: str, url: str, body: bytes, content_type: str,
                 signer: SignerLike, created: int, nonce: str, keyid: str | None = None,
                 expires: int | None = None, tag: str = SHARE_TAG,
                 label: str = DEFAULT_LABEL) -> list[tuple[str, str]]:
    """The header fields of a signed ecert request: ``Content-Type``, ``Content-Digest``,
    ``Signature-Input`` and ``Signature`` (the client adds ``Host`` as usual).

    Covers :data:`SHARE_COMPONENTS`; ``keyid`` defaults to the signer's ``kid``.
    """
    if _NONCE.fullmatch(nonce) is None:
        raise _bad("a nonce has 16 to 128 URL-safe characters")
    headers = [("Content-Type", content_type), ("Content-Digest", content_digest(body))]
    message = HttpMessage(tuple(headers), method=method, target_uri=url)
    params: dict[str, int | str] = {"created": created}
    if expires is not None:
        params["expires"] = expires
    params.update({"nonce": nonce, "keyid": keyid or signer.kid,
                   "alg": _JWS_TO_HTTPSIG[signer.alg], "tag": tag})
    signature_input, signature = sign_message(message, signer, components=SHARE_COMPONENTS,
                                              params=params, label=label)
    return [*headers, signature_input, signature]


def check_nonce(nonce: str | None) -> str:
    """A sharing request's nonce: required, 16 to 128 URL-safe characters."""
    if nonce is None or _NONCE.fullmatch(nonce) is None:
        raise FormatError("the signature needs a nonce of 16 to 128 URL-safe characters",
                          code="signature_invalid")
    return nonce
