"""The catalog: certificate types and their JSON Schemas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from ecert._authority import Action, Resource
from ecert._formats.text import check_text
from ecert._storage.repository import input_rules
from ecert.errors import AlreadyExists, InputError
from ecert.holder_ids import check_holder_claims, parse_scheme
from ecert.identifiers import validate_national_type_code
from ecert.models import CertificateType
from ecert.registry._core import Operation, Target, Unit, register
from ecert.registry._rules import check_code, schema_digest


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


def _apply(unit: Unit, p: Mapping[str, Any]) -> CertificateType:
    value = CertificateType(p["code"], p["name"], p["national_type_code"], dict(p["schema"]),
                            p["version"], p["validity_days"], tuple(p["qr_claims"]),
                            p.get("holder_id_scheme"), dict(p.get("holder_claims") or {}))
    if unit.repo.get_type(value.code) is not None:
        raise AlreadyExists(f"type {value.code} exists already")
    unit.repo.add_type(value, unit.now)
    unit.log(Action.TYPE_ADD, value.code,
             {"name": value.name, "national_type_code": value.national_type_code,
              "version": value.version, "validity_days": value.validity_days,
              "qr_claims": list(value.qr_claims), "schema": schema_digest(value.schema),
              **type_input_rules(value)})
    return value


ADD_TYPE = register(Operation(
    Action.TYPE_ADD, lambda _repo, p: Target(Resource(type=p["code"]), p["code"]), _apply))
