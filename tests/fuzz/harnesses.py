"""One fuzz harness per ecert decoder, shared by the atheris runner and the pytest replay.

A harness takes arbitrary bytes and raises only when ecert misbehaves: the decoder must
return a well-typed value or raise :class:`ecert.errors.FormatError` (or the documented
:class:`ecert.errors.EcertError` subclass); where an encoder exists, decoding what it
encodes must give the value back. Anything else escaping a harness is a finding.

Adding a harness is one decorated function::

    @harness("my_decoder", seeds=lambda w: [b"a real document"])
    def fuzz_my_decoder(data: bytes) -> None:
        try:
            value = my_decoder(data)
        except FormatError:
            return
        assert ...  # properties of an accepted value

``seeds`` receives the deterministic :class:`tests.fuzz.world.World` (real published
documents) and returns the inputs the fuzzer starts from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from ecert._formats import httpsig, jose, merkle, note, sharing, tiles
from ecert._formats import qr as qrf
from ecert._formats.bundle import TRUST_LIST_PATH
from ecert._formats.certificate import CERTIFICATE_TYP, MAX_TOKEN_BYTES, CertificateClaims
from ecert._formats.statuslist import (
    STATUS_LIST_TYP,
    StatusList,
    StatusListToken,
    read_status_list_payload,
)
from ecert._formats.trustlist import TRUST_LIST_TYP, TrustList
from ecert.errors import EcertError, FormatError, TrustListError
from ecert.keys import LocalSigner
from ecert.trust import TrustAnchor, verify_trust_list
from ecert.verify import ErrorCode, VerificationResult, VerificationStatus
from tests.fuzz.world import VERIFIED_AT, World, world

Target = Callable[[bytes], None]
Seeds = Callable[[World], Iterable[bytes]]


@dataclass(frozen=True)
class Harness:
    """A registered harness: the target, its seed inputs and the largest input tried."""

    name: str
    target: Target
    seeds: Seeds
    max_len: int


#: Every harness by name; filled by :func:`harness`.
HARNESSES: dict[str, Harness] = {}


def harness(name: str, *, seeds: Seeds, max_len: int = 4096) -> Callable[[Target], Target]:
    """Register the decorated function as harness ``name``."""

    def register(target: Target) -> Target:
        if name in HARNESSES:
            raise ValueError(f"harness {name!r} registered twice")
        HARNESSES[name] = Harness(name, target, seeds, max_len)
        return target

    return register


# -- helpers ---------------------------------------------------------------------------------


def text(data: bytes) -> str:
    """Bytes as text, reversibly: every code point UTF-8 can spell, plus lone surrogates."""
    return data.decode("utf-8", "surrogateescape")


def json_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object in ``data``, or None: the payload decoders only ever see objects
    that strict JSON parsing accepted (the ``strict_json`` harness fuzzes that step)."""
    try:
        value = jose.strict_json_loads(data)
    except FormatError:
        return None
    return value if isinstance(value, dict) else None


def _refusal(e: EcertError) -> None:
    # A refusal must carry a stable machine-readable code and a message.
    assert isinstance(e.code, str) and e.code, e
    assert isinstance(e.message, str), e


def _tokens(w: World) -> list[str]:
    """Every genuine compact JWS of the world."""
    docs = [w.documents[r][p].decode("ascii") for r in w.documents
            for p in (TRUST_LIST_PATH, "status/1.jwt")]
    return [*w.tokens.values(), w.qr_token, *docs]


def _payloads(w: World) -> list[bytes]:
    return [jose.b64url_decode(t.split(".")[1]) for t in _tokens(w)]


def _signing_input(token: str) -> bytes | None:
    try:
        return jose.parse_compact(token, max_bytes=1 << 30).signing_input
    except FormatError:
        return None


# -- JOSE ------------------------------------------------------------------------------------


@harness("b64url", seeds=lambda w: [p.encode() for t in _tokens(w) for p in t.split(".")],
         max_len=8192)
def fuzz_b64url(data: bytes) -> None:
    encoded = text(data)
    try:
        raw = jose.b64url_decode(encoded)
    except FormatError as e:
        _refusal(e)
        return
    assert isinstance(raw, bytes)
    # Strict decoding: exactly one accepted spelling per byte string.
    assert jose.b64url_encode(raw) == encoded


@harness("strict_json", seeds=_payloads, max_len=8192)
def fuzz_strict_json(data: bytes) -> None:
    try:
        value = jose.strict_json_loads(data)
    except FormatError as e:
        _refusal(e)
        return
    again = jose.strict_json_loads(jose.canonical_json(value))
    # Compare canonical forms: == alone would equate 1, 1.0 and True.
    assert jose.canonical_json(again) == jose.canonical_json(value)


_TYPS = (CERTIFICATE_TYP, STATUS_LIST_TYP, TRUST_LIST_TYP, qrf.QR_TYP)


@harness("jws", seeds=lambda w: [t.encode() for t in _tokens(w)], max_len=8192)
def fuzz_jws(data: bytes) -> None:
    token = text(data)
    try:
        parsed = jose.parse_compact(token, max_bytes=MAX_TOKEN_BYTES)
    except FormatError as e:
        _refusal(e)
        return
    assert isinstance(parsed.header, dict) and isinstance(parsed.payload, dict)
    h, p, s = token.split(".")
    assert parsed.signing_input == f"{h}.{p}".encode("ascii")
    assert jose.b64url_encode(parsed.signature) == s
    for typ in _TYPS:
        try:
            kid = jose.check_header(parsed.header, typ)
        except FormatError as e:
            _refusal(e)
            continue
        assert isinstance(kid, str) and 0 < len(kid) <= 128
        assert parsed.header["typ"] == typ and parsed.header["alg"] in jose.ALLOWED_ALGS
        assert not jose.KEY_BEARING_HEADERS.intersection(parsed.header)
        assert "crit" not in parsed.header


# -- certificate claims ----------------------------------------------------------------------


@harness("certificate_claims",
         seeds=lambda w: [jose.b64url_decode(t.split(".")[1]) for t in w.tokens.values()])
def fuzz_certificate_claims(data: bytes) -> None:
    payload = json_object(data)
    if payload is None:
        return
    try:
        claims = CertificateClaims.from_payload(payload)
    except FormatError as e:
        _refusal(e)
        return
    for name in ("iss", "sub", "jti", "vct", "region", "holder_name", "status_list_uri"):
        assert isinstance(getattr(claims, name), str), name
    for name in ("iat", "nbf", "vct_version", "status_index"):
        assert type(getattr(claims, name)) is int, name
    assert claims.exp is None or type(claims.exp) is int
    assert claims.status_index >= 0 and isinstance(claims.claims, dict)
    assert CertificateClaims.from_payload(claims.to_payload()) == claims


# -- QR --------------------------------------------------------------------------------------


def _check_unwrapped(unwrapped: qrf.Unwrapped) -> None:
    assert unwrapped.alg in jose.ALLOWED_ALGS
    assert len(unwrapped.kid_ref) == qrf.KID_REF_BYTES
    assert len(unwrapped.signature) == qrf.SIGNATURE_BYTES
    # The payload is exactly the canonical JSON a signature covers.
    value = jose.strict_json_loads(unwrapped.payload)
    assert jose.canonical_json(value) == unwrapped.payload
    # decode(encode(x)) == x: rewrap the compact JWS under a kid with the same reference.
    kid = jose.b64url_encode(unwrapped.kid_ref + bytes(28))
    assert qrf.unwrap(qrf.wrap(unwrapped.compact(kid))) == unwrapped


def _container(w: World) -> list[bytes]:
    return [qrf.b45decode(w.qr_text[len(qrf.PREFIX):])]


@harness("qr_text", seeds=lambda w: [w.qr_text.encode()], max_len=qrf.MAX_QR_TEXT + 64)
def fuzz_qr_text(data: bytes) -> None:
    try:
        unwrapped = qrf.unwrap(text(data))
    except FormatError as e:
        _refusal(e)
        return
    _check_unwrapped(unwrapped)


@harness("qr_container", seeds=_container, max_len=3000)
def fuzz_qr_container(data: bytes) -> None:
    # Past base45, so the fuzzer works on the flags, kid reference, deflate and values.
    try:
        unwrapped = qrf.unwrap(qrf.PREFIX + qrf.b45encode(data))
    except FormatError as e:
        _refusal(e)
        return
    _check_unwrapped(unwrapped)


@harness("b45", seeds=lambda w: [w.qr_text[len(qrf.PREFIX):].encode()],
         max_len=qrf.MAX_QR_TEXT)
def fuzz_b45(data: bytes) -> None:
    encoded = text(data)
    try:
        raw = qrf.b45decode(encoded)
    except FormatError as e:
        _refusal(e)
        return
    assert qrf.b45encode(raw) == encoded  # one spelling per byte string


def _qr_body(w: World) -> list[bytes]:
    unwrapped = qrf.unwrap(w.qr_text)
    return [qrf.encode_value(json.loads(unwrapped.payload))]


@harness("qr_value", seeds=_qr_body)
def fuzz_qr_value(data: bytes) -> None:
    try:
        value = qrf.decode_value(data)
    except FormatError as e:
        _refusal(e)
        return
    canonical = jose.canonical_json(value)  # a JSON value, whatever the bytes said
    assert jose.canonical_json(qrf.decode_value(qrf.encode_value(value))) == canonical


@harness("qr_payload", seeds=lambda w: [jose.b64url_decode(w.qr_token.split(".")[1])])
def fuzz_qr_payload(data: bytes) -> None:
    payload = json_object(data)
    if payload is None:
        return
    try:
        claims = qrf.read_qr_payload(payload)
    except FormatError as e:
        _refusal(e)
        return
    for name in ("vct", "region", "serial", "id_version", "holder_name", "digest"):
        assert isinstance(getattr(claims, name), str), name
    for name in ("vct_version", "iat", "nbf", "signed_at", "status_index"):
        assert type(getattr(claims, name)) is int and getattr(claims, name) >= 0, name
    assert claims.exp is None or type(claims.exp) is int
    assert type(claims.status_ref) is int or isinstance(claims.status_ref, str)
    assert isinstance(claims.claims, dict) and isinstance(claims.complete, bool)


# -- status lists ----------------------------------------------------------------------------

_BITS = (1, 2, 4, 8)


def _status_lists(w: World) -> list[bytes]:
    token = w.documents["GD"]["status/1.jwt"].decode("ascii")
    claim = jose.strict_json_loads(jose.b64url_decode(token.split(".")[1]))["status_list"]
    return [bytes([_BITS.index(claim["bits"])]) + jose.b64url_decode(claim["lst"])]


@harness("status_list", seeds=_status_lists)
def fuzz_status_list(data: bytes) -> None:
    # First byte: bits; the rest: the zlib stream itself, so the fuzzer works on inflate.
    bits = _BITS[data[0] & 3] if data else 1
    try:
        status_list = StatusList.decode({"bits": bits, "lst": jose.b64url_encode(data[1:])})
    except FormatError as e:
        _refusal(e)
        return
    raw = status_list.to_bytes()
    assert status_list.bits == bits and len(raw) > 0 and len(status_list) * bits == 8 * len(raw)
    again = StatusList.decode(status_list.encode())
    assert (again.bits, again.to_bytes()) == (bits, raw)


@harness("status_list_payload",
         seeds=lambda w: [jose.b64url_decode(w.documents[r]["status/1.jwt"].split(b".")[1]
                                             .decode()) for r in w.documents])
def fuzz_status_list_payload(data: bytes) -> None:
    payload = json_object(data)
    if payload is None:
        return
    try:
        token = read_status_list_payload(payload)
    except FormatError as e:
        _refusal(e)
        return
    assert isinstance(token, StatusListToken) and isinstance(token.uri, str)
    assert type(token.issued_at) is int
    assert token.expires_at is None or type(token.expires_at) is int
    assert token.ttl is None or (type(token.ttl) is int and token.ttl > 0)
    assert token.expires_at is not None or token.ttl is not None
    rebuilt: dict[str, Any] = {"sub": token.uri, "iat": token.issued_at,
                               "status_list": token.status_list.encode()}
    if token.expires_at is not None:
        rebuilt["exp"] = token.expires_at
    if token.ttl is not None:
        rebuilt["ttl"] = token.ttl
    again = read_status_list_payload(rebuilt)
    assert (again.uri, again.issued_at, again.expires_at, again.ttl) == (
        token.uri, token.issued_at, token.expires_at, token.ttl)
    assert again.status_list.to_bytes() == token.status_list.to_bytes()


# -- trust lists and anchors -----------------------------------------------------------------


@harness("trust_list_payload",
         seeds=lambda w: [jose.b64url_decode(w.documents[r][TRUST_LIST_PATH].split(b".")[1]
                                             .decode()) for r in w.documents],
         max_len=8192)
def fuzz_trust_list_payload(data: bytes) -> None:
    payload = json_object(data)
    if payload is None:
        return
    try:
        trust_list = TrustList.from_payload(payload)
    except FormatError as e:
        _refusal(e)
        return
    assert isinstance(trust_list.sequence, int) and trust_list.next_update > trust_list.issued_at
    assert TrustList.from_payload(trust_list.to_payload()) == trust_list


@harness("trust_list_verify", seeds=lambda w: [w.documents["GD"][TRUST_LIST_PATH]],
         max_len=8192)
def fuzz_trust_list_verify(data: bytes) -> None:
    w = world()
    genuine = _signing_input(w.documents["GD"][TRUST_LIST_PATH].decode("ascii"))
    token = text(data)
    try:
        trust_list, anchor = verify_trust_list(
            token, w.anchors["GD"], now=int(VERIFIED_AT.timestamp()), grace=86_400)
    except TrustListError as e:
        _refusal(e)
        return
    assert isinstance(trust_list, TrustList) and isinstance(anchor, TrustAnchor)
    assert trust_list.region == "GD"
    # Accepted only if the signed part is the genuine one (whitespace around is stripped).
    assert _signing_input(token.strip()) == genuine, "a mutated trust list verified"


@harness("anchor", seeds=lambda w: [w.documents[r]["anchor.json"] for r in w.documents])
def fuzz_anchor(data: bytes) -> None:
    try:
        anchor = TrustAnchor.from_bytes(data)
    except TrustListError as e:
        _refusal(e)
        return
    assert all(isinstance(v, str) for v in (anchor.region, anchor.name, anchor.trust_list_url))
    assert isinstance(anchor.root_jwk, dict) and isinstance(anchor.kid, str)
    # to_bytes() rebuilds the URL as {base_url}/trustlist.jwt (docs/format.md), so only a
    # conformant anchor round-trips; tests/test_fuzz_corpus.py has the xfail for the rest.
    if anchor.trust_list_url.endswith("/" + TRUST_LIST_PATH):
        assert TrustAnchor.from_bytes(anchor.to_bytes()) == anchor


# -- end to end: Verifier.verify over the published world ------------------------------------


def check_result(result: VerificationResult, genuine: Callable[[], bool]) -> None:
    """What every verification result must satisfy; ``genuine`` says whether the signed
    parts presented are the world's own (only then may the result be valid)."""
    assert isinstance(result, VerificationResult)
    assert isinstance(result.status, VerificationStatus)
    assert all(isinstance(code, ErrorCode) for code in result.errors), result.errors
    assert (result.status is VerificationStatus.VALID) == (not result.errors), result
    internal = [m for m in result.messages if m.startswith("internal error")]
    assert not internal, f"verify failed internally: {internal}"
    json.dumps(result.to_json())  # the CLI prints this for any result
    if result.valid:
        assert genuine(), "a mutated signed part verified"


def _genuine_token(w: World, token: str) -> bool:
    token = token.strip()
    if qrf.is_qr_text(token):
        genuine = qrf.unwrap(w.qr_text)
        try:
            unwrapped = qrf.unwrap(token)
        except FormatError:
            return False
        return (unwrapped.alg, unwrapped.kid_ref, unwrapped.payload) == (
            genuine.alg, genuine.kid_ref, genuine.payload)
    return _signing_input(token) in {_signing_input(t) for t in w.tokens.values()}


@harness("verify_token",
         seeds=lambda w: [*(t.encode() for t in _tokens(w)), w.qr_text.encode()], max_len=8192)
def fuzz_verify_token(data: bytes) -> None:
    w = world()
    token = text(data)
    check_result(w.verifier().verify(token), lambda: _genuine_token(w, token))


@harness("verify_qr", seeds=_container, max_len=3000)
def fuzz_verify_qr(data: bytes) -> None:
    w = world()
    token = qrf.PREFIX + qrf.b45encode(data)
    check_result(w.verifier().verify(token), lambda: _genuine_token(w, token))


def _genuine_document(w: World, region: str, path: str, data: bytes) -> bool:
    genuine = _signing_input(w.documents[region][path].decode("ascii").strip())
    return _signing_input(data.decode("ascii", "replace").strip()) == genuine


@harness("verify_status_list", seeds=lambda w: [w.documents["GD"]["status/1.jwt"]])
def fuzz_verify_status_list(data: bytes) -> None:
    w = world()
    verifier = w.verifier({("GD", "status/1.jwt"): data})
    check_result(verifier.verify(w.tokens["GD"]),
                 lambda: _genuine_document(w, "GD", "status/1.jwt", data))


@harness("verify_foreign_trust_list", seeds=lambda w: [w.documents["ZJ"][TRUST_LIST_PATH]],
         max_len=8192)
def fuzz_verify_foreign_trust_list(data: bytes) -> None:
    w = world()
    verifier = w.verifier({("ZJ", TRUST_LIST_PATH): data})
    check_result(verifier.verify(w.tokens["ZJ"]),
                 lambda: _genuine_document(w, "ZJ", TRUST_LIST_PATH, data))


# -- transparency log formats (ecert._formats.note, tiles, merkle) ---------------------------

_LOG_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z


def _ed25519(label: str) -> LocalSigner:
    # Fixed keys, so a saved input replays against the same keys in every session.
    return LocalSigner(ed25519.Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(b"ecert fuzz log\x00" + label.encode()).digest()))


_LOG_SIGNER = note.NoteSigner("log.ecert.example", _ed25519("log"))
_WITNESS = note.NoteSigner.cosigner("witness.example", _ed25519("witness"))
_LOG_KEYS = (_LOG_SIGNER.verifier_key, _WITNESS.verifier_key)
_LEAVES = [merkle.leaf_hash(b"entry %d" % i) for i in range(37)]
_CHECKPOINT = note.Checkpoint("log.ecert.example", 37, merkle.root(_LEAVES))
_SIGNED_CHECKPOINT = note.sign_note(_CHECKPOINT.encode(), [_LOG_SIGNER, _WITNESS],
                                    timestamp=_LOG_TIME)


@harness("note", seeds=lambda w: [_SIGNED_CHECKPOINT])
def fuzz_note(data: bytes) -> None:
    try:
        parsed = note.parse_note(data)
    except FormatError as e:
        _refusal(e)
        return
    assert parsed.text.endswith("\n") and parsed.signatures
    assert note.parse_note(parsed.encode()) == parsed


@harness("checkpoint", seeds=lambda w: [_CHECKPOINT.encode().encode()])
def fuzz_checkpoint(data: bytes) -> None:
    body = text(data)
    try:
        checkpoint = note.Checkpoint.parse(body)
    except FormatError as e:
        _refusal(e)
        return
    assert checkpoint.encode() == body  # canonical: one spelling per checkpoint


@harness("vkey", seeds=lambda w: [k.encode().encode() for k in _LOG_KEYS])
def fuzz_vkey(data: bytes) -> None:
    vkey = text(data)
    try:
        key = note.VerifierKey.parse(vkey)
    except FormatError as e:
        _refusal(e)
        return
    assert key.encode() == vkey


@harness("signed_checkpoint", seeds=lambda w: [_SIGNED_CHECKPOINT])
def fuzz_signed_checkpoint(data: bytes) -> None:
    try:
        checkpoint, verified = note.open_checkpoint(data, _LOG_KEYS,
                                                    origin="log.ecert.example")
    except FormatError as e:
        _refusal(e)
        return
    # Signatures of unknown keys may be added, but the signed text cannot change.
    assert checkpoint == _CHECKPOINT and verified.text == _CHECKPOINT.encode()
    stamps = note.cosignature_timestamps(verified)
    assert set(stamps) <= {"witness.example"}
    assert all(t == _LOG_TIME for t in stamps.values())


@harness("tile_path", seeds=lambda w: [tiles.tile_path(0, 1_234_067).encode(),
                                       tiles.entries_path(5, 17).encode()])
def fuzz_tile_path(data: bytes) -> None:
    path = text(data)
    try:
        parsed = tiles.parse_tile_path(path)
    except FormatError as e:
        _refusal(e)
        return
    assert parsed.path() == path


@harness("entry_bundle", seeds=lambda w: [tiles.encode_entry_bundle(
    [b"entry %d" % i for i in range(37)])])
def fuzz_entry_bundle(data: bytes) -> None:
    try:
        entries = tiles.decode_entry_bundle(data)
    except FormatError as e:
        _refusal(e)
        return
    assert 1 <= len(entries) <= tiles.TILE_WIDTH
    assert tiles.encode_entry_bundle(entries) == data


@harness("hash_tile", seeds=lambda w: [b"".join(_LEAVES)], max_len=tiles.TILE_WIDTH * 32 + 32)
def fuzz_hash_tile(data: bytes) -> None:
    width = max(1, len(data) // merkle.HASH_SIZE)
    try:
        hashes = tiles.decode_hash_tile(data, width)
    except FormatError as e:
        _refusal(e)
        return
    assert len(hashes) == width and b"".join(hashes) == data


def _inclusion_seed(index: int) -> bytes:
    proof = merkle.inclusion_proof(index, len(_LEAVES), _LEAVES)
    return index.to_bytes(8, "big") + _LEAVES[index] + b"".join(proof)


@harness("merkle_inclusion", seeds=lambda w: [_inclusion_seed(i) for i in (0, 17, 36)])
def fuzz_merkle_inclusion(data: bytes) -> None:
    # index (8 bytes) || leaf hash || proof hashes, against the genuine 37-leaf tree.
    index, leaf = int.from_bytes(data[:8], "big"), data[8:40]
    proof = [data[i:i + 32] for i in range(40, len(data), 32)]
    ok = merkle.verify_inclusion(leaf, index, len(_LEAVES), proof, _CHECKPOINT.root)
    assert isinstance(ok, bool)
    assert ok is False or (index < len(_LEAVES) and leaf == _LEAVES[index])


def _consistency_seed(m: int) -> bytes:
    proof = merkle.consistency_proof(m, len(_LEAVES), _LEAVES)
    return m.to_bytes(8, "big") + merkle.root(_LEAVES[:m]) + b"".join(proof)


@harness("merkle_consistency", seeds=lambda w: [_consistency_seed(m) for m in (1, 16, 20, 37)])
def fuzz_merkle_consistency(data: bytes) -> None:
    # m (8 bytes) || root of the first m leaves || proof hashes, to the genuine tree.
    m, root_m = int.from_bytes(data[:8], "big"), data[8:40]
    proof = [data[i:i + 32] for i in range(40, len(data), 32)]
    ok = merkle.verify_consistency(m, len(_LEAVES), proof, root_m, _CHECKPOINT.root)
    assert isinstance(ok, bool)
    assert ok is False or (0 < m <= len(_LEAVES) and root_m == merkle.root(_LEAVES[:m]))


# -- HTTP message signatures (RFC 9421) and Content-Digest (RFC 9530) ------------------------

_REQUEST_KEY = _ed25519("requester")
_REQUEST_PUBLIC = jose.key_from_jwk(_REQUEST_KEY.public_jwk)[1]
_REQUEST_URL = "http://127.0.0.1:8000/v1/copies"
_REQUEST_BODY = b'{"holder_id":"x"}'
_REQUEST_HEADERS = dict(httpsig.sign_request(
    method="POST", url=_REQUEST_URL, body=_REQUEST_BODY, content_type="application/json",
    signer=_REQUEST_KEY, created=_LOG_TIME,
    nonce="ZnV6ei1ub25jZS0wMDAx"))
_GENUINE_FIELDS = (f"{_REQUEST_HEADERS['Signature-Input']}\n"
                   f"{_REQUEST_HEADERS['Signature']}").encode()


@harness("sf_dictionary", seeds=lambda w: [_GENUINE_FIELDS.replace(b"\n", b", "),
                                           _REQUEST_HEADERS["Content-Digest"].encode()])
def fuzz_sf_dictionary(data: bytes) -> None:
    try:
        parsed = httpsig.parse_dictionary(text(data))
    except FormatError as e:
        _refusal(e)
        return
    assert parsed and len(parsed) <= httpsig.MAX_MEMBERS
    for member in parsed.values():
        if isinstance(member, httpsig.InnerList):
            # Strict parsing, so serializing an accepted inner list parses back to it.
            again = httpsig.parse_dictionary("k=" + httpsig.serialize_inner_list(member))
            assert again["k"] == member


@harness("content_digest", seeds=lambda w: [_REQUEST_HEADERS["Content-Digest"].encode()])
def fuzz_content_digest(data: bytes) -> None:
    try:
        httpsig.check_content_digest(text(data), _REQUEST_BODY)
    except FormatError as e:
        _refusal(e)
        return
    digests = httpsig.parse_content_digest(text(data))
    assert digests.get("sha-256", hashlib.sha256(_REQUEST_BODY).digest()) == \
        hashlib.sha256(_REQUEST_BODY).digest()


@harness("request_signature", seeds=lambda w: [_GENUINE_FIELDS])
def fuzz_request_signature(data: bytes) -> None:
    signature_input, _, signature = text(data).partition("\n")
    message = httpsig.HttpMessage(
        (("Content-Type", "application/json"),
         ("Content-Digest", _REQUEST_HEADERS["Content-Digest"])),
        method="POST", target_uri=_REQUEST_URL)
    try:
        parsed = httpsig.parse_signature(signature_input, signature)
        httpsig.verify_message(message, parsed, _REQUEST_PUBLIC)
    except FormatError as e:
        _refusal(e)
        return
    # Whatever was accepted signs exactly the genuine request's parameters.
    genuine = httpsig.parse_signature(*_GENUINE_FIELDS.decode().split("\n"))
    assert parsed.params == genuine.params and parsed.signature == genuine.signature


# -- sharing service documents ---------------------------------------------------------------

_CONTEXT = sharing.CaseContext(purpose="跨省迁移登记", case="ZJ2026120100001",
                               service_item="330000-SX-0001", staff_id="zj-0042",
                               staff_role="受理员", consent="ABCD-EFGH-JKMN")
_SHARE = sharing.ShareRequest("91440300MA5F3K2L8G", ("cn.business-licence",), _CONTEXT)
_CHECK = sharing.CheckRequest("cn.business-licence", {"holder_id": "91440300MA5F3K2L8G"},
                              _CONTEXT)


@harness("share_request", seeds=lambda w: [_SHARE.to_json()], max_len=sharing.MAX_REQUEST_BYTES)
def fuzz_share_request(data: bytes) -> None:
    try:
        request = sharing.ShareRequest.from_json(data)
    except FormatError as e:
        _refusal(e)
        return
    assert sharing.ShareRequest.from_json(request.to_json()) == request


@harness("check_request", seeds=lambda w: [_CHECK.to_json()], max_len=sharing.MAX_REQUEST_BYTES)
def fuzz_check_request(data: bytes) -> None:
    try:
        request = sharing.CheckRequest.from_json(data)
    except FormatError as e:
        _refusal(e)
        return
    assert any(key in request.values for key in sharing.CHECK_KEYS)
    assert sharing.CheckRequest.from_json(request.to_json()) == request


@harness("problem", seeds=lambda w: [sharing.Problem.of("not_entitled", "x").to_json()])
def fuzz_problem(data: bytes) -> None:
    try:
        problem = sharing.Problem.from_json(data)
    except FormatError as e:
        _refusal(e)
        return
    assert 400 <= problem.status <= 599
    assert sharing.Problem.from_json(problem.to_json()) == problem
