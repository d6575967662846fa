"""The catalog: certificate types, their versions and JSON Schemas, catalog import."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from ecert._authority import Action, Resource
from ecert._formats.catalog import parse_catalog
from ecert._formats.jose import canonical_json, strict_json_loads
from ecert._formats.text import check_text
from ecert._storage.repository import input_rules
from ecert.errors import AlreadyExists, FormatError, InputError, InvalidTransition, NotFound
from ecert.holder_ids import check_holder_claims, normalize_id, parse_scheme
from ecert.identifiers import validate_national_type_code
from ecert.models import CertificateType
from ecert.registry._core import Operation, Target, Unit, register
from ecert.registry._rules import check_code, schema_digest


@dataclass(frozen=True, slots=True)
class CatalogImport:
    """What :meth:`ecert.Registry.import_catalog` did (or, with ``dry_run``, would do)."""

    added: tuple[str, ...]
    #: ``(code, new version)`` of each type whose definition changed.
    updated: tuple[tuple[str, int], ...]
    unchanged: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """Whether the import changed the catalog."""
        return bool(self.added or self.updated)


def check_type(code: str, name: str, national_type_code: str, schema: Mapping[str, Any],
               validity_days: int | None, holder_id_scheme: str | None = None,
               holder_claims: Mapping[str, str] | None = None) -> None:
    """Refuse a type definition that could never issue anything (pure checks)."""
    check_code("type", code)
    if not isinstance(name, str) or not name.strip():
        raise InputError("a type needs a name", code="invalid_name")
    check_text(name, label="type name", max_length=200)
    if not isinstance(schema, Mapping):
        raise InputError("a claims schema is a JSON object", code="invalid_schema")
    validate_national_type_code(national_type_code)
    if validity_days is not None and validity_days <= 0:
        raise InputError("validity days must be positive")
    try:
        jsonschema.validators.validator_for(schema).check_schema(dict(schema))
    except SchemaError as e:
        raise InputError(f"schema of {code} is not a valid JSON Schema: {e.message}",
                         code="invalid_schema") from e
    if schema.get("type") != "object":
        raise InputError("a claims schema must describe an object", code="invalid_schema")
    if holder_id_scheme is not None:
        parse_scheme(holder_id_scheme)
    if holder_claims:
        check_holder_claims(holder_claims, schema)


def type_input_rules(value: CertificateType) -> dict[str, Any]:
    """What a type's log entry says of its input rules (nothing when it declares none, so
    entries of types without them read as before)."""
    return input_rules(value) or {}


def type_params(code: str, name: str, national_type_code: str, schema: Mapping[str, Any],
                validity_days: int | None, qr_claims: Any, version: int | None,
                extra: Mapping[str, Any] | None, holder_id_scheme: str | None = None,
                holder_claims: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Checked parameters of a type definition (plain JSON, as a request stores them)."""
    if isinstance(national_type_code, str):
        national_type_code = normalize_id(national_type_code)
    check_type(code, name, national_type_code, schema, validity_days, holder_id_scheme,
               holder_claims)
    if version is not None and version < 1:
        raise InputError("a type version is a positive integer", code="invalid_version")
    return {"code": code, "name": name, "national_type_code": national_type_code,
            "schema": dict(schema), "version": version, "validity_days": validity_days,
            "qr_claims": list(qr_claims), "extra": dict(extra or {}),
            "holder_id_scheme": (None if holder_id_scheme is None
                                 else str(parse_scheme(holder_id_scheme))),
            "holder_claims": dict(holder_claims or {})}


def _value(p: Mapping[str, Any], version: int) -> CertificateType:
    return CertificateType(p["code"], p["name"], p["national_type_code"], dict(p["schema"]),
                           version, p["validity_days"], tuple(p["qr_claims"]),
                           extra=dict(p.get("extra") or {}),
                           holder_id_scheme=p.get("holder_id_scheme"),
                           holder_claims=dict(p.get("holder_claims") or {}))


def _definition(value: CertificateType) -> bytes:
    """What makes two versions of a type the same definition (the version number aside)."""
    return canonical_json({"name": value.name, "ntc": value.national_type_code,
                           "schema": dict(value.schema), "validity": value.validity_days,
                           "qr": list(value.qr_claims), "extra": dict(value.extra),
                           "rules": type_input_rules(value)})


def type_details(value: CertificateType) -> dict[str, Any]:
    """What a type's ``type.add``/``type.update`` entry says of one version: everything
    that decides what may be issued under it (the schema and extra members by digest).
    ``audit verify`` compares every stored version with this."""
    details = {"name": value.name, "national_type_code": value.national_type_code,
               "version": value.version, "validity_days": value.validity_days,
               "qr_claims": list(value.qr_claims), "schema": schema_digest(value.schema)}
    if value.extra:
        details["extra"] = schema_digest(value.extra)
    details.update(type_input_rules(value))
    return details


def _add(unit: Unit, p: Mapping[str, Any]) -> CertificateType:
    value = _value(p, p["version"] or 1)
    if unit.repo.get_type(value.code) is not None:
        raise AlreadyExists(f"type {value.code} exists already")
    unit.repo.add_type(value, unit.now)
    unit.log(Action.TYPE_ADD, value.code, type_details(value))
    return value


def plan_update(current: CertificateType, p: Mapping[str, Any]) -> CertificateType | None:
    """The new version ``p`` defines, or None when it is the current definition.

    A differing definition becomes a new version: the next one, or ``p["version"]`` when
    given (which must be newer). The national type code never changes: it is part of
    every certificate id already issued.
    """
    if p["national_type_code"] != current.national_type_code:
        raise InputError(f"type {current.code} has national type code "
                         f"{current.national_type_code}; certificate ids depend on it, so it "
                         "cannot change: add a new type instead", code="national_type_code_fixed")
    proposed = _value(p, current.version)
    if _definition(proposed) == _definition(current) and p["version"] in (None,
                                                                          current.version):
        return None
    version = p["version"] if p["version"] is not None else current.version + 1
    if version <= current.version:
        raise InputError(f"type {current.code} is at version {current.version} already; a "
                         "new definition needs a higher version", code="invalid_version")
    return _value(p, version)


def _update(unit: Unit, p: Mapping[str, Any]) -> CertificateType:
    current = unit.repo.get_type(p["code"])
    if current is None:
        raise NotFound(f"no certificate type {p['code']!r}")
    value = plan_update(current, p)
    if value is None:
        raise InvalidTransition(f"type {current.code} version {current.version} has this "
                                "definition already", code="unchanged")
    unit.repo.add_type_version(value, unit.now)
    unit.log(Action.TYPE_UPDATE, value.code, type_details(value))
    return value


def _type_target(_repo: Any, p: Mapping[str, Any]) -> Target:
    return Target(Resource(type=p["code"]), p["code"])


ADD_TYPE = register(Operation(Action.TYPE_ADD, _type_target, _add))
UPDATE_TYPE = register(Operation(Action.TYPE_UPDATE, _type_target, _update))


def _import_step(repo: Any, p: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """What importing one definition does: ``("add" | "update" | "unchanged", params)``.

    A definition stating the type's current version but differing from it is an edited
    export: it becomes the next version. One stating an older version is left alone if
    it is that version as stored (a stale export), and refused otherwise.
    """
    current = repo.get_type(p["code"])
    if current is None:
        return "add", p
    version = p["version"]
    if version is not None and version < current.version:
        stored = repo.get_type_version(p["code"], version)
        if stored is not None and _definition(stored) == _definition(_value(p, version)):
            return "unchanged", p
        raise InputError(f"the catalog describes version {version} of {p['code']}, which "
                         f"differs from it, while the registry is at version "
                         f"{current.version}: give a newer version", code="invalid_version")
    if version == current.version:
        p = {**p, "version": None}
    return ("unchanged", p) if plan_update(current, p) is None else ("update", p)


def plan_import(repo: Any, types: Sequence[Mapping[str, Any]]
                ) -> tuple[CatalogImport, list[tuple[str, Mapping[str, Any]]]]:
    """What importing ``types`` changes (checks every definition first), and the steps."""
    steps = [_import_step(repo, p) for p in types]
    added = tuple(p["code"] for kind, p in steps if kind == "add")
    unchanged = tuple(p["code"] for kind, p in steps if kind == "unchanged")
    updated = []
    for kind, p in steps:
        if kind == "update":
            current = repo.get_type(p["code"])
            value = plan_update(current, p)
            assert value is not None  # noqa: S101 - an update step changes the type
            updated.append((value.code, value.version))
    return CatalogImport(added, tuple(updated), unchanged), steps


def _import(unit: Unit, p: Mapping[str, Any]) -> CatalogImport:
    types = p["types"]
    plan, steps = plan_import(unit.repo, types)
    unit.log(Action.CATALOG_IMPORT, CATALOG_SUBJECT,
             {"digest": schema_digest({"types": types}), "added": list(plan.added),
              "updated": [code for code, _v in plan.updated],
              "unchanged": len(plan.unchanged)})
    for kind, params in steps:
        if kind == "add":
            _add(unit, params)
        elif kind == "update":
            _update(unit, params)
    return plan


def _import_covers(p: Mapping[str, Any]) -> list[tuple[Action, str | None]]:
    # Either may be logged for each type: the policies of both hold the import.
    return [(action, t["code"]) for t in p["types"]
            for action in (Action.TYPE_ADD, Action.TYPE_UPDATE)]


#: The subject of a catalog import's first entry (and of its four-eyes request).
CATALOG_SUBJECT = "catalog"

IMPORT_CATALOG = register(Operation(
    Action.CATALOG_IMPORT, lambda _repo, _p: Target(Resource(), CATALOG_SUBJECT), _import,
    covers=_import_covers))


def _load_json(path: Path, what: str) -> Any:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}", code="unreadable") from e
    try:
        # utf-8-sig: a file saved by a spreadsheet or Notepad may start with a BOM.
        return strict_json_loads(data.decode("utf-8-sig").encode("utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{what} {path} is not UTF-8 text", code="invalid_catalog") from e
    except FormatError as e:
        raise InputError(f"{what} {path} is not valid JSON: {e.message}",
                         code="invalid_catalog") from e


def read_catalog(source: str | Path | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The type entries of a catalog file (schema paths resolved beside it) or document."""
    if isinstance(source, Mapping):
        def embedded_only(ref: str) -> Any:
            raise InputError(f"schema {ref!r}: a catalog given as a document must embed its "
                             "schemas", code="invalid_catalog")
        return parse_catalog(dict(source), embedded_only)
    path = Path(source)
    base = path.parent.resolve()

    def load(ref: str) -> Any:
        target = (base / ref).resolve()
        # Schemas live beside the catalog: a catalog cannot make us read other files.
        if Path(ref).is_absolute() or not target.is_relative_to(base):
            raise InputError(f"schema path {ref!r} leaves the catalog's directory",
                             code="invalid_catalog")
        return _load_json(target, "schema")

    try:
        return parse_catalog(_load_json(path, "catalog"), load)
    except FormatError as e:
        raise InputError(e.message, code=e.code) from e
