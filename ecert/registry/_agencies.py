"""Agencies and the registry's keys: agency keys, compromise, the region root."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ecert import _windows
from ecert._authority import Action, Resource
from ecert._formats.trustlist import sign_root_rotation
from ecert.errors import AlreadyExists, InputError, InvalidTransition, NotFound, StorageError
from ecert.holder_ids import normalize_id
from ecert.identifiers import validate_uscc
from ecert.models import Agency, KeyInfo, KeyRole
from ecert.registry._core import Operation, Target, Unit, register
from ecert.registry._rules import check_code


def agency_params(code: str, name: str, uscc: str, types: Iterable[str],
                  alg: str) -> dict[str, Any]:
    """Checked parameters of a new agency."""
    check_code("agency", code)
    uscc = normalize_id(uscc)  # full-width or lower-case as typed on a Chinese keyboard
    validate_uscc(uscc)
    if not name.strip():
        raise InputError("an agency needs a name", code="invalid_name")
    if alg not in ("ES256", "Ed25519"):
        raise InputError(f"unsupported algorithm {alg!r}; use ES256 or Ed25519")
    return {"code": code, "name": name, "uscc": uscc, "types": sorted(set(types)), "alg": alg}


def _add(unit: Unit, p: Mapping[str, Any]) -> Agency:
    repo = unit.repo
    code = p["code"]
    if repo.get_agency(code) is not None:
        raise AlreadyExists(f"agency {code} exists already")
    if repo.agency_with_uscc(p["uscc"]) is not None:
        raise AlreadyExists(f"an agency with USCC {p['uscc']} exists already")
    for type_code in p["types"]:
        if repo.get_type(type_code) is None:
            raise NotFound(f"no certificate type {type_code!r}")
    value = Agency(code, p["name"], p["uscc"], tuple(p["types"]))
    repo.add_agency(value, unit.now)
    repo.create_counter(f"serial:{code}")
    unit.log(Action.AGENCY_ADD, code, {"name": value.name, "uscc": value.uscc,
                                       "types": list(value.types)})
    unit.new_key(KeyRole.AGENCY, code, p["alg"])
    return value


ADD_AGENCY = register(Operation(
    Action.AGENCY_ADD, lambda _repo, p: Target(Resource(agency=p["code"]), p["code"]), _add))


#: The keys ``key.rotate`` makes: an agency's signing key, its requester key (RFC 9421
#: requests to other regions' sharing services) and the registry's one sharing key.
_ROTATABLE = (KeyRole.AGENCY, KeyRole.REQUESTER, KeyRole.SHARING)


def rotate_params(role: KeyRole, agency: str | None, alg: str, *, replace: bool = True,
                  create: bool = True) -> dict[str, Any]:
    """Checked parameters of ``key.rotate``: ``create`` makes a new key, ``replace`` retires
    the active one (both: a rotation; only ``create``: a first key; only ``replace``: a
    retirement without successor, for requester keys)."""
    if role not in _ROTATABLE:
        raise InputError(f"{role.value} keys are not rotated this way", code="invalid_role")
    if (role is KeyRole.SHARING) != (agency is None):
        raise InputError("a sharing key belongs to the registry, every other key to an agency",
                         code="invalid_role")
    if alg not in ("ES256", "Ed25519"):
        raise InputError(f"unsupported algorithm {alg!r}; use ES256 or Ed25519")
    if not (create or replace) or (role is not KeyRole.REQUESTER and not create):
        raise InputError("only a requester key is retired without a successor",
                         code="invalid_change")
    return {"agency": agency, "alg": alg, "role": role.value, "replace": replace,
            "create": create}


def _rotate_subject(p: Mapping[str, Any]) -> str:
    return p["agency"] if p.get("agency") is not None else KeyRole.SHARING.value


def _rotate(unit: Unit, p: Mapping[str, Any]) -> KeyInfo | None:
    repo = unit.repo
    code = p["agency"]
    role = KeyRole(p.get("role", KeyRole.AGENCY.value))  # requests made before 0009: agency
    if code is not None and repo.get_agency(code) is None:
        raise NotFound(f"no agency {code!r}")
    old = repo.active_key(role, code) if code is not None else repo.active_key(role)
    replace, create = p.get("replace", True), p.get("create", True)
    if old is not None and not replace:
        raise AlreadyExists(f"{'agency ' + code if code else 'the registry'} has an active "
                            f"{role.value} key already ({old.kid}): rotate it")
    if old is None and not create:
        raise InvalidTransition(f"agency {code} has no active {role.value} key",
                                code="no_active_key")
    details: dict[str, Any] = {"retired": old.kid if old else None}
    if role is not KeyRole.AGENCY:  # absent for agency keys: their entries read as before
        details["role"] = role.value
    unit.log(Action.KEY_ROTATE, _rotate_subject(p), details)
    if old is not None and replace:
        repo.retire_key(old.kid, unit.now)
        unit.log(Action.KEY_RETIRE, old.kid, {"role": old.role.value, "agency": code})
        unit.after_commit(lambda: unit.ctx.destroy_key(old.kid))
    return unit.new_key(role, code, p["alg"]) if create else None


ROTATE_KEY = register(Operation(
    Action.KEY_ROTATE,
    lambda _repo, p: Target(Resource(agency=p["agency"]), _rotate_subject(p)), _rotate))


def _compromise_target(repo: Any, p: Mapping[str, Any]) -> Target:
    key = repo.get_key(p["kid"])
    if key is None or key.role is not KeyRole.AGENCY or key.agency_code is None:
        raise NotFound(f"no agency key {p['kid']!r}")
    return Target(Resource(agency=key.agency_code), p["kid"])


def _compromise(unit: Unit, p: Mapping[str, Any]) -> KeyInfo:
    repo = unit.repo
    kid, when = p["kid"], p["since"]
    if when > unit.now:
        raise InputError("a key cannot be compromised in the future")
    key = repo.get_key(kid)
    if key is None or key.agency_code is None:
        raise NotFound(f"no agency key {kid!r}")
    if key.compromised_since is not None:
        raise InvalidTransition(f"key {kid} is already marked compromised")
    was_active = key.retired_at is None
    repo.mark_compromised(kid, when, unit.now)
    affected = repo.count_signed_since(kid, when)
    unit.log(Action.KEY_COMPROMISE, kid, {"since": when, "agency": key.agency_code,
                                          "affected": affected})
    if was_active:
        unit.new_key(KeyRole.AGENCY, key.agency_code, key.alg)
    unit.after_commit(lambda: unit.ctx.destroy_key(kid))
    updated = repo.get_key(kid)
    if updated is None:  # pragma: no cover - the row was just written
        raise NotFound(f"no agency key {kid!r}")
    return updated


COMPROMISE_KEY = register(Operation(Action.KEY_COMPROMISE, _compromise_target, _compromise))


def _rotate_root(unit: Unit, p: Mapping[str, Any]) -> KeyInfo:
    repo = unit.repo
    old = repo.active_key(KeyRole.ROOT)
    if old is None:
        raise StorageError("registry has no root key")
    new = unit.new_key(KeyRole.ROOT, None, p["alg"])
    statement = sign_root_rotation(unit.region.code, new.public_jwk, unit.now,
                                   unit.ctx.keystore.signer(old.kid))
    repo.retire_key(old.kid, unit.now)
    repo.add_root_rotation(old.kid, new.kid, statement, unit.now)
    unit.log(Action.ROOT_ROTATE, old.kid, {"kid": new.kid, "statement": statement})
    unit.after_commit(lambda: unit.ctx.destroy_key(old.kid))
    return new


def _root_target(repo: Any, _p: Mapping[str, Any]) -> Target:
    root = repo.active_key(KeyRole.ROOT)
    if root is None:
        raise StorageError("registry has no root key")
    return Target(Resource(), root.kid)


ROTATE_ROOT = register(Operation(Action.ROOT_ROTATE, _root_target, _rotate_root))


# -- upkeep: rename, give and deny types ------------------------------------------------------


def _existing(unit: Unit, code: str) -> Agency:
    agency = unit.repo.get_agency(code)
    if agency is None:
        raise NotFound(f"no agency {code!r}")
    return agency


def _rename(unit: Unit, p: Mapping[str, Any]) -> Agency:
    agency = _existing(unit, p["agency"])
    name = p["name"]
    if not name.strip():
        raise InputError("an agency needs a name", code="invalid_name")
    if name == agency.name:
        raise InvalidTransition(f"agency {agency.code} is named {name} already", code="unchanged")
    unit.repo.rename_agency(agency.code, name)
    unit.log(Action.AGENCY_RENAME, agency.code, {"name": name, "previous": agency.name})
    return _existing(unit, agency.code)


def _allow(unit: Unit, p: Mapping[str, Any]) -> Agency:
    agency = _existing(unit, p["agency"])
    type_code = p["type"]
    if unit.repo.get_type(type_code) is None:
        raise NotFound(f"no certificate type {type_code!r}")
    windows = _windows.allow(_windows.of_type(agency.windows, type_code), unit.now,
                             type_code in agency.types)
    unit.repo.set_agency_type(agency.code, type_code, windows)
    unit.log(Action.AGENCY_ALLOW_TYPE, agency.code,
             {"type": type_code, "windows": _windows.to_json(windows)})
    return _existing(unit, agency.code)


def _deny(unit: Unit, p: Mapping[str, Any]) -> Agency:
    agency = _existing(unit, p["agency"])
    type_code = p["type"]
    if type_code not in agency.types:
        raise InvalidTransition(f"agency {agency.code} was never given {type_code}",
                                code="not_authorized")
    # No date: from when the change is carried out (after approval, under four eyes).
    since = unit.now if p["since"] is None else p["since"]
    windows = _windows.deny(_windows.of_type(agency.windows, type_code), since, unit.now)
    unit.repo.set_agency_type(agency.code, type_code, windows)
    unit.log(Action.AGENCY_DENY_TYPE, agency.code,
             {"type": type_code, "from": since, "windows": _windows.to_json(windows)})
    return _existing(unit, agency.code)


RENAME_AGENCY = register(Operation(
    Action.AGENCY_RENAME, lambda _repo, p: Target(Resource(agency=p["agency"]), p["agency"]),
    _rename))
ALLOW_TYPE = register(Operation(
    Action.AGENCY_ALLOW_TYPE,
    lambda _repo, p: Target(Resource(agency=p["agency"], type=p["type"]), p["agency"]), _allow))
DENY_TYPE = register(Operation(
    Action.AGENCY_DENY_TYPE,
    lambda _repo, p: Target(Resource(agency=p["agency"], type=p["type"]), p["agency"]), _deny))
