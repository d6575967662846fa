"""Issuance: claims checked against the type, a status-list slot, the signed token."""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Mapping
from hashlib import sha256
from typing import Any

import jsonschema

from ecert._allocation import permuted_index
from ecert._authority import Action, Resource
from ecert._clock import from_seconds
from ecert._formats import bundle as _bundle
from ecert._formats.certificate import CertificateClaims
from ecert._formats.jose import b64url_encode, canonical_json
from ecert._formats.log import commitment, token_hash
from ecert.errors import ClaimsInvalid, InputError, InvalidTransition, NotAuthorized, NotFound
from ecert.identifiers import CertificateId
from ecert.models import Certificate, CertificateStatus, CertificateType, KeyRole
from ecert.registry._core import Operation, Retry, Target, Unit, register
from ecert.registry._lifecycle import effective, supersede

# (code, version) -> (the schema it was compiled from, validator); the schema is compared,
# so a type changed under the same version (tests, migrations) never uses a stale one.
_validators: dict[tuple[str, int], tuple[Mapping[str, Any], jsonschema.protocols.Validator]] = {}


def holder_pseudonym(key: bytes, holder_id: str) -> str:
    """The keyed pseudonym of a holder id: stable per registry, unlinkable across regions."""
    normalized = "".join(holder_id.split()).upper()
    if not normalized:
        raise InputError("holder id is empty")
    return b64url_encode(hmac.new(key, normalized.encode(), sha256).digest()[:16])


def validate_claims(cert_type: CertificateType, claims: Mapping[str, Any]) -> None:
    """Raise :class:`ClaimsInvalid`, naming the field, unless ``claims`` fit the type."""
    cache_key = (cert_type.code, cert_type.version)
    cached = _validators.get(cache_key)
    if cached is not None and cached[0] == cert_type.schema:
        validator = cached[1]
    else:
        cls = jsonschema.validators.validator_for(cert_type.schema)
        validator = cls(cert_type.schema, format_checker=cls.FORMAT_CHECKER)
        _validators[cache_key] = (cert_type.schema, validator)
    error = jsonschema.exceptions.best_match(validator.iter_errors(claims))
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
    raise ClaimsInvalid(f"claims of {cert_type.code} invalid at {field}: {error.message}",
                        field=field)


def plain_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """Plain JSON values, detached from the caller's objects."""
    value: dict[str, Any] = json.loads(canonical_json(dict(claims)))
    return value


def _target(_repo: Any, p: Mapping[str, Any]) -> Target:
    return Target(Resource(agency=p["agency"], type=p["type"]), f"{p['agency']}/{p['type']}")


def _issue(unit: Unit, p: Mapping[str, Any]) -> Certificate:
    repo, region, now = unit.repo, unit.region, unit.now
    cert_type = repo.get_type(p["type"])
    agency = repo.get_agency(p["agency"])
    if cert_type is None:
        raise NotFound(f"no certificate type {p['type']!r}")
    if agency is None:
        raise NotFound(f"no agency {p['agency']!r}")
    if not agency.may_issue(cert_type.code, from_seconds(now)):
        allowed = [t for t in agency.types if agency.may_issue(t, from_seconds(now))]
        raise NotAuthorized(f"agency {agency.code} may not issue {cert_type.code} "
                            f"(it issues: {', '.join(allowed) or 'nothing'})")
    claims = p["claims"]
    validate_claims(cert_type, claims)
    start = p["valid_from"] if p["valid_from"] is not None else now
    end = p["valid_until"]
    if end is None and p["default_validity"] and cert_type.validity_days is not None:
        end = start + cert_type.validity_days * 86_400
    if end is not None and end <= start:
        raise InputError("valid-until must be after valid-from")
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
    status_uri = _bundle.status_list_uri(region.base_url, list_id)
    token = CertificateClaims(
        iss=region.agency_uri(agency.code), sub=p["holder"], jti=cert_id, iat=now, nbf=start,
        exp=end, vct=cert_type.code, vct_version=cert_type.version, region=region.code,
        holder_name=p["holder_name"], claims=claims, status_list_uri=status_uri,
        status_index=index, supersedes=supersedes,
    ).sign(signer)
    cert = Certificate(
        id=cert_id, type_code=cert_type.code, agency_code=agency.code, region=region.code,
        holder=p["holder"], holder_name=p["holder_name"], claims=claims,
        issued_at=from_seconds(now), valid_from=from_seconds(start),
        valid_until=None if end is None else from_seconds(end),
        status=CertificateStatus.VALID, status_list_uri=status_uri, status_index=index,
        kid=key.kid, token=token, type_version=cert_type.version, supersedes=supersedes,
    )
    repo.add_certificate(cert, serial, list_id)
    details: dict[str, Any] = {"agency": agency.code, "type": cert_type.code, "kid": key.kid,
                               "list": list_id, "idx": index, "token": token_hash(token)}
    if old is not None:
        # The replay pairs the predecessor's certificate.supersede entry with this.
        details["replaces"] = commitment(unit.ctx.commitment_key, old.id)
    unit.log(Action.CERT_ISSUE, cert_id, details, private=True)
    if old is not None:
        supersede(unit, old, start if p.get("at_start") else None)
    return cert


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
