"""A certificate's life after issue: suspend, reinstate, revoke, and lawful erasure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ecert._authority import Action, Resource, revocations_digest
from ecert._clock import to_seconds
from ecert._formats.log import commitment
from ecert._formats.statuslist import INVALID, SUSPENDED, VALID
from ecert.errors import InvalidTransition, NotFound, RecordTampered
from ecert.models import Certificate, CertificateStatus, RevocationReason
from ecert.registry._core import Operation, Target, Unit, register
from ecert.registry._rules import list_id_of

#: The status-list value each registry status publishes.
STATUS_VALUES = {CertificateStatus.VALID: VALID, CertificateStatus.SUSPENDED: SUSPENDED,
                 CertificateStatus.REVOKED: INVALID}
#: The log entries that change a certificate's status-list entry (their subject is the
#: certificate): what an incremental publication looks for since the lists it reuses.
STATUS_ACTIONS = (Action.CERT_ISSUE, Action.CERT_SUSPEND, Action.CERT_REINSTATE,
                  Action.CERT_REVOKE, Action.CERT_SUPERSEDE)

_ALLOWED: Mapping[Action, frozenset[CertificateStatus]] = {
    Action.CERT_REVOKE: frozenset({CertificateStatus.VALID, CertificateStatus.SUSPENDED}),
    Action.CERT_SUSPEND: frozenset({CertificateStatus.VALID}),
    Action.CERT_REINSTATE: frozenset({CertificateStatus.SUSPENDED}),
    Action.CERT_REDACT: frozenset({CertificateStatus.REVOKED}),
}
_TARGET = {Action.CERT_REVOKE: CertificateStatus.REVOKED,
           Action.CERT_SUSPEND: CertificateStatus.SUSPENDED,
           Action.CERT_REINSTATE: CertificateStatus.VALID}


def effective(cert: Certificate, now: int) -> Certificate:
    """``cert`` as it stands at ``now``: a scheduled revocation that fell due reads revoked.

    The row keeps the status last set by an action and the scheduled instant
    (``revoke_at``); nothing needs to run at that instant, because every reader (this,
    the status lists publication builds, the log replay) computes the same.
    """
    if (cert.revoke_at is not None and cert.status is not CertificateStatus.REVOKED
            and to_seconds(cert.revoke_at) <= now):
        return replace(cert, status=CertificateStatus.REVOKED,
                       revocation_reason=RevocationReason.SUPERSEDED)
    return cert


def _target(repo: Any, p: Mapping[str, Any]) -> Target:
    cert = repo.get_certificate(p["id"])
    if cert is None:
        raise NotFound(f"no certificate {p['id']}")
    return Target(Resource(agency=cert.agency_code, type=cert.type_code), cert.id)


def _locked(unit: Unit, action: Action, cert_id: str) -> Certificate:
    cert = unit.repo.get_certificate(cert_id, for_update=True)
    if cert is None:
        raise NotFound(f"no certificate {cert_id}")
    status = effective(cert, unit.now).status
    if status not in _ALLOWED[action]:
        verb = action.value.split(".")[1]
        raise InvalidTransition(f"cannot {verb} certificate {cert_id}: it is {status.value}")
    return cert


def _change(unit: Unit, action: Action, cert: Certificate, reason: RevocationReason | None,
            note: str | None) -> None:
    """Set ``cert`` (locked) to the status ``action`` leads to, and log it."""
    target_status = _TARGET[action]
    unit.repo.set_status(cert.id, target_status, reason, note)
    details: dict[str, Any] = {
        "agency": cert.agency_code, "type": cert.type_code,
        "list": list_id_of(cert.status_list_uri), "idx": cert.status_index,
        "status": STATUS_VALUES[target_status]}
    if reason is not None:
        details["reason"] = reason.value
    unit.log(action, cert.id, details, private=True, note=note)


def _transition(action: Action) -> Operation[Certificate]:
    def apply(unit: Unit, p: Mapping[str, Any]) -> Certificate:
        cert = _locked(unit, action, p["id"])
        reason = RevocationReason(p["reason"]) if p.get("reason") else None
        _change(unit, action, cert, reason, p.get("note") or None)
        updated = unit.repo.get_certificate(cert.id)
        if updated is None:  # pragma: no cover - the row was locked above
            raise NotFound(f"no certificate {cert.id}")
        return effective(updated, unit.now)

    return register(Operation(action, _target, apply, private=True))


REVOKE = _transition(Action.CERT_REVOKE)
SUSPEND = _transition(Action.CERT_SUSPEND)
REINSTATE = _transition(Action.CERT_REINSTATE)


def _batch_target(repo: Any, p: Mapping[str, Any]) -> Target:
    """A revocation batch: its subject the digest of what it revokes; its resource the
    agency and type all its certificates share (None where they differ: only an officer
    of every agency or type may then revoke the batch)."""
    agencies = {agency for agency, _type in p["scope"]}
    types = {type_code for _agency, type_code in p["scope"]}
    return Target(Resource(agency=next(iter(agencies)) if len(agencies) == 1 else None,
                           type=next(iter(types)) if len(types) == 1 else None),
                  p["subject"])


def _revoke_batch(unit: Unit, p: Mapping[str, Any]) -> list[str]:
    """Revoke every ``[id, reason]`` of ``p["rows"]`` in this one unit: the batch's head
    entry, then one ``certificate.revoke`` each. Refused whole if any certificate is no
    longer revocable or outside the operator's grants, or if the rows are not the ones
    the subject names."""
    certs = []
    for cert_id, reason in p["rows"]:
        cert = _locked(unit, Action.CERT_REVOKE, cert_id)
        unit.require(Action.CERT_REVOKE, Resource(cert.agency_code, cert.type_code))
        certs.append((cert, RevocationReason(reason)))
    key = unit.ctx.commitment_key
    if revocations_digest((commitment(key, c.id), r.value) for c, r in certs) != p["subject"]:
        raise RecordTampered("the revocation batch's rows are not the ones its subject names")
    target = _batch_target(None, p)
    unit.log(Action.CERT_REVOKE_BATCH, p["subject"],
             {"count": len(certs), "agency": target.resource.agency,
              "type": target.resource.type})
    for cert, reason in certs:
        _change(unit, Action.CERT_REVOKE, cert, reason, None)
    return [c.id for c, _r in certs]


REVOKE_BATCH = register(Operation(
    Action.CERT_REVOKE_BATCH, _batch_target, _revoke_batch,
    # A four-eyes policy on revoking any of its types holds the whole batch, once.
    covers=lambda p: [(Action.CERT_REVOKE, t) for t in sorted({t for _a, t in p["scope"]})],
    integrate=True))


def _redact(unit: Unit, p: Mapping[str, Any]) -> Certificate:
    cert = _locked(unit, Action.CERT_REDACT, p["id"])
    unit.repo.redact_certificate(cert.id, unit.now)
    # The token's hash stays in the log and the row, so erasure is not taken for tampering.
    unit.log(Action.CERT_REDACT, cert.id, {"agency": cert.agency_code, "type": cert.type_code},
             private=True)
    updated = unit.repo.get_certificate(cert.id)
    if updated is None:  # pragma: no cover - the row was locked above
        raise NotFound(f"no certificate {cert.id}")
    return updated


REDACT = register(Operation(Action.CERT_REDACT, _target, _redact, private=True))


def supersede(unit: Unit, old: Certificate, at: int | None) -> None:
    """Revoke ``old`` (reason superseded) for the successor this unit issued: now, or —
    when ``at`` lies ahead — from ``at`` on, with nobody acting then."""
    details: dict[str, Any] = {
        "agency": old.agency_code, "type": old.type_code,
        "list": list_id_of(old.status_list_uri), "idx": old.status_index,
        "status": INVALID, "reason": RevocationReason.SUPERSEDED.value}
    if at is not None and at > unit.now:
        unit.repo.schedule_revocation(old.id, at)
        details["at"] = at
    else:
        unit.repo.set_status(old.id, CertificateStatus.REVOKED, RevocationReason.SUPERSEDED)
    unit.log(Action.CERT_SUPERSEDE, old.id, details, private=True)
