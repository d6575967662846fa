"""Issuance: claims checked against the type, a status-list slot, the signed token."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import jsonschema

from ecert._allocation import permuted_index
from ecert._authority import Action, Resource
from ecert._clock import from_seconds
from ecert._formats import bundle as _bundle
from ecert._formats import qr as _qr
from ecert._formats.certificate import CERTIFICATE_TYP, CertificateClaims
from ecert._formats.jose import CompactSigner, b64url_encode, canonical_json
from ecert._formats.log import commitment, token_hash
from ecert._formats.text import MAX_NAME, check_claims_text, check_text
from ecert._mac import hmac_sha256
from ecert.errors import ClaimsInvalid, InputError, InvalidTransition, NotAuthorized, NotFound
from ecert.holder_ids import (
    CLAIM_FORMATS,
    HolderIdInvalid,
    HolderIdScheme,
    normalize_claims,
    normalize_id,
    parse_scheme,
)
from ecert.identifiers import CertificateId
from ecert.models import (
    Agency,
    Certificate,
    CertificateStatus,
    CertificateType,
    KeyInfo,
    KeyRole,
    Region,
)
from ecert.qr import MAX_TEXT_AT_DEFAULT, QrTooLarge
from ecert.registry._compiled import Check, compile_schema
from ecert.registry._core import Operation, Retry, Target, Unit, register
from ecert.registry._lifecycle import effective, supersede

# (code, version) -> (the schema it was compiled from, validator, compiled fast path); the
# schema is compared, so a type changed under the same version (tests, migrations) never
# uses a stale one.
_validators: dict[tuple[str, int], tuple[Mapping[str, Any], jsonschema.protocols.Validator,
                                         Check | None]] = {}


def holder_pseudonym(key: bytes, holder_id: str) -> str:
    """The keyed pseudonym of a holder id: stable per registry, unlinkable across regions.

    The id is normalised first (NFKC, no white space, upper case), so an id typed with
    full-width digits finds the same holder.
    """
    normalized = normalize_id(holder_id)
    if not normalized:
        raise InputError("holder id is empty")
    return b64url_encode(hmac_sha256(key, normalized.encode())[:16])


def validate_claims(cert_type: CertificateType, claims: Mapping[str, Any]) -> None:
    """Raise :class:`ClaimsInvalid`, naming the field, unless ``claims`` fit the type."""
    cache_key = (cert_type.code, cert_type.version)
    cached = _validators.get(cache_key)
    if cached is not None and (cached[0] is cert_type.schema or cached[0] == cert_type.schema):
        validator, fast = cached[1], cached[2]
    else:
        cls = jsonschema.validators.validator_for(cert_type.schema)
        checker = _format_checker(cls)
        validator = cls(cert_type.schema, format_checker=checker)
        fast = compile_schema(cert_type.schema, checker.conforms)
        _validators[cache_key] = (cert_type.schema, validator, fast)
    # The compiled check's "valid" is certain; anything else is judged (and named) by
    # jsonschema itself (see ecert.registry._compiled).
    if fast is not None and fast(claims):
        return
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(claims))
    except (RecursionError, re.error, OverflowError) as e:
        # A hostile schema or value (deep nesting, a pattern Python cannot run).
        raise ClaimsInvalid(f"claims of {cert_type.code} cannot be checked: "
                            f"{type(e).__name__}", field="$.claims") from e
    if error is None:
        return
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
    # Name the field itself for missing and unexpected members.
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required":
        missing = [n for n in error.validator_value if n not in instance]
        path += f".{missing[0]}" if missing else ""
    elif error.validator == "additionalProperties":
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = sorted(n for n in instance if n not in known)
        path += f".{extra[0]}" if extra else ""
    field = f"$.claims{path}"
    # A code format names the reason (wrong length, check character…), not only the format.
    reason = error.cause.message if isinstance(error.cause, HolderIdInvalid) else error.message
    raise ClaimsInvalid(f"claims of {cert_type.code} invalid at {field}: {reason}",
                        field=field)


def _format_checker(cls: Any) -> jsonschema.FormatChecker:
    """The draft's format checker plus ecert's code formats (``uscc``, ``cn-resident-id``):
    their check characters are checked, not only their pattern."""
    checker = jsonschema.FormatChecker(formats=list(cls.FORMAT_CHECKER.checkers))
    for name, scheme in CLAIM_FORMATS.items():
        checker.checks(name, raises=HolderIdInvalid)(_code_check(scheme))
    return checker


def _code_check(scheme: str) -> Any:
    rule = HolderIdScheme(scheme)

    def check(value: object) -> bool:
        if isinstance(value, str):
            rule.check(value, label="code")
        return True

    return check


def check_input(cert_type: CertificateType, holder: str, holder_name: str,
                claims: Mapping[str, Any], pseudonym_key: bytes, today: date) -> dict[str, Any]:
    """The claims to sign, after every input rule of ``cert_type`` (see docs/holder-ids.md).

    Code claims are normalised; names and claim strings must be text a certificate may
    carry; claims must fit the schema (code formats checked); the claims that name the
    holder must agree with the holder id (compared through its pseudonym ``holder``, as
    the raw id never reaches the unit of work) and the holder name.
    """
    check_text(holder_name, label="holder name", max_length=MAX_NAME, required=True)
    if not isinstance(claims, Mapping):
        raise ClaimsInvalid("claims must be a JSON object", field="$.claims")
    claims = normalize_claims(cert_type.schema, claims)
    check_claims_text(claims)
    validate_claims(cert_type, claims)
    id_claim = cert_type.holder_claims.get("holder_id")
    if id_claim is not None:
        value = claims.get(id_claim)
        if not isinstance(value, str):
            raise ClaimsInvalid(f"claim {id_claim}, which names the holder, is missing",
                                field=f"$.claims.{id_claim}")
        if cert_type.holder_id_scheme is not None:
            parse_scheme(cert_type.holder_id_scheme).check(
                value, today=today, label=f"claim {id_claim}")
        if holder_pseudonym(pseudonym_key, value) != holder:
            raise InputError(f"the holder id differs from claim {id_claim}, which names the "
                             "holder of this type", code="holder_id_mismatch")
    name_claim = cert_type.holder_claims.get("holder_name")
    if name_claim is not None:
        value = claims.get(name_claim)
        if not isinstance(value, str):
            raise ClaimsInvalid(f"claim {name_claim}, which names the holder, is missing",
                                field=f"$.claims.{name_claim}")
        if value.strip() != holder_name.strip():
            raise InputError(f"the holder name differs from claim {name_claim} "
                             f"({value[:60]!r})", code="holder_name_mismatch")
    return claims


def check_short_form(cert_type: CertificateType, token: str, base_url: str, now: int,
                     alg: str, kid: str) -> int:
    """The length of the certificate's short QR text; :class:`QrTooLarge` above what a
    version-25 code holds at level Q (a certificate whose QR could not be printed and
    read is never issued)."""
    payload = _qr.qr_payload(_qr.parse_token_payload(token), token, cert_type.qr_claims,
                             base_url, now)
    length = len(_qr.probe_text(payload, alg, kid))
    if length > MAX_TEXT_AT_DEFAULT:
        raise QrTooLarge(
            f"the QR code of this certificate (holder name and the claims "
            f"{', '.join(cert_type.qr_claims) or 'none'}) would need {length} characters, "
            f"more than the {MAX_TEXT_AT_DEFAULT} a printable code holds: shorten the holder "
            "name or those claims (long claims belong outside the type's qr_claims)",
            code="qr_short_form_too_large")
    return length


def check_short_form_bounded(cert_type: CertificateType, token: str, base_url: str,
                             now: int, alg: str, kid: str, *,
                             payload: Mapping[str, Any] | None = None,
                             digest: str | None = None) -> None:
    """:func:`check_short_form`, judged from an upper bound of the short form's length
    (from canonical JSON, no compression) where one is given: the exact probe (deflate,
    base45, about half a millisecond) only for a certificate near the limit."""
    if payload is None:
        payload = _qr.parse_token_payload(token)
    bound = _qr.probe_length_bound(_qr.qr_payload(payload, token, cert_type.qr_claims,
                                                  base_url, now, digest=digest))
    if bound is None or bound > MAX_TEXT_AT_DEFAULT:
        check_short_form(cert_type, token, base_url, now, alg, kid)


def plain_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """Plain JSON values, detached from the caller's objects; :class:`ClaimsInvalid` for
    what JSON cannot carry (infinities, NaN, non-text keys, other objects, deep nesting)."""
    try:
        value: dict[str, Any] = json.loads(canonical_json(dict(claims)))
    except (ValueError, TypeError, RecursionError) as e:
        raise ClaimsInvalid(f"claims are not plain JSON: {type(e).__name__}: "
                            f"{str(e)[:100]}", field="$.claims") from e
    return value


def _target(_repo: Any, p: Mapping[str, Any]) -> Target:
    return Target(Resource(agency=p["agency"], type=p["type"]), f"{p['agency']}/{p['type']}")


def issuable(repo: Any, type_code: str, agency_code: str, now: int
             ) -> tuple[CertificateType, Agency]:
    """The type and the agency, if the agency may issue the type at ``now``."""
    cert_type = repo.get_type(type_code)
    agency = repo.get_agency(agency_code)
    if cert_type is None:
        raise NotFound(f"no certificate type {type_code!r}")
    if agency is None:
        raise NotFound(f"no agency {agency_code!r}")
    if not agency.may_issue(cert_type.code, from_seconds(now)):
        allowed = [t for t in agency.types if agency.may_issue(t, from_seconds(now))]
        raise NotAuthorized(f"agency {agency.code} may not issue {cert_type.code} "
                            f"(it issues: {', '.join(allowed) or 'nothing'})")
    return cert_type, agency


def validity(cert_type: CertificateType, now: int, valid_from: int | None,
             valid_until: int | None, default_validity: bool) -> tuple[int, int | None]:
    """``(start, end)``: now unless given, the type's validity from the start unless an end
    is given (and ``default_validity``); an end not after the start is refused."""
    start = valid_from if valid_from is not None else now
    end = valid_until
    if end is None and default_validity and cert_type.validity_days is not None:
        end = start + cert_type.validity_days * 86_400
    if end is not None and end <= start:
        raise InputError("valid-until must be after valid-from", code="invalid_validity")
    return start, end


def _issue(unit: Unit, p: Mapping[str, Any]) -> Certificate:
    repo, region, now = unit.repo, unit.region, unit.now
    cert_type, agency = issuable(repo, p["type"], p["agency"], now)
    claims = check_input(cert_type, p["holder"], p["holder_name"], p["claims"],
                         unit.ctx.pseudonym_key, datetime.fromtimestamp(now, UTC).date())
    start, end = validity(cert_type, now, p["valid_from"], p["valid_until"],
                          p["default_validity"])
    supersedes = p["supersedes"]
    replaces = p.get("replaces")
    old = None if replaces is None else _predecessor(unit, p, replaces)
    if old is not None:
        supersedes = old.id
    key = repo.active_key(KeyRole.AGENCY, agency.code)
    if key is None:
        raise NotAuthorized(f"agency {agency.code} has no active signing key")
    signer = unit.ctx.signer(key.kid)
    if supersedes is not None and repo.get_certificate(supersedes) is None:
        raise NotFound(f"no certificate {supersedes} to supersede")
    serial = f"{repo.next_value(f'serial:{agency.code}'):08d}"
    slot = repo.allocate_slot()
    if slot is None:
        # The counter's row lock serializes list creation; whoever waited on it looks
        # again, so concurrent issuers do not each open a new list.
        list_id = repo.next_value("status_list_id")
        slot = repo.allocate_slot()
        if slot is None:
            repo.add_status_list(list_id, unit.ctx.status_list_size, 2,
                                 secrets.token_bytes(32), now)
            slot = repo.allocate_slot()
        if slot is None:
            raise Retry
    list_id, perm_key, counter, size = slot
    index = permuted_index(perm_key, counter, size)
    cert_id = str(CertificateId(cert_type.national_type_code, agency.uscc, serial))
    # The bytes sign_compact makes, without PyJWT's per-call framing (as a batch signs).
    cert = signed_certificate(
        CompactSigner(signer, CERTIFICATE_TYP), cert_type, agency.code, region, key, now,
        iss=region.agency_uri(agency.code), cert_id=cert_id, holder=p["holder"],
        holder_name=p["holder_name"], claims=claims, start=start, end=end, list_id=list_id,
        index=index, supersedes=supersedes)
    repo.add_certificate(cert, serial, list_id)
    details: dict[str, Any] = {"agency": agency.code, "type": cert_type.code, "kid": key.kid,
                               "list": list_id, "idx": index, "token": token_hash(cert.token)}
    if old is not None:
        # The replay pairs the predecessor's certificate.supersede entry with this.
        details["replaces"] = commitment(unit.ctx.commitment_key, old.id)
    unit.log(Action.CERT_ISSUE, cert_id, details, private=True)
    if old is not None:
        supersede(unit, old, start if p.get("at_start") else None)
    return cert


def signed_certificate(compact: CompactSigner, cert_type: CertificateType, agency_code: str,
                       region: Region, key: KeyInfo, now: int, *, iss: str, cert_id: str,
                       holder: str, holder_name: str, claims: dict[str, Any], start: int,
                       end: int | None, list_id: int, index: int,
                       supersedes: str | None = None) -> Certificate:
    """A certificate, its token signed with ``compact`` (the agency's ``key``);
    :class:`~ecert.errors.InputError` if its short QR form would not fit, judged from a
    bound first. The one way a certificate is made: single issue, batch and import."""
    status_uri = _bundle.status_list_uri(region.base_url, list_id)
    payload = CertificateClaims(
        iss=iss, sub=holder, jti=cert_id, iat=now, nbf=start, exp=end, vct=cert_type.code,
        vct_version=cert_type.version, region=region.code, holder_name=holder_name,
        claims=claims, status_list_uri=status_uri, status_index=index,
        supersedes=supersedes).to_payload()
    token, payload_bytes = compact.sign(payload)
    check_short_form_bounded(cert_type, token, region.base_url, now, key.alg, key.kid,
                             payload=payload, digest=_qr.payload_digest(payload_bytes))
    return Certificate(
        id=cert_id, type_code=cert_type.code, agency_code=agency_code, region=region.code,
        holder=holder, holder_name=holder_name, claims=claims, issued_at=from_seconds(now),
        valid_from=from_seconds(start), valid_until=None if end is None else from_seconds(end),
        status=CertificateStatus.VALID, status_list_uri=status_uri, status_index=index,
        kid=key.kid, token=token, type_version=cert_type.version, supersedes=supersedes)


def _predecessor(unit: Unit, p: Mapping[str, Any], old_id: str) -> Certificate:
    """The certificate a renewal or reissue replaces, locked; refused unless it is valid
    (or merely expired), not yet superseded, of the same agency, type and holder."""
    old = unit.repo.get_certificate(old_id, for_update=True)
    if old is None:
        raise NotFound(f"no certificate {old_id}")
    if (old.agency_code, old.type_code, old.holder) != (p["agency"], p["type"], p["holder"]):
        raise InputError(f"a successor of {old_id} must have its agency, type and holder")
    status = effective(old, unit.now).status
    if status is not CertificateStatus.VALID:
        raise InvalidTransition(f"cannot replace certificate {old_id}: it is {status.value}")
    if old.revoke_at is not None:
        raise InvalidTransition(f"cannot replace certificate {old_id}: it is superseded "
                                "already (revocation scheduled)")
    if not old.token:
        raise InvalidTransition(f"cannot replace certificate {old_id}: it was redacted")
    return old


ISSUE = register(Operation(Action.CERT_ISSUE, _target, _issue, private=True))
