"""The registry API: catalog, agencies, issuance, lookup, status changes, keys, publication."""

from __future__ import annotations

import base64
import itertools
import json
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import Engine

import ecert
from ecert import _samples
from ecert._formats.jose import public_jwk
from ecert._formats.log import token_hash
from ecert._formats.statuslist import StatusList
from ecert.identifiers import CertificateId
from ecert.registry import Passphrase
from tests.support import (
    EPOCH,
    OPERATOR,
    PASSPHRASE,
    FakeClock,
    as_operator,
    create_registry,
    database_url_of,
    issue_business_licence,
    open_registry,
    uscc,
)

BUSINESS = "cn.business-licence"
FOOD = "cn.food-business-licence"
QUALIFICATION = "cn.professional-qualification"
#: National type code of cn.business-licence in the sample catalog.
BUSINESS_NATIONAL = "11100000MB0143028R001"
GD_AMR_USCC = "11440000MB2C01234R"
#: A valid USCC that no GD sample agency uses (ZJ's market regulator).
SPARE_USCC = "11330000MB1E02345Y"
STATUS_LIST_SIZE = 131_072

MINIMAL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string"}},
}

_MOD37 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _iso7064_mod37_36(data: str) -> str:
    """ISO/IEC 7064 MOD 37,36 (hybrid system), written independently of ecert."""
    product = 36
    for char in data:
        total = (product + _MOD37.index(char)) % 36 or 36
        product = (2 * total) % 37
    return _MOD37[(1 - product) % 36]


def _b64json(part: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    value = json.loads(raw)
    assert isinstance(value, dict)
    return value


def _payload_text(token: str) -> str:
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8")


def _payload(token: str) -> dict[str, Any]:
    return _b64json(token.split(".")[1])


def _header(token: str) -> dict[str, Any]:
    return _b64json(token.split(".")[0])


def _reopen(registry: ecert.Registry, *, clock: FakeClock | None = None,
            passphrase: Passphrase | None = PASSPHRASE, operator: str = OPERATOR
            ) -> ecert.Registry:
    """Another Registry object on the same home and database."""
    return open_registry(registry.home, database_url=database_url_of(registry), clock=clock,
                         passphrase=passphrase, operator=operator)


def _init(home: Path, database_url: str | None, clock: FakeClock) -> ecert.Registry:
    return create_registry(home, region="GD", database_url=database_url, clock=clock)


def _issue_qualification(registry: ecert.Registry, **overrides: Any) -> ecert.Certificate:
    claims = _samples.claims("professional-qualification-gd")
    args: dict[str, Any] = {"holder_id": claims["id_number"], "holder_name": claims["name"],
                            "claims": claims}
    args.update(overrides)
    return registry.issue(QUALIFICATION, "gd-hrss", **args)


HOLDER_A, HOLDER_B = uscc(1), uscc(2)


def _issue_food(registry: ecert.Registry, **overrides: Any) -> ecert.Certificate:
    claims = _samples.claims("food-business-licence-sh")
    if "holder_id" in overrides and "claims" not in overrides:
        claims["uscc"] = overrides["holder_id"]  # the type binds it to the holder id
    args: dict[str, Any] = {"holder_id": claims["uscc"], "holder_name": claims["operator_name"],
                            "claims": claims}
    args.update(overrides)
    return registry.issue(FOOD, "gd-amr", **args)


# -- catalog -------------------------------------------------------------------------------------


def test_add_type_is_stored_and_listed(registry: ecert.Registry) -> None:
    added = registry.add_type("gd.test", name="Test", national_type_code=BUSINESS_NATIONAL,
                              schema=MINIMAL_SCHEMA, validity_days=30, qr_claims=["name"])
    stored = registry.get_type("gd.test")
    assert stored == added
    assert stored.validity_days == 30 and stored.qr_claims == ("name",)
    assert "gd.test" in [t.code for t in registry.types()]
    assert [e.action for e in registry.events("gd.test")] == ["type.add"]


BAD_NATIONAL_TYPE_CODES = [
    "",
    "11100000MB0143028R01",  # 20 characters
    "11100000MB0143028R0001",  # 22 characters
    "11100000MB0143028RABC",  # sequence part is not digits
    "11100000MB0143028X001",  # authority USCC with a wrong check character
]

INVALID_SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"name": {"type": "no-such-type"}}},
    {"type": "object", "required": "name"},
    {"type": "object", "properties": {"name": {"minLength": -1}}},
    {"type": "string"},  # a valid schema, but claims are an object
]


def test_add_type_refuses_bad_national_type_code(registry: ecert.Registry) -> None:
    for code in BAD_NATIONAL_TYPE_CODES:
        with pytest.raises(ecert.InputError) as info:
            registry.add_type("gd.test", name="Test", national_type_code=code,
                              schema=MINIMAL_SCHEMA)
        assert info.value.code in ("invalid_national_type_code", "invalid_uscc"), code
    with pytest.raises(ecert.NotFound):
        registry.get_type("gd.test")


def test_add_type_refuses_invalid_schema(registry: ecert.Registry) -> None:
    for schema in INVALID_SCHEMAS:
        with pytest.raises(ecert.InputError) as info:
            registry.add_type("gd.test", name="Test", national_type_code=BUSINESS_NATIONAL,
                              schema=schema)
        assert info.value.code == "invalid_schema", schema
    with pytest.raises(ecert.NotFound):
        registry.get_type("gd.test")
    assert [e for e in registry.events() if e.subject == "gd.test"] == []


def test_add_type_refuses_duplicate(registry: ecert.Registry) -> None:
    before = registry.get_type(BUSINESS)
    with pytest.raises(ecert.AlreadyExists):
        registry.add_type(BUSINESS, name="Other", national_type_code=BUSINESS_NATIONAL,
                          schema=MINIMAL_SCHEMA)
    assert registry.get_type(BUSINESS) == before


# -- agencies ------------------------------------------------------------------------------------


def test_add_agency_gets_types_and_a_key(registry: ecert.Registry) -> None:
    agency = registry.add_agency("gd-new", name="New", uscc=SPARE_USCC, types=[FOOD, BUSINESS])
    assert agency.types == (BUSINESS, FOOD)
    assert registry.get_agency("gd-new") == agency
    keys = registry.keys("gd-new")
    assert len(keys) == 1 and keys[0].role is ecert.KeyRole.AGENCY


INVALID_USCCS = [
    "",
    "11330000MB1E02345",  # 17 characters
    "11330000MB1E02345X",  # wrong check character
    "11330000MB1E0234IY",  # I is not in the GB 32100 alphabet
    "113300a0MB1E02345Y",
]


def test_add_agency_refuses_invalid_uscc(registry: ecert.Registry) -> None:
    keys_before = len(registry.keys())
    for code in INVALID_USCCS:
        with pytest.raises(ecert.InputError) as info:
            registry.add_agency("gd-new", name="New", uscc=code, types=[BUSINESS])
        assert info.value.code == "invalid_uscc", code
    with pytest.raises(ecert.NotFound):
        registry.get_agency("gd-new")
    assert len(registry.keys()) == keys_before


def test_add_agency_refuses_unknown_type(registry: ecert.Registry) -> None:
    keys_before = len(registry.keys())
    with pytest.raises(ecert.NotFound):
        registry.add_agency("gd-new", name="New", uscc=SPARE_USCC, types=[BUSINESS, "cn.nope"])
    with pytest.raises(ecert.NotFound):
        registry.get_agency("gd-new")
    assert len(registry.keys()) == keys_before


def test_add_agency_refuses_duplicate_code_and_uscc(registry: ecert.Registry) -> None:
    with pytest.raises(ecert.AlreadyExists):
        registry.add_agency("gd-amr", name="Again", uscc=SPARE_USCC, types=[BUSINESS])
    with pytest.raises(ecert.AlreadyExists):
        registry.add_agency("gd-other", name="Same USCC", uscc=GD_AMR_USCC, types=[BUSINESS])
    assert [a.code for a in registry.agencies()] == ["gd-amr", "gd-hrss"]
    assert registry.get_agency("gd-amr").name == _samples.region("GD")["agencies"][0]["name"]


# -- issuing: refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "field"), [
    ({"uscc": "not-a-credit-code"}, "$.claims.uscc"),
    ({"established_on": "2019-13-45"}, "$.claims.established_on"),
    ({"name": 42}, "$.claims.name"),
    ({"name": None}, "$.claims.name"),  # None: remove the field (missing required field)
    ({"shoe_size": 44}, "$.claims.shoe_size"),  # field the schema does not allow
], ids=["pattern", "format", "type", "missing-required", "extra-field"])
def test_issue_refuses_claims_naming_the_field(registry: ecert.Registry,
                                              change: dict[str, Any], field: str) -> None:
    claims = _samples.claims("business-licence-gd")
    for name, value in change.items():
        if value is None:
            del claims[name]
        else:
            claims[name] = value
    with pytest.raises(ecert.ClaimsInvalid) as info:
        issue_business_licence(registry, claims=claims)
    assert info.value.field == field
    assert info.value.code == "claims_invalid"
    assert registry.count() == 0


def test_validate_claims_accepts_the_sample(registry: ecert.Registry) -> None:
    registry.validate_claims(BUSINESS, _samples.claims("business-licence-gd"))
    with pytest.raises(ecert.ClaimsInvalid):
        registry.validate_claims(BUSINESS, {})


def test_issue_refuses_agency_not_authorized(registry: ecert.Registry) -> None:
    with pytest.raises(ecert.NotAuthorized):
        registry.issue(BUSINESS, "gd-hrss", holder_id=HOLDER_A, holder_name="Someone",
                       claims=_samples.claims("business-licence-gd"))
    with pytest.raises(ecert.NotAuthorized):
        registry.issue(QUALIFICATION, "gd-amr", holder_id="440106199502281567",
                       holder_name="Someone",
                       claims=_samples.claims("professional-qualification-gd"))
    assert registry.count() == 0
    assert not [e for e in registry.events() if e.action == "certificate.issue"]


def test_issue_refuses_unknown_type_or_agency(registry: ecert.Registry) -> None:
    claims = _samples.claims("business-licence-gd")
    with pytest.raises(ecert.NotFound):
        registry.issue("cn.nope", "gd-amr", holder_id="H", holder_name="N", claims=claims)
    with pytest.raises(ecert.NotFound):
        registry.issue(BUSINESS, "gd-nope", holder_id=claims["uscc"], holder_name="N",
                       claims=claims)
    assert registry.count() == 0


# -- the issued certificate ----------------------------------------------------------------------


def test_issued_id_is_a_gbt36904_id(registry: ecert.Registry) -> None:
    cert = issue_business_licence(registry)
    parsed = CertificateId.parse(cert.id)
    assert parsed.type_code == registry.get_type(BUSINESS).national_type_code == BUSINESS_NATIONAL
    assert parsed.issuer_code == registry.get_agency("gd-amr").uscc == GD_AMR_USCC
    assert parsed.serial == "00000001"
    assert parsed.version == "001"
    assert cert.id == f"1.2.156.3005.2.{BUSINESS_NATIONAL}.{GD_AMR_USCC}.00000001.001." + (
        _iso7064_mod37_36(f"{BUSINESS_NATIONAL}{GD_AMR_USCC}00000001001"))
    payload = _payload(cert.token)
    assert payload["jti"] == cert.id
    assert payload["vct"] == BUSINESS
    assert payload["iss"] == "https://ecert.gd.example/agencies/gd-amr"
    second = issue_business_licence(registry)
    assert CertificateId.parse(second.id).serial == "00000002"


def test_independent_check_character_matches_the_iso7064_example() -> None:
    # The worked example of ISO/IEC 7064 for MOD 37,36, checking the helper itself.
    assert _iso7064_mod37_36("A12425GABC1234002") == "M"


def test_holder_is_a_pseudonym(registry: ecert.Registry) -> None:
    # The business licence binds the holder id to its uscc claim, so the id is in the
    # claims by design; everywhere else only its pseudonym is kept.
    holder_id = uscc(5521)
    cert = issue_business_licence(registry, holder_id=holder_id)
    payload = _payload(cert.token)
    assert payload["claims"]["uscc"] == holder_id
    outside = {k: v for k, v in payload.items() if k != "claims"}
    assert holder_id not in json.dumps(outside)
    assert holder_id not in json.dumps(_header(cert.token))
    assert payload["sub"] == cert.holder
    assert cert.holder != holder_id and holder_id not in cert.holder
    assert cert.holder == registry.holder_pseudonym(holder_id)
    # Nor does the database keep it outside the claims: certificates and events hold the
    # pseudonym.
    with registry.engine.connect() as conn:
        from sqlalchemy import text as sql

        rows = [*conn.execute(sql("SELECT id, holder, holder_name FROM certificates")).all(),
                *conn.execute(sql("SELECT * FROM events")).all()]
    assert rows and all(holder_id not in repr(tuple(row)) for row in rows)


def test_same_holder_same_pseudonym(registry: ecert.Registry) -> None:
    first = issue_business_licence(registry, holder_id=HOLDER_A)
    second = _issue_food(registry, holder_id=HOLDER_A)
    other = issue_business_licence(registry, holder_id=HOLDER_B)
    assert first.holder == second.holder
    assert first.holder != other.holder
    assert _payload(first.token)["sub"] == _payload(second.token)["sub"]
    # The same id reopened through another Registry object gives the same pseudonym.
    with _reopen(registry) as again:
        assert again.holder_pseudonym(HOLDER_A) == first.holder


def test_valid_until_from_validity_days(registry: ecert.Registry, clock: FakeClock) -> None:
    clock.advance(days=3)
    cert = issue_business_licence(registry)
    assert cert.issued_at == cert.valid_from == EPOCH + timedelta(days=3)
    assert cert.valid_until == EPOCH + timedelta(days=3 + 3650)
    payload = _payload(cert.token)
    assert payload["iat"] == payload["nbf"] == int(cert.issued_at.timestamp())
    assert payload["exp"] == int(cert.valid_until.timestamp())


def test_valid_until_explicit_date_is_end_of_that_day(registry: ecert.Registry) -> None:
    # The end of that day in the registry's time zone (Asia/Shanghai unless init says).
    cert = issue_business_licence(registry, valid_until=date(2027, 6, 30))
    assert cert.valid_until == datetime(2027, 6, 30, 16, tzinfo=UTC)
    assert _payload(cert.token)["exp"] == int(datetime(2027, 6, 30, 16, tzinfo=UTC).timestamp())


def test_valid_until_explicit_datetime(registry: ecert.Registry) -> None:
    until = datetime(2028, 3, 1, 12, 30, tzinfo=UTC)
    cert = issue_business_licence(registry, valid_until=until)
    assert cert.valid_until == until
    assert _payload(cert.token)["exp"] == int(until.timestamp())
    assert registry.get(cert.id).valid_until == until


def test_valid_until_must_follow_valid_from(registry: ecert.Registry) -> None:
    with pytest.raises(ecert.InputError):
        issue_business_licence(registry, valid_until=EPOCH - timedelta(days=1))
    with pytest.raises(ecert.InputError):
        issue_business_licence(registry, valid_until=datetime(2030, 1, 1))  # naive
    assert registry.count() == 0


def test_type_without_validity_has_no_exp(registry: ecert.Registry) -> None:
    assert registry.get_type(QUALIFICATION).validity_days is None
    cert = _issue_qualification(registry)
    assert cert.valid_until is None
    assert "exp" not in _payload(cert.token)
    assert registry.get(cert.id).valid_until is None


# -- lookup --------------------------------------------------------------------------------------


def test_get_and_resolve_by_serial(registry: ecert.Registry) -> None:
    cert = issue_business_licence(registry)
    for text in (cert.id, "00000001", "1", " 1 ", cert.id.lower()):
        assert registry.resolve_id(text) == cert.id
    assert registry.get("00000001") == registry.get("1") == registry.get(cert.id)
    assert registry.get("1").token == cert.token
    with pytest.raises(ecert.NotFound):
        registry.get("2")


def test_serial_shared_by_two_agencies_is_ambiguous(registry: ecert.Registry) -> None:
    business = issue_business_licence(registry)
    qualification = _issue_qualification(registry)
    with pytest.raises(ecert.InputError) as info:
        registry.resolve_id("1")
    assert info.value.code == "ambiguous_serial"
    assert registry.get(qualification.id).id != business.id


def test_mistyped_id_is_refused(registry: ecert.Registry) -> None:
    cert = issue_business_licence(registry)
    check = cert.id[-1]
    wrong_check = cert.id[:-1] + ("0" if check != "0" else "1")
    wrong_serial = cert.id.replace(".00000001.", ".00000007.")
    wrong_issuer = cert.id.replace(GD_AMR_USCC, GD_AMR_USCC.replace("01234", "01235"))
    wrong_type = cert.id.replace(BUSINESS_NATIONAL, BUSINESS_NATIONAL[:-1] + "2")
    assert len({cert.id, wrong_check, wrong_serial, wrong_issuer, wrong_type}) == 5
    # One wrong character is always caught by the MOD 37,36 check character.
    for text in (wrong_check, wrong_serial, wrong_issuer, wrong_type):
        with pytest.raises(ecert.InvalidCertificateId):
            registry.get(text)
        with pytest.raises(ecert.InvalidCertificateId):
            registry.suspend(text)
    assert registry.get(cert.id).status is ecert.CertificateStatus.VALID
    with pytest.raises(ecert.InvalidCertificateId):
        registry.resolve_id("12-34")


def test_find_by_holder_type_and_status(registry: ecert.Registry, clock: FakeClock) -> None:
    a_business = issue_business_licence(registry, holder_id=HOLDER_A)
    clock.advance(seconds=1)
    a_food = _issue_food(registry, holder_id=HOLDER_A)
    clock.advance(seconds=1)
    b_business = issue_business_licence(registry, holder_id=HOLDER_B)
    registry.suspend(a_food.id)

    def ids(found: list[ecert.Certificate]) -> list[str]:
        return [c.id for c in found]

    assert ids(registry.find(holder_id=HOLDER_A)) == [a_business.id, a_food.id]
    assert ids(registry.find(holder_id=HOLDER_B)) == [b_business.id]
    assert registry.find(holder_id=uscc(3)) == []
    assert ids(registry.find(type_code=BUSINESS)) == [a_business.id, b_business.id]
    assert ids(registry.find(type_code=FOOD)) == [a_food.id]
    assert ids(registry.find(status="suspended")) == [a_food.id]
    assert ids(registry.find(status=ecert.CertificateStatus.VALID)) == [
        a_business.id, b_business.id]
    assert registry.find(status="revoked") == []
    assert ids(registry.find(holder_id=HOLDER_A, type_code=BUSINESS)) == [a_business.id]
    assert ids(registry.find(holder_id=HOLDER_A, status="valid")) == [a_business.id]
    assert ids(registry.find()) == [a_business.id, a_food.id, b_business.id]
    assert ids(registry.find(limit=1, offset=1)) == [a_food.id]
    with pytest.raises(ecert.InputError):
        registry.find(status="expired")


# -- status changes ------------------------------------------------------------------------------


def test_suspend_reinstate_revoke(registry: ecert.Registry) -> None:
    cert = issue_business_licence(registry)
    assert cert.status is ecert.CertificateStatus.VALID
    suspended = registry.suspend(cert.id)
    assert suspended.status is ecert.CertificateStatus.SUSPENDED
    assert registry.get(cert.id).status is ecert.CertificateStatus.SUSPENDED
    with pytest.raises(ecert.InvalidTransition):
        registry.suspend(cert.id)
    reinstated = registry.reinstate("1")
    assert reinstated.status is ecert.CertificateStatus.VALID
    with pytest.raises(ecert.InvalidTransition):
        registry.reinstate(cert.id)
    revoked = registry.revoke(cert.id, "privilege-withdrawn")
    assert revoked.status is ecert.CertificateStatus.REVOKED
    assert revoked.revocation_reason is ecert.RevocationReason.PRIVILEGE_WITHDRAWN
    assert registry.get(cert.id).revocation_reason is ecert.RevocationReason.PRIVILEGE_WITHDRAWN


def test_revoke_a_suspended_certificate(registry: ecert.Registry) -> None:
    cert = issue_business_licence(registry)
    registry.suspend(cert.id)
    revoked = registry.revoke(cert.id, ecert.RevocationReason.KEY_COMPROMISE)
    assert revoked.status is ecert.CertificateStatus.REVOKED


def test_revocation_is_final(registry: ecert.Registry) -> None:
    cert = issue_business_licence(registry)
    registry.revoke(cert.id, "superseded")
    for attempt in (registry.reinstate, registry.suspend,
                    lambda i: registry.revoke(i, "unspecified")):
        with pytest.raises(ecert.InvalidTransition):
            attempt(cert.id)
    after = registry.get(cert.id)
    assert after.status is ecert.CertificateStatus.REVOKED
    assert after.revocation_reason is ecert.RevocationReason.SUPERSEDED
    assert [e.action for e in registry.events(cert.id)] == [
        "certificate.issue", "certificate.revoke"]


def test_revoke_with_unknown_reason_lists_reasons(registry: ecert.Registry) -> None:
    cert = issue_business_licence(registry)
    with pytest.raises(ecert.InputError) as info:
        registry.revoke(cert.id, "because")
    assert not isinstance(info.value, ecert.InvalidTransition)
    for reason in ecert.RevocationReason:
        assert reason.value in info.value.message
    assert registry.get(cert.id).status is ecert.CertificateStatus.VALID
    assert [e.action for e in registry.events(cert.id)] == ["certificate.issue"]


def test_transitions_append_events(registry: ecert.Registry, clock: FakeClock) -> None:
    cert = issue_business_licence(registry)
    clock.advance(hours=1)
    registry.suspend(cert.id)
    clock.advance(hours=1)
    registry.add_operator("clerk-two", roles=["clerk"], passphrase="clerk two")
    with as_operator(registry, "clerk-two", "clerk two", clock) as other:
        other.reinstate(cert.id)
    clock.advance(hours=1)
    registry.revoke(cert.id, "affiliation-changed")
    events = registry.events(cert.id)
    assert [(e.action, e.operator, e.subject, e.at) for e in events] == [
        ("certificate.issue", "clerk-test", cert.id, EPOCH),
        ("certificate.suspend", "clerk-test", cert.id, EPOCH + timedelta(hours=1)),
        ("certificate.reinstate", "clerk-two", cert.id, EPOCH + timedelta(hours=2)),
        ("certificate.revoke", "clerk-test", cert.id, EPOCH + timedelta(hours=3)),
    ]
    issue, suspend, reinstate, revoke = (dict(e.details) for e in events)
    slot = {"agency": "gd-amr", "type": BUSINESS, "list": 1, "idx": cert.status_index}
    assert issue == {**slot, "kid": cert.kid, "token": token_hash(cert.token)}
    assert suspend == {**slot, "status": 2}
    assert reinstate == {**slot, "status": 0}
    assert revoke == {**slot, "status": 1, "reason": "affiliation-changed"}
    seqs = [e.seq for e in registry.events()]
    assert seqs == list(range(len(seqs)))
    # Refused transitions leave no trace.
    with pytest.raises(ecert.InvalidTransition):
        registry.reinstate(cert.id)
    assert len(registry.events(cert.id)) == 4


# -- keys ----------------------------------------------------------------------------------------


def test_key_rotation(registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    before = issue_business_licence(registry)
    (old,) = registry.keys("gd-amr")
    assert before.kid == old.kid and _header(before.token)["kid"] == old.kid
    clock.advance(days=10)
    new = registry.rotate_agency_key("gd-amr")
    keys = {k.kid: k for k in registry.keys("gd-amr")}
    assert set(keys) == {old.kid, new.kid} and new.kid != old.kid
    assert keys[old.kid].retired_at == EPOCH + timedelta(days=10)
    assert keys[old.kid].status is ecert.KeyStatus.RETIRED
    assert keys[new.kid].retired_at is None and keys[new.kid].status is ecert.KeyStatus.ACTIVE
    assert keys[new.kid].created_at == EPOCH + timedelta(days=10)
    after = issue_business_licence(registry)
    assert after.kid == new.kid and _header(after.token)["kid"] == new.kid
    assert registry.get(before.id).kid == old.kid
    (event,) = [e for e in registry.events("gd-amr") if e.action == "key.rotate"]
    assert dict(event.details) == {"retired": old.kid}
    (retired,) = [e for e in registry.events(old.kid) if e.action == "key.retire"]
    (created,) = registry.events(new.kid)
    assert retired.seq == event.seq + 1 and created.seq == event.seq + 2
    assert created.action == "key.create" and created.details["jwk"] == dict(new.public_jwk)
    # Other agencies keep their key.
    assert all(k.retired_at is None for k in registry.keys("gd-hrss"))
    # Both keys are published: the old one still verifies what it signed.
    registry.publish(tmp_path / "bundle")
    jwks = json.loads((tmp_path / "bundle/.well-known/jwks.json").read_text())
    assert {old.kid, new.kid} <= {k["kid"] for k in jwks["keys"]}
    verifier = ecert.Verifier.from_bundle(tmp_path / "bundle", clock=clock)
    assert verifier.verify(before.token).valid
    assert verifier.verify(after.token).valid


def test_private_key_files_are_encrypted(registry: ecert.Registry) -> None:
    issue_business_licence(registry)  # also creates the holder pseudonym secret
    keys_dir = registry.home / "keys"
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    all_keys = registry.keys()
    kids = [k.kid for k in all_keys]
    assert len(kids) == 7  # root, status, log, witness, sharing, gd-amr, gd-hrss
    files = sorted(keys_dir.iterdir())
    assert {f"{kid}.p12" for kid in kids} <= {f.name for f in files}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        blob = path.read_bytes()
        assert b"PRIVATE KEY" not in blob and b"BEGIN" not in blob
        with pytest.raises(ValueError):
            pkcs12.load_key_and_certificates(blob, None)
        with pytest.raises(ValueError):
            pkcs12.load_key_and_certificates(blob, b"not the passphrase")
        key, _cert, _extra = pkcs12.load_key_and_certificates(blob, PASSPHRASE.encode())
        assert key is not None
    for kid in kids:
        blob = (keys_dir / f"{kid}.p12").read_bytes()
        key, _cert, _extra = pkcs12.load_key_and_certificates(blob, PASSPHRASE.encode())
        assert key is not None and public_jwk(key)["kid"] == kid
        if isinstance(key, ed25519.Ed25519PrivateKey):
            secret = key.private_bytes(serialization.Encoding.Raw,
                                       serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())
        else:
            secret = key.private_numbers().private_value.to_bytes(  # type: ignore[union-attr]
                32, "big")
        assert secret not in blob


def test_wrong_passphrase_fails_when_a_key_is_needed(
    published: tuple[ecert.Registry, ecert.Certificate, Path], tmp_path: Path, clock: FakeClock
) -> None:
    registry, cert, _bundle = published
    with _reopen(registry, passphrase="wrong passphrase", clock=clock) as wrong:
        # No key needed: reading works.
        assert wrong.get(cert.id).id == cert.id
        assert [t.code for t in wrong.types()] == [t.code for t in registry.types()]
        with pytest.raises(ecert.KeyStoreError):
            issue_business_licence(wrong)
        with pytest.raises(ecert.KeyStoreError):
            wrong.publish(tmp_path / "other")
    with _reopen(registry, passphrase=None, clock=clock) as none, \
            pytest.raises(ecert.KeyStoreError):
        issue_business_licence(none)
    assert registry.count() == 1
    assert [k.kid for k in registry.keys("gd-amr")] == [cert.kid]


def test_wrong_passphrase_does_not_damage_the_registry(registry: ecert.Registry,
                                                       clock: FakeClock) -> None:
    """A first issue attempt with a wrong passphrase must not lock out the right one."""
    with _reopen(registry, passphrase="wrong passphrase", clock=clock) as wrong, \
            pytest.raises(ecert.KeyStoreError):
        issue_business_licence(wrong)
    with _reopen(registry, clock=clock) as right:
        cert = issue_business_licence(right)
    assert CertificateId.parse(cert.id).serial == "00000001"


@pytest.mark.parametrize("operation", ["rotate_agency_key", "add_agency"])
def test_wrong_passphrase_cannot_create_keys(
    published: tuple[ecert.Registry, ecert.Certificate, Path], clock: FakeClock, operation: str
) -> None:
    """New keys must not be written under a passphrase that opens none of the existing ones."""
    registry, cert, _bundle = published
    keys_before = registry.keys()
    with _reopen(registry, passphrase="wrong passphrase", clock=clock) as wrong, \
            pytest.raises(ecert.KeyStoreError):
        if operation == "rotate_agency_key":
            wrong.rotate_agency_key("gd-amr")
        else:
            wrong.add_agency("gd-new", name="New", uscc=SPARE_USCC, types=[BUSINESS])
    assert registry.keys() == keys_before
    with pytest.raises(ecert.NotFound):
        registry.get_agency("gd-new")
    # The right passphrase still signs, with the agency key it had.
    again = issue_business_licence(registry)
    assert again.kid == cert.kid
    assert CertificateId.parse(again.id).serial == "00000002"


def test_passphrase_callable_is_asked_on_first_need(registry: ecert.Registry,
                                                    clock: FakeClock) -> None:
    asked: list[int] = []

    def passphrase() -> str:
        asked.append(1)
        return PASSPHRASE

    with _reopen(registry, passphrase=passphrase, clock=clock) as lazy:
        assert lazy.types() and asked == []
        issue_business_licence(lazy)
        issue_business_licence(lazy)
        assert asked == [1]


# -- opening -------------------------------------------------------------------------------------


def test_open_without_registry(tmp_path: Path, database_url: str | None,
                               engines: list[Engine]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ecert.StorageError) as info:
        open_registry(empty, database_url=database_url, clock=None)
    assert info.value.code == "not_initialized"
    if database_url is None:
        assert list(empty.iterdir()) == []  # no database file left behind


def test_failed_open_and_init_release_their_connections(
    tmp_path: Path, database_url: str | None, clock: FakeClock, engines: list[Engine]
) -> None:
    """A Registry that is never returned cannot be closed: its engine must not stay open."""
    home = tmp_path / "home"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ecert.StorageError):
        open_registry(empty, database_url=database_url, clock=None)
    with _init(home, database_url, clock) as registry:
        with pytest.raises(ecert.AlreadyExists):
            _init(home, database_url, clock)
        with pytest.raises(ecert.InputError):
            open_registry(home, database_url=database_url, clock=None, status_list_size=1024)
        failed = [e for e in engines if e is not registry.engine]
        assert len(failed) == (3 if database_url else 2)
        still_open = [e.pool.checkedin() for e in failed]
    assert still_open == [0] * len(failed), "engines of failed open/init keep connections"


def test_init_twice(tmp_path: Path, database_url: str | None, clock: FakeClock,
                    engines: list[Engine]) -> None:
    home = tmp_path / "home"
    first = _init(home, database_url, clock)
    try:
        anchor = first.anchor()
        key_files = sorted(p.name for p in (home / "keys").iterdir())
        with pytest.raises(ecert.AlreadyExists):
            _init(home, database_url, clock)
        assert first.anchor() == anchor
        roles = {k.role.value for k in first.keys(agency_code=None)}
        assert roles == {"root", "status", "log", "witness", "sharing"}
        assert [e.action for e in first.events()] == [
            "registry.init", "operator.add", "key.create", "key.create", "key.create",
            "key.create", "key.create"]
        with open_registry(home, database_url=database_url, clock=None) as again:
            assert again.region == first.region
        assert sorted(p.name for p in (home / "keys").iterdir()) == key_files
    finally:
        first.close()


def test_open_sees_the_same_registry(registry: ecert.Registry, clock: FakeClock) -> None:
    cert = issue_business_licence(registry)
    with _reopen(registry, clock=clock) as again:
        assert again.region == registry.region
        assert again.get(cert.id) == registry.get(cert.id)
        second = issue_business_licence(again)
    assert CertificateId.parse(second.id).serial == "00000002"


# -- publication ---------------------------------------------------------------------------------


#: The verifier page every publication writes (docs/verifier-page.md).
PAGE = {f"verify/{name}" for name in ("index.html", "core.js", "app.js", "style.css", "sw.js",
                                      "jsqr.js", "jsqr-LICENSE.txt", "ecert-verify.html")}


def test_publish_writes_the_bundle(
    published_copy: tuple[ecert.Registry, ecert.Certificate, Path]
) -> None:
    registry, cert, bundle = published_copy
    expected = {"anchor.json", "trustlist.jwt", ".well-known/jwks.json", "status/1.jwt",
                "log/checkpoint"}
    for name in expected:
        assert (bundle / name).is_file(), name
    files = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()}
    size = ecert.Verifier.from_bundle(bundle, clock=lambda: registry.events()[-1].at
                                      ).trust_list.log.size  # type: ignore[union-attr]
    assert files == expected | PAGE | {f"log/tile/0/000.p/{size}",
                                       f"log/tile/entries/000.p/{size}"}
    anchor = json.loads((bundle / "anchor.json").read_text())
    assert anchor["region"] == "GD"
    assert anchor["root_key"] == dict(registry.anchor().root_jwk)
    assert cert.status_list_uri == "https://ecert.gd.example/status/1.jwt"


def test_publish_sequence_increases(registry: ecert.Registry, tmp_path: Path,
                                    clock: FakeClock) -> None:
    issue_business_licence(registry)
    sequences = []
    for _ in range(3):
        report = registry.publish(tmp_path / "bundle")
        token = (tmp_path / "bundle/trustlist.jwt").read_text()
        assert _payload(token)["seq"] == report.sequence
        sequences.append(report.sequence)
        clock.advance(minutes=5)
    assert sequences == [1, 2, 3]
    assert set(report.files) == {"anchor.json", "trustlist.jwt", ".well-known/jwks.json",
                                 "status/1.jwt", "log/checkpoint"} | PAGE
    assert report.status_lists == 1 and report.certificates == 1
    assert [e.details["sequence"] for e in registry.events("GD")
            if e.action == "registry.publish"] == [1, 2, 3]


def test_publish_jwks_has_public_keys_only(
    published_copy: tuple[ecert.Registry, ecert.Certificate, Path]
) -> None:
    registry, _cert, bundle = published_copy
    jwks = json.loads((bundle / ".well-known/jwks.json").read_text())
    published_kids = [k["kid"] for k in jwks["keys"]]
    by_role: dict[ecert.KeyRole, set[str]] = {}
    all_keys = registry.keys()
    for key in all_keys:
        by_role.setdefault(key.role, set()).add(key.kid)
    assert sorted(published_kids) == sorted(k.kid for k in all_keys)
    assert len(by_role[ecert.KeyRole.ROOT]) == 1 and len(by_role[ecert.KeyRole.STATUS]) == 1
    assert by_role[ecert.KeyRole.ROOT] | by_role[ecert.KeyRole.STATUS] <= set(published_kids)
    agency_kids = {k.kid for code in ("gd-amr", "gd-hrss") for k in registry.keys(code)}
    assert len(agency_kids) == 2 and agency_kids <= set(published_kids)
    private_members = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
    for key in jwks["keys"]:
        assert not private_members & set(key), key
        assert key["kty"] in ("EC", "OKP")


def test_status_list_has_131072_entries_and_the_statuses(
    published: tuple[ecert.Registry, ecert.Certificate, Path], clock: FakeClock
) -> None:
    registry, cert, bundle = published

    def read_list() -> StatusList:
        payload = _payload((bundle / "status/1.jwt").read_text())
        assert payload["sub"] == cert.status_list_uri
        return StatusList.decode(payload["status_list"])

    status_list = read_list()
    assert len(status_list) == STATUS_LIST_SIZE == 131_072
    assert status_list.bits == 2
    assert status_list[cert.status_index] == 0
    assert [i for i in range(len(status_list)) if status_list[i] != 1] == [cert.status_index]
    registry.suspend(cert.id)
    clock.advance(minutes=1)
    registry.publish(bundle)
    assert read_list()[cert.status_index] == 2
    registry.revoke(cert.id, "unspecified")
    clock.advance(minutes=1)
    registry.publish(bundle)
    status_list = read_list()
    assert status_list[cert.status_index] == 1
    # Every index the log never allocated reads invalid too: nothing reads valid now.
    assert all(status_list[i] == 1 for i in range(len(status_list)))


def test_status_indices_are_distinct_and_spread(registry: ecert.Registry) -> None:
    certs = [issue_business_licence(registry) for _ in range(200)]
    indices = [c.status_index for c in certs]
    assert {c.status_list_uri for c in certs} == {"https://ecert.gd.example/status/1.jwt"}
    assert len(set(indices)) == 200
    assert all(0 <= i < STATUS_LIST_SIZE for i in indices)
    assert indices != sorted(indices) and indices != sorted(indices, reverse=True)
    steps = {b - a for a, b in itertools.pairwise(indices)}
    assert len(steps) > 100  # no arithmetic progression
    # Spread over the whole list, not packed at one end.
    assert min(indices) < STATUS_LIST_SIZE // 4 and max(indices) > 3 * STATUS_LIST_SIZE // 4
    assert [_payload(c.token)["status"]["status_list"]["idx"] for c in certs] == indices
