"""Printing: a certificate's QR code is signed through the unit of work, and logged.

A QR token is a new signature by the agency's key over what a certificate says, handed
to whoever holds the paper; like issuing, it is recorded (``certificate.qr``, its subject
published only as a commitment) so that ``ecert audit history`` shows who printed a
licence, and when. A certificate that is not valid at that moment is refused unless the caller
asks for a visibly marked print (``allow_invalid``); the entry records which it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecert._authority import Action, Resource
from ecert._clock import from_seconds
from ecert.errors import InputError, NotFound
from ecert.models import KeyRole
from ecert.qr import Standing, refusal, standing
from ecert.registry._core import Operation, Target, Unit, register


def _target(repo: Any, p: Mapping[str, Any]) -> Target:
    cert = repo.get_certificate(p["id"])
    if cert is None:
        raise NotFound(f"no certificate {p['id']}")
    return Target(Resource(agency=cert.agency_code, type=cert.type_code), cert.id)


def _sign_qr(unit: Unit, p: Mapping[str, Any]) -> tuple[str, Standing]:
    from ecert._formats import qr as _qr
    from ecert.registry import _audit

    repo = unit.repo
    cert = repo.get_certificate(p["id"])
    if cert is None:
        raise NotFound(f"no certificate {p['id']}")
    # The version it was issued under: its claims fit that version's QR claims.
    cert_type = repo.get_type_version(cert.type_code, cert.type_version)
    if cert_type is None:
        raise NotFound(f"no type {cert.type_code}")
    key = repo.active_key(KeyRole.AGENCY, cert.agency_code)
    _audit.check_stored_token(unit.ctx, repo, cert)
    if key is None:
        raise InputError(f"agency {cert.agency_code} has no active signing key",
                         code="not_authorized")
    state = standing(cert, from_seconds(unit.now))
    if state is not Standing.VALID and not p.get("allow_invalid"):
        raise refusal(cert.id, state)
    payload = _qr.qr_payload(_qr.parse_token_payload(cert.token), cert.token,
                             cert_type.qr_claims, unit.region.base_url, unit.now,
                             full=bool(p.get("full")))
    token = _qr.sign_qr_token(payload, unit.ctx.signer(key.kid))
    unit.log(Action.CERT_QR, cert.id, {"agency": cert.agency_code, "type": cert.type_code,
                                       "kid": key.kid, "full": bool(p.get("full")),
                                       "standing": state.value}, private=True)
    return token, state


SIGN_QR = register(Operation(Action.CERT_QR, _target, _sign_qr, guarded=False, private=True))
