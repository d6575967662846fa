"""A compiled fast path for the JSON Schemas of certificate types.

``jsonschema`` walks a schema anew for every instance (about 70 µs for a business
licence, twice a bare signature); batch issuance checks millions. :func:`compile_schema`
turns a schema that uses only a small, common subset of draft 2020-12 into a plain
function that answers *certainly valid* (True) or *not known* (False). Only True is
trusted: on False the caller asks ``jsonschema`` itself, which finds and names the error,
so a claim is never refused by this module and never accepted unless every keyword of
the subset said yes — with the very format checker ``jsonschema`` uses.

The subset: ``type`` (string, null, boolean, object, integer, array), ``properties``,
``required``, ``additionalProperties: false``, ``minLength``/``maxLength``, ``pattern``,
``format``, ``enum``/``const`` of strings, ``minimum``/``maximum`` on integers,
``items`` (one schema), ``minItems``/``maxItems``, ``uniqueItems`` of strings, plus
annotations. A schema using anything else compiles to None (``jsonschema`` for every
instance).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

#: Keywords that assert nothing (annotations and identifiers).
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "examples",
                          "default", "deprecated", "readOnly", "writeOnly"})
_SIMPLE_TYPES = frozenset({"string", "null", "boolean", "object", "integer", "array"})

Check = Callable[[Any], bool]


class _Unsupported(Exception):
    """The schema leaves the subset: no fast path."""


def compile_schema(schema: Mapping[str, Any], conforms: Callable[[Any, str], bool]
                   ) -> Check | None:
    """A check for instances of ``schema``, or None when it leaves the subset.

    ``conforms(value, format)`` is the format checker's verdict (``jsonschema``'s
    ``FormatChecker.conforms``), so formats are judged by the same code either way.
    """
    try:
        return _compile(schema, conforms)
    except _Unsupported:
        return None


def _compile(schema: Any, conforms: Callable[[Any, str], bool]) -> Check:
    if not isinstance(schema, Mapping):
        raise _Unsupported
    unknown = set(schema) - _ANNOTATIONS - {
        "type", "properties", "required", "additionalProperties", "minLength", "maxLength",
        "pattern", "format", "enum", "const", "minimum", "maximum", "items", "minItems",
        "maxItems", "uniqueItems"}
    if unknown:
        raise _Unsupported
    checks: list[Check] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not isinstance(names, list) or not names or not _SIMPLE_TYPES.issuperset(names):
            raise _Unsupported
        checks.append(_type_check(frozenset(names)))
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        checks.append(_object_check(schema, conforms))
    if {"items", "minItems", "maxItems", "uniqueItems"} & set(schema):
        checks.append(_array_check(schema, conforms))
    if "minLength" in schema or "maxLength" in schema:
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if type(low) is not int or (high is not None and type(high) is not int):
            raise _Unsupported
        checks.append(lambda v: not isinstance(v, str) or (
            low <= len(v) and (high is None or len(v) <= high)))
    if "pattern" in schema:
        if not isinstance(schema["pattern"], str):
            raise _Unsupported
        try:
            search = re.compile(schema["pattern"]).search
        except re.error as e:
            raise _Unsupported from e
        checks.append(lambda v: not isinstance(v, str) or search(v) is not None)
    if "format" in schema:
        name = schema["format"]
        if not isinstance(name, str):
            raise _Unsupported
        checks.append(lambda v: _conforms(conforms, v, name))
    for keyword in ("enum", "const"):
        if keyword in schema:
            allowed = schema[keyword] if keyword == "enum" else [schema[keyword]]
            if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
                raise _Unsupported
            # Only a string can equal a string (JSON equality has no 1 == True here).
            checks.append(_member_check(frozenset(allowed)))
    for keyword, lower in (("minimum", True), ("maximum", False)):
        if keyword in schema:
            bound = schema[keyword]
            if type(bound) is not int:
                raise _Unsupported
            checks.append(_bound_check(bound, lower))
    if not checks:
        return lambda _v: True
    if len(checks) == 1:
        return checks[0]
    every = tuple(checks)

    def check_all(v: Any) -> bool:
        # A loop, not all(genexpr): this runs for every claim of millions of rows.
        for check in every:  # noqa: SIM110
            if not check(v):
                return False
        return True
    return check_all


def _member_check(members: frozenset[str]) -> Check:
    return lambda v: isinstance(v, str) and v in members


def _bound_check(bound: int, lower: bool) -> Check:
    def check(v: Any) -> bool:
        if not isinstance(v, int | float) or isinstance(v, bool):
            return True  # the type keyword judges other values
        if type(v) is not int:
            return False  # a float: left to jsonschema
        return v >= bound if lower else v <= bound
    return check


def _conforms(conforms: Callable[[Any, str], bool], value: Any, name: str) -> bool:
    try:
        return conforms(value, name)
    except Exception:  # a checker that raises: not known here, jsonschema will tell
        return False


def _type_check(names: frozenset[str]) -> Check:
    def check(v: Any) -> bool:
        if isinstance(v, str):
            return "string" in names
        if v is None:
            return "null" in names
        if isinstance(v, bool):
            return "boolean" in names
        if type(v) is int:
            return "integer" in names
        if isinstance(v, dict):
            return "object" in names
        if isinstance(v, list):
            return "array" in names
        return False  # floats (1.0 is an integer to jsonschema): not known here
    return check


def _array_check(schema: Mapping[str, Any], conforms: Callable[[Any, str], bool]) -> Check:
    low, high = schema.get("minItems", 0), schema.get("maxItems")
    unique = schema.get("uniqueItems", False)
    if type(low) is not int or (high is not None and type(high) is not int) \
            or unique not in (True, False):
        raise _Unsupported
    item = _compile(schema["items"], conforms) if "items" in schema else None

    def check(v: Any) -> bool:
        if not isinstance(v, list):
            return True  # the type keyword judges non-arrays
        if len(v) < low or (high is not None and len(v) > high):
            return False
        if unique and (not all(type(x) is str for x in v) or len(set(v)) != len(v)):
            return False  # repeated, or not only strings: left to jsonschema
        return item is None or all(item(x) for x in v)
    return check


def _object_check(schema: Mapping[str, Any], conforms: Callable[[Any, str], bool]) -> Check:
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    additional = schema.get("additionalProperties", True)
    if not isinstance(properties, Mapping) or not isinstance(required, list) \
            or not all(isinstance(r, str) for r in required) or additional not in (True, False):
        raise _Unsupported
    members = {name: _compile(sub, conforms) for name, sub in properties.items()}
    needed = tuple(required)
    closed = additional is False

    def check(v: Any) -> bool:
        if not isinstance(v, dict):
            return True  # the type keyword judges non-objects
        for name in needed:
            if name not in v:
                return False
        for name, value in v.items():
            member = members.get(name)
            if member is None:
                if closed:
                    return False
            elif not member(value):
                return False
        return True
    return check
