"""Operators, their roles and keys; four-eyes policies, requests and approvals."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ecert._authority import GUARDED, Action, Resource, grants_from_json
from ecert._clock import from_seconds
from ecert._formats.log import commitment
from ecert.errors import (
    AlreadyExists,
    InputError,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    RecordTampered,
)
from ecert.models import ApprovalRequest, Operator, OperatorGrant, Region, RequestStatus, Role
from ecert.registry._core import (
    OPERATIONS,
    Operation,
    Target,
    Unit,
    _Context,
    logged_entries,
    params_hash,
    register,
)
from ecert.registry._rules import check_code


def check_operator_name(name: str) -> str:
    """Operator names are codes too (they name key directories)."""
    return check_code("operator", name, 64)


def checked_public_jwk(jwk: Mapping[str, Any]) -> dict[str, str]:
    """A public JWK an operator signs with: a valid public key, its kid its thumbprint."""
    from ecert._formats.jose import jwk_thumbprint, key_from_jwk
    from ecert.errors import FormatError

    try:
        alg, _key = key_from_jwk(jwk)
        thumbprint = jwk_thumbprint(jwk)
    except FormatError as e:
        raise InputError(f"the operator's public key is not usable: {e.message}",
                         code="invalid_key") from e
    return {**{k: str(v) for k, v in jwk.items() if k in ("kty", "crv", "x", "y")},
            "kid": thumbprint, "alg": alg, "use": "sig"}


def parse_grants(roles: Iterable[str], agencies: Iterable[str] | None,
                 types: Iterable[str] | None) -> tuple[OperatorGrant, ...]:
    """Grants from role names and optional agency and type scopes."""
    grants = []
    scope_agencies = None if agencies is None else tuple(sorted(set(agencies)))
    scope_types = None if types is None else tuple(sorted(set(types)))
    for name in roles:
        try:
            role = Role(name)
        except ValueError as e:
            names = ", ".join(r.value for r in Role)
            raise InputError(f"unknown role {name!r}: use {names}", code="invalid_role") from e
        grants.append(OperatorGrant(role, scope_agencies, scope_types))
    if not grants:
        raise InputError("an operator needs at least one role (--role)", code="invalid_role")
    return tuple(grants)


def _digest(value: str) -> str:
    # The reason may name people: the log keeps its hash, the registry the text.
    from hashlib import sha256

    from ecert._formats.jose import b64url_encode

    return b64url_encode(sha256(value.encode("utf-8")).digest())


def _operator_details(op: Operator) -> dict[str, Any]:
    return {"key": dict(op.public_jwk), "grants": [g.to_json() for g in op.grants]}


def _subject(_repo: Any, p: Mapping[str, Any]) -> Target:
    return Target(Resource(), p["name"])


def _add(unit: Unit, p: Mapping[str, Any]) -> Operator:
    if unit.repo.get_operator(p["name"]) is not None:
        raise AlreadyExists(f"operator {p['name']} exists already")
    if unit.repo.operator_by_kid(p["jwk"]["kid"]) is not None:
        raise AlreadyExists("that key belongs to another operator")
    value = Operator(p["name"], p["jwk"]["kid"], dict(p["jwk"]), grants_from_json(p["grants"]),
                     True, from_seconds(unit.now))
    unit.repo.put_operator(value, unit.now)
    unit.log(Action.OPERATOR_ADD, value.name, _operator_details(value), private=True)
    return value


ADD_OPERATOR = register(Operation(Action.OPERATOR_ADD, _subject, _add, private=True))


def _existing(unit: Unit, name: str) -> Operator:
    value = unit.repo.get_operator(name)
    if value is None:
        raise NotFound(f"no operator {name!r}")
    return value


def _disable(unit: Unit, p: Mapping[str, Any]) -> Operator:
    old = _existing(unit, p["name"])
    if not old.active:
        raise InvalidTransition(f"operator {old.name} is disabled already")
    value = Operator(old.name, old.kid, old.public_jwk, old.grants, False, old.created_at)
    unit.repo.put_operator(value, unit.now)
    unit.log(Action.OPERATOR_DISABLE, value.name, {}, private=True)
    return value


DISABLE_OPERATOR = register(Operation(Action.OPERATOR_DISABLE, _subject, _disable,
                                               private=True))


def _grant(unit: Unit, p: Mapping[str, Any]) -> Operator:
    old = _existing(unit, p["name"])
    value = Operator(old.name, old.kid, old.public_jwk, grants_from_json(p["grants"]),
                     old.active, old.created_at)
    unit.repo.put_operator(value, unit.now)
    unit.log(Action.OPERATOR_GRANT, value.name, {"grants": p["grants"]}, private=True)
    return value


GRANT_OPERATOR = register(Operation(Action.OPERATOR_GRANT, _subject, _grant, private=True))


def _new_key(action: Action) -> Callable[[Unit, Mapping[str, Any]], Operator]:
    def apply(unit: Unit, p: Mapping[str, Any]) -> Operator:
        old = _existing(unit, p["name"])
        if action is Action.OPERATOR_ROTATE_KEY and old.name != unit.operator.name:
            raise PermissionDenied("operators rotate only their own key; an admin resets "
                                   "another's (operator reset)")
        if unit.repo.operator_by_kid(p["jwk"]["kid"]) is not None:
            raise AlreadyExists("that key belongs to an operator already")
        value = Operator(old.name, p["jwk"]["kid"], dict(p["jwk"]), old.grants, old.active,
                         old.created_at)
        unit.repo.put_operator(value, unit.now)
        unit.log(action, value.name, {"key": dict(value.public_jwk)}, private=True)
        return value

    return apply


RESET_OPERATOR = register(Operation(Action.OPERATOR_RESET, _subject,
                                    _new_key(Action.OPERATOR_RESET), private=True))
ROTATE_OPERATOR_KEY = register(Operation(Action.OPERATOR_ROTATE_KEY, _subject,
                                         _new_key(Action.OPERATOR_ROTATE_KEY), guarded=False,
                                         self_authorizing=True, private=True))


def _passwd(unit: Unit, p: Mapping[str, Any]) -> None:
    if p["name"] != unit.operator.name:
        raise PermissionDenied("operators change only their own passphrase")
    # The key stays the same; only its encryption changed (after commit, by the caller).
    unit.log(Action.OPERATOR_PASSWD, p["name"], {}, private=True)


PASSWD = register(Operation(Action.OPERATOR_PASSWD, _subject, _passwd, guarded=False,
                            self_authorizing=True, private=True))


def _policy(unit: Unit, p: Mapping[str, Any]) -> None:
    unit.repo.set_policy(p["action"], p["type"] or "", p["approvals"])
    unit.log(Action.POLICY_SET, p["action"], {"type": p["type"], "approvals": p["approvals"]})


SET_POLICY = register(Operation(
    Action.POLICY_SET, lambda _repo, p: Target(Resource(), p["action"]), _policy))


def policy_params(action: str, approvals: int, type_code: str | None) -> dict[str, Any]:
    """Checked parameters of a four-eyes policy."""
    try:
        value = Action(action)
    except ValueError as e:
        raise InputError(f"unknown action {action!r}", code="invalid_action") from e
    if value not in GUARDED:
        names = ", ".join(sorted(a.value for a in GUARDED))
        raise InputError(f"no policy can be set on {action}: use one of {names}",
                         code="invalid_action")
    if not 1 <= approvals <= 5:
        raise InputError("approvals are 1 (none needed) to 5", code="invalid_policy")
    return {"action": value.value, "type": type_code, "approvals": approvals}


def _request_target(repo: Any, p: Mapping[str, Any]) -> Target:
    found = repo.get_request(p["request"])
    if found is None:
        raise NotFound(f"no request {p['request']}")
    request, _params, agency, type_code = found
    return Target(Resource(agency=agency, type=type_code), request.subject)


def _decide(approve: bool) -> Callable[[Unit, Mapping[str, Any]], ApprovalRequest]:
    def apply(unit: Unit, p: Mapping[str, Any]) -> ApprovalRequest:
        repo = unit.repo
        found = repo.get_request(p["request"], for_update=True)
        if found is None:
            raise NotFound(f"no request {p['request']}")
        request, params, agency, type_code = found
        action = Action(request.action)
        if request.status is not RequestStatus.PENDING:
            raise InvalidTransition(f"request {request.id} is {request.status.value} already")
        if unit.now >= int(request.expires_at.timestamp()):
            raise InvalidTransition(f"request {request.id} expired at "
                                    f"{request.expires_at.isoformat()}")
        me = unit.operator.name
        if me == request.requested_by or me in request.approved_by:
            raise PermissionDenied(f"operator {me} cannot decide a request they made or "
                                   "approved already: another operator must")
        unit.require(action, Resource(agency=agency, type=type_code))
        if approve and _logged_params_hash(repo, request.id, request.subject) != params_hash(
                params):
            # What is carried out must be what was asked and logged: parameters edited in
            # the database after the request (a wider entitlement, other claims) would make
            # the approver sign off something they never saw.
            raise RecordTampered(f"request {request.id}'s parameters in the database are not "
                                 "those logged when it was made: nothing was approved; run "
                                 "'ecert audit verify'")
        if not approve:
            repo.update_request(request.id, status=RequestStatus.REJECTED,
                                approved_by=request.approved_by, decided_by=me,
                                reason=p.get("reason"))
            unit.log(Action.REQUEST_REJECT, request.subject,
                     {"request": request.id, "reason": _digest(str(p.get("reason", "")))},
                     private=OPERATIONS[action].private)
        else:
            approved = (*request.approved_by, me)
            done = len(approved) + 1 >= request.approvals_needed
            repo.update_request(request.id,
                                status=RequestStatus.APPROVED if done else RequestStatus.PENDING,
                                approved_by=approved, decided_by=me if done else None)
            unit.log(Action.REQUEST_APPROVE, request.subject,
                     {"request": request.id, "final": done},
                     private=OPERATIONS[action].private)
            if done:
                unit.approved = True
                OPERATIONS[action].apply(unit, params)
        updated = repo.get_request(request.id)
        assert updated is not None  # noqa: S101 - locked above
        return updated[0]

    return apply


def _logged_params_hash(repo: Any, request_id: int, subject: str) -> str | None:
    """The parameters' hash the ``request.create`` entry of ``request_id`` logged."""
    for entry in logged_entries(repo, subject, [Action.REQUEST_CREATE]):
        if entry is not None and entry.details.get("request") == request_id:
            found = entry.details.get("params")
            return found if isinstance(found, str) else None
    return None


APPROVE = register(Operation(Action.REQUEST_APPROVE, _request_target, _decide(True),
                             guarded=False, self_authorizing=True))
REJECT = register(Operation(Action.REQUEST_REJECT, _request_target, _decide(False),
                            guarded=False, self_authorizing=True))


def genesis(ctx: _Context, unit: Unit, region: Region, origin: str) -> None:
    """The first unit of a registry's log: the region, its first admin, its keys."""
    from ecert.models import KeyRole

    unit.repo.create_region(region, unit.now)
    for counter in ("trust_list_sequence", "status_list_id"):
        unit.repo.create_counter(counter)
    unit.repo.put_operator(unit.operator, unit.now)
    unit.log(Action.REGISTRY_INIT, region.code,
             {"name": region.name, "base_url": region.base_url, "origin": origin,
              "tz": region.tz})
    unit.log(Action.OPERATOR_ADD, unit.operator.name, _operator_details(unit.operator),
             private=True)
    unit.new_key(KeyRole.ROOT, None)
    unit.new_key(KeyRole.STATUS, None)
    unit.new_key(KeyRole.LOG, None, "Ed25519")
    unit.new_key(KeyRole.WITNESS, None, "Ed25519")
    unit.new_key(KeyRole.SHARING, None)
    ctx.keystore.secret("holder-pseudonym")


def adopt(ctx: _Context, unit: Unit, legacy_events: Any) -> None:
    """Bring a registry made before operators existed under the log.

    Its old events become the first, unsigned ``legacy`` entries (they prove nothing);
    then the adopting admin — who proved the registry passphrase — signs one unit that
    records everything the trust list rests on as it stands: the region, the admin,
    every type, agency, key (with its retirement or compromise), agreement and root
    rotation. From there on authority is replayed as for any registry.
    """
    from ecert._formats.log import LEGACY_OPERATOR, Entry
    from ecert.models import KeyRole

    repo = unit.repo
    region = ctx.region
    rows = []
    for event in legacy_events:
        public = commitment(ctx.commitment_key, str(event.subject))
        leaf = Entry(int(event.at), Action.LEGACY.value, public, LEGACY_OPERATOR,
                     {"action": str(event.action)}).encode()
        rows.append({"leaf": leaf, "action": Action.LEGACY.value, "subject": public,
                     "plain_subject": str(event.subject), "operator": LEGACY_OPERATOR,
                     "at": int(event.at)})
    if rows:
        end = repo.add_to_counter("log_size", len(rows))
        start = end - len(rows)
        repo.append_log([{**row, "seq": start + i, "unit": start + i}
                         for i, row in enumerate(rows)])
    repo.put_operator(unit.operator, unit.now)
    unit.log(Action.REGISTRY_ADOPT, region.code,
             {"name": region.name, "base_url": region.base_url,
              "origin": region.base_url.split("://", 1)[1] + "/log", "legacy": len(rows),
              "tz": region.tz})
    unit.log(Action.OPERATOR_ADD, unit.operator.name, _operator_details(unit.operator),
             private=True)
    keys = repo.list_keys()
    for key in keys:
        unit.log(Action.KEY_CREATE, key.kid, {"role": key.role.value, "agency": key.agency_code,
                                              "jwk": dict(key.public_jwk)})
    from ecert.registry._catalog import type_details

    for cert_type in repo.list_types():
        # Every stored version, oldest first, so that audit can compare each of them and
        # certificates issued under an older version name a logged definition.
        versions = repo.list_type_versions(cert_type.code) or [cert_type]
        for i, version in enumerate(versions):
            unit.log(Action.TYPE_ADD if i == 0 else Action.TYPE_UPDATE, cert_type.code,
                     type_details(version))
    for agency in repo.list_agencies():
        unit.log(Action.AGENCY_ADD, agency.code, {"name": agency.name, "uscc": agency.uscc,
                                                  "types": list(agency.types)})
    for key in keys:
        if key.compromised_since is not None:
            unit.log(Action.KEY_COMPROMISE, key.kid,
                     {"since": int(key.compromised_since.timestamp()),
                      "agency": key.agency_code, "affected": 0})
        elif key.retired_at is not None and key.role is not KeyRole.ROOT:
            unit.log(Action.KEY_RETIRE, key.kid, {"role": key.role.value,
                                                  "agency": key.agency_code})
    rotations = repo.list_root_rotations()
    old_roots = [k for k in keys if k.role is KeyRole.ROOT and k.retired_at is not None]
    for old, statement in zip(sorted(old_roots, key=lambda k: k.created_at), rotations,
                              strict=False):
        unit.log(Action.ROOT_ROTATE, old.kid, {"kid": "", "statement": statement})
    for agreement in repo.list_agreements():
        unit.log(Action.AGREEMENT_ADD, agreement.region, {"agreement": agreement.to_json()})
    # Certificates issued before the log: recorded as they stand, with their status, so
    # the audit and monitors account for them from here on.
    from ecert._formats.log import token_hash
    from ecert.registry._lifecycle import STATUS_VALUES

    transition = {"suspended": Action.CERT_SUSPEND, "revoked": Action.CERT_REVOKE}
    for row in repo.certificate_facts():
        slot = {"agency": row.agency_code, "type": row.type_code, "list": int(row.status_list_id),
                "idx": int(row.status_index)}
        unit.log(Action.CERT_ISSUE, row.id,
                 {**slot, "kid": row.kid,
                  "token": token_hash(row.token) if row.token else row.token_hash},
                 private=True)
        if row.status in transition:
            from ecert.models import CertificateStatus

            details: dict[str, Any] = {
                **slot, "status": STATUS_VALUES[CertificateStatus(row.status)]}
            if row.revocation_reason:
                details["reason"] = row.revocation_reason
            unit.log(transition[row.status], row.id, details, private=True)
    # A registry made before 0.2 has no log or witness key: give it both now.
    if repo.active_key(KeyRole.LOG) is None:
        unit.new_key(KeyRole.LOG, None, "Ed25519")
    if repo.active_key(KeyRole.WITNESS) is None:
        unit.new_key(KeyRole.WITNESS, None, "Ed25519")
    for counter in ("log_integrated",):
        repo.add_to_counter(counter, 0)
