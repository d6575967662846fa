"""Purpose-bound copies (加注件, ``ecert-copy+jwt``) through :meth:`ecert.Verifier.verify`.

Every copy is made of the golden GD business licence and signed with a sharing key put
into a copy of the golden bundle's trust list (``tests/support/sharing.py``). Each refusal
is asserted exactly: status, the one error code, and that the result says it was a copy.
The tests run on the copy token and again on its QR form (``EC1:``, the QR code of a
copy's card), which must be judged alike.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ecert._formats import jose
from ecert._formats import qr as qr_format
from ecert._formats.certificate import CERTIFICATE_TYP
from ecert._formats.copy import COPY_TYP, CopyClaims
from ecert._formats.statuslist import INVALID, SUSPENDED
from ecert._formats.trustlist import Agreement, TrustList
from ecert._sources import BundleDirectory, MirrorSource, RoutedSource
from ecert.keys import LocalSigner, generate_private_key
from ecert.verify import ErrorCode as E
from ecert.verify import TokenKind, VerificationResult, Verifier
from ecert.verify import VerificationStatus as S
from tests.support import FakeClock, Published
from tests.support.cli import Cli
from tests.support.sharing import (
    AUDIENCE,
    CASE,
    DAY,
    FORMS,
    PURPOSE,
    CopyEnv,
    add_sharing_key,
    copy_env,
    copy_of,
    read_trust_list,
    write_status,
)


@pytest.fixture(params=FORMS)
def env(published_copy: Published, clock: FakeClock, request: pytest.FixtureRequest
        ) -> CopyEnv:
    """Every check of a copy, on the copy token and on its QR form (format section 17.4),
    which must be judged alike."""
    return copy_env(published_copy, clock, request.param)


@pytest.fixture
def token_env(published_copy: Published, clock: FakeClock) -> CopyEnv:
    """For tokens that have no QR form (another typ, a header not in canonical form)."""
    return copy_env(published_copy, clock)


def refused(result: VerificationResult, status: S, code: E) -> None:
    assert (result.valid, result.status, result.errors) == (False, status, (code,)), (
        result.messages)
    assert result.kind is TokenKind.COPY
    assert result.copy is None and result.certificate is None


def test_a_copy_verifies_for_its_audience_and_purpose(env: CopyEnv) -> None:
    result = env.verify(env.token(), audience=AUDIENCE, purpose=PURPOSE)
    assert result.valid, result.messages
    assert (result.status, result.errors, result.kind) == (S.VALID, (), TokenKind.COPY)
    assert result.certificate is None  # a copy is not the certificate
    info = result.copy
    assert info is not None
    assert (info.copy_of, info.audience, info.purpose, info.case) == (
        env.cert.id, AUDIENCE, PURPOSE, CASE)
    assert info.type_code == env.cert.type_code == result.local_type
    assert dict(info.claims) == {k: env.cert.claims[k] for k in ("name", "uscc")}
    assert int(info.expires_at.timestamp()) == env.now + DAY
    assert result.issuer is not None and result.agreement is None
    assert (result.issuer.agency_code, result.issuer.kid) == (
        env.cert.agency_code, env.sharing.kid)
    out = result.to_json()
    assert (out["valid"], out["kind"], out["copy"]["copy_of"], out["copy"]["purpose"]) == (
        True, "copy", env.cert.id, PURPOSE)
    assert out["copy"]["expires_at"] == info.expires_at.isoformat()
    assert "certificate" not in out and out["issuer"]["kid"] == env.sharing.kid
    # The QR form carries the whole copy.
    qr = env.form == "qr"
    assert (result.qr, result.claims_present) == (qr, ("name", "uscc") if qr else ())
    assert ("qr" in out) is (env.form == "qr")
    # Without a purpose asked for, any purpose is accepted; certificates ignore both.
    assert env.verify(env.token(), audience=AUDIENCE).valid
    cert = env.verifier().verify(env.cert.token, audience="SH/nobody", purpose="x")
    assert cert.valid and cert.kind is TokenKind.CERTIFICATE and cert.copy is None
    assert cert.to_json()["kind"] == "certificate"


@pytest.mark.parametrize(("kwargs", "code"), [
    ({}, E.AUDIENCE_REQUIRED),
    ({"purpose": PURPOSE}, E.AUDIENCE_REQUIRED),
    ({"audience": "ZJ/zj-hrss"}, E.WRONG_AUDIENCE),
    ({"audience": "ZJ"}, E.WRONG_AUDIENCE),  # a region is not one of its agencies
    ({"audience": AUDIENCE, "purpose": "食品经营许可核发"}, E.WRONG_PURPOSE),
])
def test_a_copy_is_refused_to_any_other_use(env: CopyEnv, kwargs: dict[str, str],
                                           code: E) -> None:
    refused(env.verify(env.token(), **kwargs), S.UNTRUSTED, code)


def test_an_agency_key_never_verifies_a_copy(env: CopyEnv) -> None:
    refused(env.verify(env.copy().sign(env.agency), audience=AUDIENCE),
            S.UNTRUSTED, E.UNKNOWN_KID)


def test_a_sharing_key_never_verifies_a_certificate(token_env: CopyEnv) -> None:
    env = token_env
    payload = jose.parse_compact(env.cert.token, max_bytes=65_536).payload
    token = jose.sign_compact(payload, env.sharing, CERTIFICATE_TYP)
    result = env.verify(token, audience=AUDIENCE)
    assert (result.status, result.errors, result.kind) == (
        S.UNTRUSTED, (E.UNKNOWN_KID,), TokenKind.CERTIFICATE)


def test_a_copy_under_another_typ_is_not_a_copy(token_env: CopyEnv) -> None:
    env = token_env
    payload = env.copy().to_payload()
    # As a certificate: the sharing key is no certificate key.
    result = env.verify(jose.sign_compact(payload, env.sharing, CERTIFICATE_TYP),
                        audience=AUDIENCE)
    assert (result.status, result.errors) == (S.UNTRUSTED, (E.UNKNOWN_KID,))
    result = env.verify(jose.sign_compact(payload, env.sharing, "statuslist+jwt"),
                        audience=AUDIENCE)
    assert (result.status, result.errors) == (S.INVALID, (E.WRONG_TYP,))
    # The certificate's own payload under the copy typ, signed by the sharing key.
    original = jose.parse_compact(env.cert.token, max_bytes=65_536).payload
    refused(env.verify(jose.sign_compact(original, env.sharing, COPY_TYP), audience=AUDIENCE),
            S.INVALID, E.BAD_CLAIMS)


def test_a_copy_with_a_top_level_vct_is_refused(env: CopyEnv) -> None:
    payload = {**env.copy().to_payload(), "vct": env.cert.type_code}
    refused(env.verify(jose.sign_compact(payload, env.sharing, COPY_TYP), audience=AUDIENCE),
            S.INVALID, E.BAD_CLAIMS)


def test_a_tampered_copy_is_refused(env: CopyEnv) -> None:
    head, _payload, signature = env.token().split(".")
    other = env.token(audience="ZJ/zj-hrss").split(".")[1]
    refused(env.verify(f"{head}.{other}.{signature}", audience="ZJ/zj-hrss"),
            S.INVALID, E.BAD_SIGNATURE)
    header = {"alg": "Ed25519", "kid": env.sharing.kid, "typ": COPY_TYP}
    ed = jose.b64url_encode(jose.canonical_json(header))
    refused(env.verify(f"{ed}.{other}.{signature}", audience="ZJ/zj-hrss"),
            S.INVALID, E.ALG_KEY_MISMATCH)


def test_a_copy_must_name_its_original_as_the_trust_list_knows_it(env: CopyEnv) -> None:
    copy = env.copy()
    cases: list[tuple[CopyClaims, S, E]] = [
        (copy._replace(iss="https://ecert.zj.example"), S.UNTRUSTED, E.ISSUER_MISMATCH),
        (copy._replace(region="ZJ"), S.UNTRUSTED, E.REGION_MISMATCH),
        (copy._replace(original=copy.original._replace(
            iss="https://ecert.gd.example/agencies/nobody")), S.UNTRUSTED, E.ISSUER_MISMATCH),
        (copy._replace(original=copy.original._replace(vct="cn.driving-licence")),
         S.UNTRUSTED, E.TYPE_NOT_AUTHORIZED),
        (copy._replace(original=copy.original._replace(vct_version=99)),
         S.INVALID, E.BAD_CLAIMS),
        (copy._replace(copy_of=env.cert.id[:-1] + ("A" if env.cert.id[-1] != "A" else "B")),
         S.INVALID, E.BAD_CERTIFICATE_ID),
    ]
    for forged, status, code in cases:
        refused(env.verify(forged.sign(env.sharing), audience=AUDIENCE), status, code)


def test_the_sharing_key_must_be_valid_when_the_copy_was_made(env: CopyEnv) -> None:
    late = add_sharing_key(env.registry, env.bundle, valid_from=env.now + DAY)
    refused(env.verify(env.copy().sign(late), audience=AUDIENCE),
            S.UNTRUSTED, E.KEY_NOT_VALID_AT_IAT)
    lost = add_sharing_key(env.registry, env.bundle, valid_from=env.now - DAY,
                           status="compromised", compromised_since=env.now - 60)
    refused(env.verify(env.copy().sign(lost), audience=AUDIENCE),
            S.UNTRUSTED, E.KEY_COMPROMISED)
    refused(env.verify(copy_of(env.cert, iat=env.now + 3600).sign(env.sharing),
                       audience=AUDIENCE), S.INVALID, E.ISSUED_IN_FUTURE)


def test_an_expired_copy_of_a_valid_certificate(env: CopyEnv) -> None:
    made = env.now - 2 * DAY
    result = env.verify(copy_of(env.cert, iat=made, ttl=DAY).sign(env.sharing),
                        audience=AUDIENCE)
    assert (result.valid, result.status, result.errors, result.kind) == (
        False, S.EXPIRED, (E.COPY_EXPIRED,), TokenKind.COPY)
    assert result.copy is not None  # authentic: what it said is still reported


def test_a_copy_of_an_expired_or_not_yet_valid_original(env: CopyEnv) -> None:
    copy = env.copy()
    gone = copy._replace(original=copy.original._replace(exp=env.now - DAY))
    result = env.verify(gone.sign(env.sharing), audience=AUDIENCE)
    assert (result.status, result.errors) == (S.EXPIRED, (E.EXPIRED,))
    early = copy._replace(original=copy.original._replace(nbf=env.now + DAY))
    result = env.verify(early.sign(env.sharing), audience=AUDIENCE)
    assert (result.status, result.errors) == (S.NOT_YET_VALID, (E.NOT_YET_VALID,))


@pytest.mark.parametrize(("value", "status", "code"), [
    (INVALID, S.REVOKED, E.REVOKED), (SUSPENDED, S.SUSPENDED, E.SUSPENDED)])
def test_a_revoked_or_suspended_original_invalidates_its_copies(
        env: CopyEnv, value: int, status: S, code: E) -> None:
    token = env.token()
    write_status(env.registry, env.bundle, env.cert, value, now=env.now)
    result = env.verify(token, audience=AUDIENCE)
    assert (result.valid, result.status, result.errors) == (False, status, (code,))
    # The certificate itself says the same.
    assert env.verifier().verify(env.cert.token).errors == (code,)


def test_a_copy_from_an_unrecognized_region(env: CopyEnv) -> None:
    stranger = LocalSigner(generate_private_key())
    token = env.copy(region="SH", iss="https://ecert.sh.example").sign(stranger)
    refused(env.verify(token, audience=AUDIENCE), S.UNTRUSTED, E.REGION_NOT_RECOGNIZED)
    # A key of no region at all, naming ours.
    refused(env.verify(env.copy().sign(stranger), audience=AUDIENCE),
            S.UNTRUSTED, E.UNKNOWN_KID)


def _zj_verifier(env: CopyEnv, types: dict[str, str], tmp_path: Path) -> Verifier:
    """A verifier of region ZJ whose trust list recognizes GD (the golden bundle)."""
    gd = read_trust_list(env.bundle)
    anchor = env.registry.anchor()
    agreement = Agreement("GD", gd.name, dict(anchor.root_jwk), anchor.trust_list_url,
                          env.now - DAY, None, types)
    zj = dataclasses.replace(gd, region="ZJ", name="浙江省", base_url="https://ecert.zj.example",
                             agencies=(), status_keys=(), sharing_keys=(), types=(),
                             agreements=(agreement,), status_lists=(), log=None)
    assert isinstance(zj, TrustList)
    source = RoutedSource([(gd.base_url, BundleDirectory(env.bundle, gd.base_url))],
                          MirrorSource(tmp_path / "nothing"))
    return Verifier(zj, source, clock=env.clock)


def test_a_copy_from_a_recognized_region(env: CopyEnv, tmp_path: Path) -> None:
    token = env.token()
    mapped = _zj_verifier(env, {env.cert.type_code: "zj.yyzz"}, tmp_path).verify(
        token, audience=AUDIENCE, purpose=PURPOSE)
    assert mapped.valid, mapped.messages
    assert mapped.agreement is not None and mapped.agreement.region == "GD"
    assert (mapped.local_type, mapped.issuing_region) == ("zj.yyzz", "GD")
    assert mapped.to_json()["agreement"]["region"] == "GD"
    # Recognizing GD trusts its sharing keys; a type the agreement does not map has no
    # local type, and the copy still verifies (what was released is GD's decision).
    unmapped = _zj_verifier(env, {"cn.driving-licence": "cn.driving-licence"},
                            tmp_path).verify(token, audience=AUDIENCE)
    assert unmapped.valid and unmapped.local_type is None
    # An agency key of the recognized region does not sign copies there either.
    refused(_zj_verifier(env, {}, tmp_path).verify(env.copy().sign(env.agency),
                                                   audience=AUDIENCE),
            S.UNTRUSTED, E.UNKNOWN_KID)


def test_cli_verifies_a_copy_for_an_audience(env: CopyEnv, tmp_path: Path) -> None:
    run = Cli(tmp_path / "home", None, clock=env.clock)
    token = env.token()
    args = ["verify", token, "--bundle", str(env.bundle)]
    out = json.loads(run(*args, "--audience", AUDIENCE, "--purpose", PURPOSE, "--json").stdout)
    assert (out["valid"], out["kind"], out["copy"]["case"]) == (True, "copy", CASE)
    human = run(*args, "--audience", AUDIENCE, env={"ECERT_LANG": "zh"})
    assert human.exit_code == 0, human.output
    assert "加注件" in human.stdout and PURPOSE in human.stdout and CASE in human.stdout
    english = run(*args, "--audience", AUDIENCE, env={"ECERT_LANG": "en"}).stdout
    assert english.startswith("VALID COPY") and f"purpose: {PURPOSE}" in english
    refusal = run(*args, "--json")
    assert refusal.exit_code == 1
    assert json.loads(refusal.stdout)["errors"] == ["audience_required"]
    wrong = run(*args, "--audience", "ZJ/zj-hrss", env={"ECERT_LANG": "zh"})
    assert wrong.exit_code == 1 and "加注件" in wrong.stdout
    bad = run(*args, "--audience", "not an agency")
    assert bad.exit_code == 2 and "REGION/agency" in bad.stderr
    # A copy is proven by the use entry that served it (its index from the service):
    # without one, inclusion is refused for want of a proof, not as unverified.
    logged = run(*args, "--audience", AUDIENCE, "--require-inclusion", "--json")
    assert logged.exit_code == 1
    assert json.loads(logged.stdout)["inclusion"]["errors"] == ["no_proof"]


# -- the QR form (format section 17.4) ---------------------------------------------------------


def _with_flags(text: str, change: int) -> str:
    """QR text with its container's flags byte XORed with ``change``."""
    data = bytearray(qr_format.b45decode(text.removeprefix(qr_format.PREFIX)))
    data[0] ^= change
    return qr_format.PREFIX + qr_format.b45encode(bytes(data))


def test_the_qr_form_is_the_copy_token_itself(token_env: CopyEnv) -> None:
    token = token_env.token()
    text = qr_format.wrap(token)
    unwrapped = qr_format.unwrap(text)
    assert unwrapped.typ == COPY_TYP
    assert unwrapped.compact(token_env.sharing.kid) == token
    token_json = token_env.verifier().verify(token, audience=AUDIENCE).to_json()
    qr_json = token_env.verifier().verify(text, audience=AUDIENCE).to_json()
    assert qr_json.pop("qr") == {"claims_present": ["name", "uscc"], "digest_bound": False,
                                 "digest": None}
    assert qr_json == token_json


def test_a_copy_qr_is_never_taken_for_a_certificate_qr(
        token_env: CopyEnv, shared_qr: tuple[str, str]) -> None:
    env = token_env
    verifier = env.verifier()
    # Without its copy flag, the copy's container is read as a QR token: the sharing
    # key's reference names no agency key.
    plain = _with_flags(qr_format.wrap(env.token()), 0b1000)
    result = verifier.verify(plain, audience=AUDIENCE)
    assert (result.status, result.errors, result.kind) == (S.UNTRUSTED, (E.UNKNOWN_KID,), None)
    # A certificate's QR with the flag set is looked up among sharing keys: none.
    short, _full = shared_qr
    flagged = _with_flags(qr_format.wrap(short), 0b1000)
    refused(verifier.verify(flagged, audience=AUDIENCE), S.UNTRUSTED, E.UNKNOWN_KID)
    # A copy signed by the agency key, whose reference the agency keys would know.
    refused(verifier.verify(qr_format.wrap(env.copy().sign(env.agency)), audience=AUDIENCE),
            S.UNTRUSTED, E.UNKNOWN_KID)
    # The reserved flag bits are still refused.
    bad = verifier.verify(_with_flags(qr_format.wrap(env.token()), 0b10000),
                          audience=AUDIENCE)
    assert (bad.status, bad.errors) == (S.INVALID, (E.QR_MALFORMED,))


def test_cli_verifies_a_copy_in_its_qr_form(token_env: CopyEnv, tmp_path: Path) -> None:
    run = Cli(tmp_path / "home", None, env={"ECERT_LANG": "en"}, clock=token_env.clock)
    text = qr_format.wrap(token_env.token())
    args = ["verify", text, "--bundle", str(token_env.bundle)]
    out = json.loads(run(*args, "--audience", AUDIENCE, "--purpose", PURPOSE, "--json").stdout)
    assert (out["valid"], out["kind"], out["copy"]["case"], out["qr"]["claims_present"]) == (
        True, "copy", CASE, ["name", "uscc"])
    for extra, code in ((["--audience", "ZJ/zj-hrss"], "wrong_audience"),
                        (["--audience", AUDIENCE, "--purpose", "食品经营许可核发"],
                         "wrong_purpose"), ([], "audience_required")):
        refusal = run(*args, *extra, "--json")
        assert refusal.exit_code == 1, refusal.output
        assert json.loads(refusal.stdout)["errors"] == [code]
