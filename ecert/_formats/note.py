"""C2SP signed notes, tlog checkpoints and tlog cosignatures (Ed25519).

* Signed notes (https://c2sp.org/signed-note): a UTF-8 text ending in a newline, a blank
  line, and signature lines ``— <name> base64(key id || signature)``. Parsing is strict
  (valid UTF-8, no control characters but newline, canonical base64, bounded size and
  signature count); verification follows the spec: signatures from unknown keys are
  ignored, every signature from a known key is checked and one bad one rejects the note,
  and a note with no verified signature is rejected.
* Verifier keys ``<name>+<hex key id>+<base64(type || public key)>``, type 0x01 (Ed25519
  note signatures) or 0x04 (Ed25519 cosignatures), key id = SHA-256(name || 0x0A || type
  || public key)[:4].
* Checkpoints (https://c2sp.org/tlog-checkpoint): origin, decimal tree size, base64 root
  hash, optional extension lines.
* Cosignatures (https://c2sp.org/tlog-cosignature, Ed25519 "cosignature/v1"): the cosigner
  signs ``cosignature/v1\\ntime <T>\\n`` + the checkpoint text; the signature is the 8-byte
  big-endian timestamp followed by the 64-byte Ed25519 signature.

Signing goes through an ecert :class:`~ecert.keys.Signer` whose ``alg`` is ``Ed25519``, so
log and witness keys can live in the same key store (or HSM) as every other ecert key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from ecert._formats.jose import ED25519, b64url_decode
from ecert.errors import FormatError

#: Signature type of Ed25519 note signatures (signed-note).
SIG_ED25519 = 0x01
#: Signature type of timestamped Ed25519 checkpoint cosignatures (tlog-cosignature).
SIG_COSIGNATURE_V1 = 0x04
_KEY_SIZES = {SIG_ED25519: 32, SIG_COSIGNATURE_V1: 32}

#: Largest note accepted: room for 100 post-quantum signatures of 5 kB.
MAX_NOTE_BYTES = 1 << 20
#: Most signature lines accepted in one note (the spec asks for at least 16).
MAX_SIGNATURES = 100
#: Cosignature timestamps must not exceed 2**63 - 1.
MAX_TIMESTAMP = (1 << 63) - 1
MAX_TREE_SIZE = (1 << 64) - 1

_SIG_PREFIX = "— "
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_HEX_ID = re.compile(r"[0-9a-f]{8}")


class NoteError(FormatError):
    """A note, key or checkpoint is malformed, or a note does not verify.

    Codes: ``malformed``, ``too_large``, ``invalid_signature`` (a known key's signature is
    wrong), ``unverified`` (no known key signed), ``ambiguous_key`` (two different trusted
    keys share a name and key id), ``unsupported_key`` (a signer is not Ed25519).
    """

    code = "malformed"


def _fail(what: str, code: str = "malformed") -> NoteError:
    return NoteError(what, code=code)


def _b64decode(text: str) -> bytes:
    """Strict, canonical standard base64 (RFC 4648 section 4, padded)."""
    try:
        data = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise _fail("not base64") from e
    # Re-encoding refuses the spellings strict mode lets through (non-zero trailing bits).
    if base64.b64encode(data).decode("ascii") != text:
        raise _fail("non-canonical base64")
    return data


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def valid_name(name: str) -> bool:
    """Key names are non-empty, without Unicode spaces, ``+``, control characters or lone
    surrogates (which are no characters and cannot be UTF-8: found by fuzzing)."""
    return (
        isinstance(name, str) and name != "" and "+" not in name
        and not any(c.isspace() or c < " " or "\ud800" <= c <= "\udfff" for c in name)
    )


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4], the recommended key id."""
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key
    ).digest()[:4]


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What an Ed25519 cosigner signs: the v1 header, the time line, the checkpoint text."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def _ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    if len(signature) != 64:
        return False
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# -- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A trusted note-signing or cosigning public key ("vkey")."""

    name: str
    sig_type: int
    public_key: bytes

    def __post_init__(self) -> None:
        if not valid_name(self.name):
            raise _fail(f"invalid key name {self.name!r}")
        if _KEY_SIZES.get(self.sig_type) != len(self.public_key):
            raise _fail("unsupported key type or wrong key size", code="unsupported_key")

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id that prefixes this key's signatures."""
        return key_id(self.name, self.sig_type, self.public_key)

    def encode(self) -> str:
        """``<name>+<hex key id>+<base64(type || key)>``."""
        raw = bytes([self.sig_type]) + self.public_key
        return f"{self.name}+{self.key_id.hex()}+{_b64encode(raw)}"

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Parse a vkey strictly: its key id must be the one its name and key give."""
        if not isinstance(vkey, str) or len(vkey) > 4096:
            raise _fail("a vkey is a short string")
        name, _, rest = vkey.partition("+")
        hex_id, _, b64 = rest.partition("+")
        if not _HEX_ID.fullmatch(hex_id):
            raise _fail("vkey key id is 8 lowercase hex digits")
        raw = _b64decode(b64)
        if not raw:
            raise _fail("vkey has no key")
        key = cls(name=name, sig_type=raw[0], public_key=raw[1:])
        if key.key_id.hex() != hex_id:
            raise _fail("vkey key id does not match its key")
        return key

    def verify(self, text: str, signature: bytes) -> int | None:
        """Check a signature over note ``text``; ``None`` if wrong.

        Returns the cosignature timestamp for type 0x04 keys, 0 for plain Ed25519 ones.
        """
        if self.sig_type == SIG_ED25519:
            ok = _ed25519_verify(self.public_key, signature, text.encode("utf-8"))
            return 0 if ok else None
        if len(signature) != 8 + 64:
            return None
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            return None
        message = cosignature_message(text, timestamp)
        return timestamp if _ed25519_verify(self.public_key, signature[8:], message) else None


class Ed25519SignerLike(Protocol):
    """What note signing needs of an :class:`ecert.keys.Signer`."""

    @property
    def alg(self) -> str: ...

    @property
    def public_jwk(self) -> dict[str, str]: ...

    def sign(self, message: bytes) -> bytes: ...


class NoteSigner:
    """Signs notes (type 0x01) or cosigns checkpoints (type 0x04) as ``name``."""

    __slots__ = ("_signer", "verifier_key")

    def __init__(self, name: str, signer: Ed25519SignerLike, sig_type: int = SIG_ED25519):
        if getattr(signer, "alg", None) != ED25519:
            raise _fail("notes are signed with Ed25519 keys", code="unsupported_key")
        if sig_type not in _KEY_SIZES:
            raise _fail(f"unsupported signature type {sig_type}", code="unsupported_key")
        try:
            public_key = b64url_decode(signer.public_jwk["x"])
        except (KeyError, TypeError) as e:
            raise _fail("signer has no Ed25519 public key", code="unsupported_key") from e
        self._signer = signer
        #: The public half, to hand to verifiers (``verifier_key.encode()`` is the vkey).
        self.verifier_key = VerifierKey(name=name, sig_type=sig_type, public_key=public_key)

    @classmethod
    def cosigner(cls, name: str, signer: Ed25519SignerLike) -> NoteSigner:
        """A tlog-cosignature/v1 (type 0x04) signer."""
        return cls(name, signer, SIG_COSIGNATURE_V1)

    @property
    def name(self) -> str:
        """The key name in signature lines."""
        return self.verifier_key.name

    def sign(self, text: str, timestamp: int | None = None) -> Signature:
        """A signature over note ``text``; cosigners need the POSIX ``timestamp``."""
        _check_text(text)
        key = self.verifier_key
        if key.sig_type == SIG_ED25519:
            if timestamp is not None:
                raise _fail("only cosignatures carry a timestamp")
            raw = bytes(self._signer.sign(text.encode("utf-8")))
        else:
            if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
                raise _fail("a cosignature needs a timestamp between 0 and 2**63 - 1")
            # A cosignature vouches for a checkpoint: never cosign anything else.
            Checkpoint.parse(text)
            raw = timestamp.to_bytes(8, "big") + bytes(
                self._signer.sign(cosignature_message(text, timestamp))
            )
        if len(raw) != (64 if key.sig_type == SIG_ED25519 else 72):
            raise _fail("signer returned a signature of the wrong size", code="unsupported_key")
        return Signature(name=key.name, key_id=key.key_id, signature=raw)


# -- notes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line: key name, 4-byte key id, and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not valid_name(self.name) or len(self.key_id) != 4 or not self.signature:
            raise _fail("invalid signature line")

    def line(self) -> str:
        """``— <name> <base64(key id || signature)>\\n``."""
        return f"{_SIG_PREFIX}{self.name} {_b64encode(self.key_id + self.signature)}\n"


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise _fail("note text ends with a newline")
    if _CONTROL.search(text):
        raise _fail("note text contains control characters")
    if len(text) > MAX_NOTE_BYTES:
        raise _fail("note text is too large", code="too_large")


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed note: its text (with the final newline) and its signatures, unverified."""

    text: str
    signatures: tuple[Signature, ...]

    def encode(self) -> bytes:
        """Text, blank line, signature lines."""
        _check_text(self.text)
        if not self.signatures:
            raise _fail("a note has at least one signature")
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode("utf-8")


def parse_note(
    data: bytes | str, *, max_bytes: int = MAX_NOTE_BYTES, max_signatures: int = MAX_SIGNATURES
) -> Note:
    """Split a signed note into text and signature lines, strictly; check no signature."""
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as e:
            raise _fail("note is not UTF-8") from e
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise _fail("a note is bytes or text")
    if len(raw) > max_bytes:
        raise _fail(f"note exceeds {max_bytes} bytes", code="too_large")
    try:
        message = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _fail("note is not UTF-8") from e
    if _CONTROL.search(message):
        raise _fail("note contains control characters")
    # The text is separated from the signatures by the last empty line.
    split = message.rfind("\n\n")
    if split < 0:
        raise _fail("note has no signature block")
    text, block = message[:split + 1], message[split + 2:]
    if not block.endswith("\n"):
        raise _fail("note does not end with a signature line")
    lines = block[:-1].split("\n")
    if len(lines) > max_signatures:
        raise _fail(f"note has more than {max_signatures} signatures", code="too_large")
    signatures = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise _fail("malformed signature line")
        name, _, b64 = line[len(_SIG_PREFIX):].partition(" ")
        if not valid_name(name) or not b64:
            raise _fail("malformed signature line")
        raw_sig = _b64decode(b64)
        if len(raw_sig) < 5:
            raise _fail("signature too short")
        signatures.append(Signature(name=name, key_id=raw_sig[:4], signature=raw_sig[4:]))
    return Note(text=text, signatures=tuple(signatures))


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature from a trusted key that verified; ``timestamp`` for cosignatures."""

    key: VerifierKey
    signature: Signature
    timestamp: int | None


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    """A note with at least one verified signature."""

    text: str
    verified: tuple[VerifiedSignature, ...]
    #: Signatures from keys not trusted here, each distinct line once.
    unverified: tuple[Signature, ...]


def verify_note(
    data: bytes | str | Note,
    keys: Iterable[VerifierKey],
    *,
    max_bytes: int = MAX_NOTE_BYTES,
    max_signatures: int = MAX_SIGNATURES,
) -> VerifiedNote:
    """Parse and verify a note against trusted ``keys``; raise :class:`NoteError` if not.

    A signature is from a trusted key when both name and key id match it; others are
    ignored. Every signature from a trusted key must verify (``invalid_signature``), and
    at least one must (``unverified``). A trusted key signing twice is listed once.
    """
    note = data if isinstance(data, Note) else parse_note(
        data, max_bytes=max_bytes, max_signatures=max_signatures)
    by_id: dict[tuple[str, bytes], list[VerifierKey]] = {}
    for key in keys:
        candidates = by_id.setdefault((key.name, key.key_id), [])
        if key not in candidates:
            candidates.append(key)
    verified: list[VerifiedSignature] = []
    unverified: list[Signature] = []
    seen: set[tuple[str, bytes]] = set()
    for sig in note.signatures:
        matching = by_id.get((sig.name, sig.key_id))
        if not matching:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if len(matching) > 1:
            raise _fail(f"ambiguous key {sig.name}+{sig.key_id.hex()}", code="ambiguous_key")
        key = matching[0]
        timestamp = key.verify(note.text, sig.signature)
        if timestamp is None:
            raise _fail(
                f"invalid signature for key {sig.name}+{sig.key_id.hex()}",
                code="invalid_signature",
            )
        if (sig.name, sig.key_id) in seen:
            continue
        seen.add((sig.name, sig.key_id))
        verified.append(VerifiedSignature(
            key=key, signature=sig,
            timestamp=timestamp if key.sig_type == SIG_COSIGNATURE_V1 else None,
        ))
    if not verified:
        raise _fail("note has no verifiable signatures", code="unverified")
    return VerifiedNote(text=note.text, verified=tuple(verified), unverified=tuple(unverified))


def sign_note(
    text: str,
    signers: Sequence[NoteSigner],
    *,
    timestamp: int | None = None,
    existing: Sequence[Signature] = (),
) -> bytes:
    """Sign ``text`` with ``signers``; keep ``existing`` signatures not made by them.

    ``timestamp`` is used by cosigners (type 0x04) only.
    """
    _check_text(text)
    fresh = [s.sign(text, timestamp if s.verifier_key.sig_type == SIG_COSIGNATURE_V1
                    else None) for s in signers]
    replaced = {(s.name, s.key_id) for s in fresh}
    kept = [s for s in existing if (s.name, s.key_id) not in replaced]
    return Note(text=text, signatures=(*kept, *fresh)).encode()


# -- checkpoints -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog checkpoint body: origin, tree size, root hash, optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for line in (self.origin, *self.extensions):
            if not isinstance(line, str) or not line or "\n" in line or _CONTROL.search(line):
                raise _fail("checkpoint lines are non-empty single lines")
        if type(self.size) is not int or not 0 <= self.size <= MAX_TREE_SIZE:
            raise _fail("checkpoint tree size is a 64-bit unsigned integer")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise _fail("checkpoint root hash has 32 bytes")
        if not isinstance(self.extensions, tuple):
            raise _fail("checkpoint extensions are a tuple of lines")

    def encode(self) -> str:
        """The note text: one line each, each ending in a newline."""
        lines = (self.origin, str(self.size), _b64encode(self.root), *self.extensions)
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly (the text of a verified note)."""
        if not isinstance(text, str):
            raise _fail("a checkpoint is text")
        _check_text(text)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise _fail("a checkpoint has origin, size and root lines")
        origin, size, root, *extensions = lines
        if not _SIZE.fullmatch(size) or int(size) > MAX_TREE_SIZE:
            raise _fail("checkpoint tree size is a decimal without leading zeros")
        return cls(origin=origin, size=int(size), root=_b64decode(root),
                   extensions=tuple(extensions))


def open_checkpoint(
    data: bytes | str, keys: Iterable[VerifierKey], *, origin: str | None = None
) -> tuple[Checkpoint, VerifiedNote]:
    """Verify a signed checkpoint note and parse its text; check its origin if given."""
    note = verify_note(data, keys)
    checkpoint = Checkpoint.parse(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise _fail(f"checkpoint is from {checkpoint.origin!r}, not {origin!r}")
    return checkpoint, note


def cosignature_timestamps(note: VerifiedNote) -> Mapping[str, int]:
    """Cosigner name -> timestamp for every verified cosignature of a note."""
    return {
        v.key.name: v.timestamp for v in note.verified
        if v.key.sig_type == SIG_COSIGNATURE_V1 and v.timestamp is not None
    }
