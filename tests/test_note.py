"""C2SP signed notes, checkpoints and cosignatures: the Go sumdb/note and C2SP vectors,
strict parsing, duplicate and unknown signatures, and decoders that only raise FormatError."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from ecert._formats import note as note_module
from ecert._formats.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    Checkpoint,
    Note,
    NoteError,
    NoteSigner,
    Signature,
    VerifierKey,
    cosignature_message,
    cosignature_timestamps,
    key_id,
    open_checkpoint,
    parse_note,
    sign_note,
    verify_note,
)
from ecert.errors import FormatError
from ecert.keys import LocalSigner, generate_private_key

# golang.org/x/mod/sumdb/note note_test.go
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = ("If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n")
PETER_SIG = ("— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSN"
             "XgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
ENOCH_SIG = ("— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG"
             "01oOTGwnWLox33WWd1RvMc+QQ=\n")
PETER = VerifierKey.parse(PETER_VKEY)
ENOCH = VerifierKey.parse(ENOCH_VKEY)


def peter_signer() -> NoteSigner:
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    return NoteSigner("PeterNeumann", LocalSigner(key))


def ed_signer(seed: int) -> LocalSigner:
    return LocalSigner(ed25519.Ed25519PrivateKey.from_private_bytes(seed.to_bytes(32, "big")))


# -- keys -------------------------------------------------------------------------------------


def test_go_verifier_keys() -> None:
    assert PETER.name == "PeterNeumann" and PETER.key_id.hex() == "c74f20a3"
    assert PETER.sig_type == SIG_ED25519 and PETER.encode() == PETER_VKEY
    assert ENOCH.encode() == ENOCH_VKEY
    assert peter_signer().verifier_key == PETER


def test_c2sp_spec_example() -> None:
    key = VerifierKey.parse("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
    note = ("This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq"
            "6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")
    assert verify_note(note, [key]).text == "This is an example message.\n"


def test_every_mangled_vkey_is_refused() -> None:
    # As Go's TestNewVerifier: every proper substring and every one-byte change fails.
    for i in range(len(PETER_VKEY) + 1):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(FormatError):
                    VerifierKey.parse(PETER_VKEY[i:j])
    for i in range(len(PETER_VKEY)):
        mangled = PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1:]
        with pytest.raises(FormatError):
            VerifierKey.parse(mangled)
    with pytest.raises(FormatError):  # wrong key length, key id adjusted
        VerifierKey.parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(FormatError):  # unknown algorithm, key id adjusted
        VerifierKey.parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_key_id_definition() -> None:
    pub = PETER.public_key
    assert key_id("PeterNeumann", 1, pub) == hashlib.sha256(
        b"PeterNeumann\n\x01" + pub).digest()[:4]
    cosigner = VerifierKey("PeterNeumann", SIG_COSIGNATURE_V1, pub)
    assert cosigner.key_id == hashlib.sha256(b"PeterNeumann\n\x04" + pub).digest()[:4]
    assert VerifierKey.parse(cosigner.encode()) == cosigner


# -- notes ------------------------------------------------------------------------------------


def test_go_sign_vector() -> None:
    want = TEXT + "\n" + PETER_SIG
    assert sign_note(TEXT, [peter_signer()]).decode() == want
    # An existing signature by the same key is replaced.
    bad = Signature("PeterNeumann", bytes.fromhex("c74f20a3"), b"BAD")
    assert sign_note(TEXT, [peter_signer()], existing=[bad]).decode() == want
    with pytest.raises(FormatError):
        sign_note("abc", [peter_signer()])


def test_go_open_vectors() -> None:
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    one = verify_note(note, [PETER])
    assert one.text == TEXT
    assert [v.key for v in one.verified] == [PETER]
    assert [s.name for s in one.unverified] == ["EnochRoot"]
    both = verify_note(note, [PETER, ENOCH])
    assert [v.key for v in both.verified] == [PETER, ENOCH] and not both.unverified
    with pytest.raises(NoteError) as info:
        verify_note(note, [])
    assert info.value.code == "unverified"
    # Too many signatures.
    with pytest.raises(NoteError) as info:
        verify_note(TEXT + "\n" + PETER_SIG * 101, [PETER])
    assert info.value.code == "too_large"
    # A known key's bad signature rejects the whole note.
    spoiled = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError) as info:
        verify_note(TEXT + "\n" + spoiled, [PETER])
    assert info.value.code == "invalid_signature"
    # Repeated signatures are listed once; repeated unknown lines once each.
    enoch_spoiled = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    result = verify_note(
        TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_spoiled, [PETER])
    assert len(result.verified) == 1 and len(result.unverified) == 2


@pytest.mark.parametrize(
    "note",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name")[:-1],
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace("— ", "-- "),
        TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),  # unpadded base64
        TEXT + "\n" + PETER_SIG.replace("AM=", "AN="),  # non-canonical trailing bits
        TEXT + "\n" + "— PeterNeumann AAAA\n",  # shorter than key id + 1 byte
        TEXT + "\n" + "— PeterNeumann \n",
        TEXT + "\r\n" + PETER_SIG,
        TEXT.replace("\n", "\t", 1) + "\n" + PETER_SIG,
        "\n" + PETER_SIG,
    ],
)
def test_malformed_notes(note: str) -> None:
    with pytest.raises(NoteError) as info:
        verify_note(note, [PETER])
    assert info.value.code == "malformed"


def test_invalid_utf8_and_size_limit() -> None:
    with pytest.raises(NoteError):
        parse_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode())
    with pytest.raises(NoteError):
        parse_note("\ud800" + TEXT + "\n" + PETER_SIG)
    with pytest.raises(NoteError) as info:
        parse_note((TEXT + "\n" + PETER_SIG).encode(), max_bytes=50)
    assert info.value.code == "too_large"


def test_unknown_keys_sharing_name_or_id_are_ignored() -> None:
    other = VerifierKey("PeterNeumann", SIG_ED25519, bytes(range(32)))
    assert other.key_id != PETER.key_id
    result = verify_note(TEXT + "\n" + PETER_SIG, [PETER, other])
    assert [v.key for v in result.verified] == [PETER]
    with pytest.raises(NoteError) as info:
        verify_note(TEXT + "\n" + PETER_SIG, [other])
    assert info.value.code == "unverified"


def test_ambiguous_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two different trusted keys with one name and key id (a 32-bit id collision, forced
    # here): a signature naming them is refused rather than checked against either.
    twin = VerifierKey("PeterNeumann", SIG_ED25519, bytes(range(32)))
    monkeypatch.setattr(note_module, "key_id", lambda *args: bytes.fromhex("c74f20a3"))
    with pytest.raises(NoteError) as info:
        verify_note(TEXT + "\n" + PETER_SIG, [PETER, twin])
    assert info.value.code == "ambiguous_key"
    monkeypatch.undo()
    # The same key twice is no collision.
    assert verify_note(TEXT + "\n" + PETER_SIG, [PETER, PETER]).verified


def test_sign_and_verify_with_an_ecert_signer() -> None:
    signer = NoteSigner("ecert.example/log", ed_signer(7))
    note = sign_note("hello\n", [signer])
    result = verify_note(note, [VerifierKey.parse(signer.verifier_key.encode())])
    assert result.text == "hello\n"
    with pytest.raises(NoteError) as info:
        NoteSigner("x", LocalSigner(generate_private_key("ES256")))
    assert info.value.code == "unsupported_key"
    with pytest.raises(NoteError):
        NoteSigner("bad name", ed_signer(7))
    with pytest.raises(NoteError):
        NoteSigner("a+b", ed_signer(7))


# -- checkpoints and cosignatures -------------------------------------------------------------

SOFA = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_checkpoint_spec_example() -> None:
    cp = Checkpoint.parse(SOFA)
    assert cp.origin == "example.com/behind-the-sofa" and cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == () and cp.encode() == SOFA
    ext = Checkpoint(cp.origin, cp.size, cp.root, ("ext one", "ext two"))
    assert Checkpoint.parse(ext.encode()) == ext


@pytest.mark.parametrize(
    "text",
    [
        "",
        "origin\n1\n",
        "origin\n01\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n+1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n18446744073709551616\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n1\n" + base64.b64encode(bytes(31)).decode() + "\n",
        "origin\n1\n" + base64.b64encode(bytes(32)).decode(),
        "\n1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n",
        "origin\n1\n" + base64.b64encode(bytes(32)).decode() + "\next\n\n",
        "origin\n1 \n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n١\n" + base64.b64encode(bytes(32)).decode() + "\n",  # Arabic-Indic one
        "origin\n1\n" + base64.b64encode(bytes(32)).decode().rstrip("=") + "\n",
    ],
)
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


def test_checkpoint_limits() -> None:
    top = Checkpoint("o", 2**64 - 1, bytes(32))
    assert Checkpoint.parse(top.encode()) == top
    assert Checkpoint.parse(Checkpoint("o", 0, bytes(32)).encode()).size == 0
    for bad in (
        lambda: Checkpoint("", 1, bytes(32)),
        lambda: Checkpoint("a\nb", 1, bytes(32)),
        lambda: Checkpoint("o", -1, bytes(32)),
        lambda: Checkpoint("o", True, bytes(32)),
        lambda: Checkpoint("o", 1, bytes(31)),
        lambda: Checkpoint("o", 1, bytes(32), ("",)),
    ):
        with pytest.raises(NoteError):
            bad()


def test_cosignature_round_trip_and_exact_bytes() -> None:
    log = NoteSigner("example.com/behind-the-sofa", ed_signer(1))
    witness_key = ed25519.Ed25519PrivateKey.from_private_bytes((2).to_bytes(32, "big"))
    witness = NoteSigner.cosigner("witness.example.com/w1", LocalSigner(witness_key))
    note = sign_note(SOFA, [log])
    cosig = witness.sign(SOFA, 1679315147)
    # Built by hand from the spec, independently of the module.
    pub = witness.verifier_key.public_key
    expected = (hashlib.sha256(b"witness.example.com/w1\n\x04" + pub).digest()[:4]
                + (1679315147).to_bytes(8, "big")
                + witness_key.sign(b"cosignature/v1\ntime 1679315147\n" + SOFA.encode()))
    assert cosig.key_id + cosig.signature == expected
    assert cosignature_message(SOFA, 5) == b"cosignature/v1\ntime 5\n" + SOFA.encode()
    cosigned = Note(SOFA, (*parse_note(note).signatures, cosig)).encode()
    checkpoint, verified = open_checkpoint(
        cosigned, [log.verifier_key, witness.verifier_key], origin="example.com/behind-the-sofa")
    assert checkpoint.size == 20852163
    assert cosignature_timestamps(verified) == {"witness.example.com/w1": 1679315147}
    assert [v.timestamp for v in verified.verified] == [None, 1679315147]
    # The cosignature alone verifies too; the log key alone sees it as unknown.
    assert verify_note(cosigned, [witness.verifier_key]).verified[0].timestamp == 1679315147
    assert len(verify_note(cosigned, [log.verifier_key]).unverified) == 1
    with pytest.raises(NoteError):
        open_checkpoint(cosigned, [log.verifier_key], origin="other.example")


def test_cosignature_tampering() -> None:
    witness = NoteSigner.cosigner("w", ed_signer(3))
    cosig = witness.sign(SOFA, 100)
    for raw in (
        (101).to_bytes(8, "big") + cosig.signature[8:],  # another time
        cosig.signature[:-1],
        cosig.signature[8:],  # a plain Ed25519 signature
        (2**63).to_bytes(8, "big") + cosig.signature[8:],
    ):
        with pytest.raises(NoteError) as info:
            verify_note(Note(SOFA, (Signature("w", cosig.key_id, raw),)).encode(),
                        [witness.verifier_key])
        assert info.value.code == "invalid_signature"
    # A type 0x01 key with the same name and public key has another key id: unknown.
    plain = VerifierKey("w", SIG_ED25519, witness.verifier_key.public_key)
    with pytest.raises(NoteError) as info:
        verify_note(Note(SOFA, (cosig,)).encode(), [plain])
    assert info.value.code == "unverified"
    with pytest.raises(NoteError):
        witness.sign(SOFA)
    with pytest.raises(NoteError):
        witness.sign(SOFA, 2**63)
    with pytest.raises(NoteError):  # not a checkpoint
        witness.sign("hello\n", 5)
    with pytest.raises(NoteError):
        NoteSigner("w", ed_signer(3)).sign(SOFA, 5)
    # sign_note hands the timestamp to cosigners only.
    both = sign_note(SOFA, [NoteSigner("log", ed_signer(4)), witness], timestamp=7)
    stamps = cosignature_timestamps(verify_note(both, [witness.verifier_key]))
    assert stamps == {"w": 7}


# -- decoders only raise FormatError ----------------------------------------------------------

_note_alphabet = st.sampled_from(["\n", "— ", " ", "+", "=", "a", "Z", "0", "/", "é", "\x01",
                                  "x08go/ZJkuBS9UG/SffcvIAQ", "PeterNeumann", "\n\n"])


@settings(max_examples=40)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                 st.lists(_note_alphabet, max_size=40).map("".join)))
def test_note_decoders_only_raise_format_error(data: bytes | str) -> None:
    for call in (
        lambda: parse_note(data),
        lambda: verify_note(data, [PETER, ENOCH]),
        lambda: Checkpoint.parse(data.decode("utf-8", "replace") if isinstance(data, bytes)
                                 else data),
        lambda: VerifierKey.parse(data if isinstance(data, str) else data.hex()),
    ):
        with contextlib.suppress(FormatError):
            call()


@settings(max_examples=40)
@given(st.binary(min_size=1, max_size=80), st.sampled_from(["PeterNeumann", "EnochRoot"]))
def test_arbitrary_signature_lines(sig: bytes, name: str) -> None:
    line = f"— {name} {base64.b64encode(bytes.fromhex('c74f20a3') + sig).decode()}\n"
    with pytest.raises(FormatError):
        verify_note(TEXT + "\n" + line, [PETER])


_line = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20)


@settings(max_examples=40)
@given(_line, st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32),
       st.lists(_line, max_size=3))
def test_checkpoint_round_trip(origin: str, size: int, root: bytes, ext: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(ext))
    assert Checkpoint.parse(cp.encode()) == cp
