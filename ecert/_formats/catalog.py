"""The catalog file (``ecert catalog import`` / ``export``), see docs/format.md, "Catalog".

Pure: a parsed JSON document in, checked type definitions out (and back). ::

    {"types": [{"code": "cn.business-licence", "name": "营业执照",
                "national_type_code": "11100000MB0143028R001",
                "schema": "types/cn.business-licence.schema.json" | {<JSON Schema>},
                "validity_days": 3650 | null, "qr_claims": ["name", …],
                "version": 2,                       # optional
                "holder_id_scheme": "uscc", …}]}    # any other member is kept as is

A schema given as a string is a path relative to the catalog file, read by the caller's
``load_schema``; members ecert does not interpret are carried through (``extra``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ecert.errors import FormatError

__all__ = ["KNOWN_MEMBERS", "catalog_document", "parse_catalog"]

#: Members of a type entry ecert interprets; every other member is kept in ``extra``.
KNOWN_MEMBERS = frozenset({"code", "name", "national_type_code", "schema", "validity_days",
                           "qr_claims", "version"})
#: A catalog larger than this is refused before anything is read from it.
MAX_TYPES = 10_000


def _bad(what: str) -> FormatError:
    return FormatError(f"catalog: {what}", code="invalid_catalog")


def parse_catalog(document: Any, load_schema: Callable[[str], Any]) -> list[dict[str, Any]]:
    """The catalog's type entries, each with its schema as an object and an ``extra`` map.

    Raises :class:`FormatError` (code ``invalid_catalog``) naming the entry at fault.
    Checks shape only; whether a definition is acceptable is the registry's question.
    """
    if not isinstance(document, dict):
        raise _bad("a catalog is a JSON object")
    types = document.get("types")
    if not isinstance(types, list):
        raise _bad("a catalog has a list of types")
    if len(types) > MAX_TYPES:
        raise _bad(f"more than {MAX_TYPES} types")
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, entry in enumerate(types):
        if not isinstance(entry, dict):
            raise _bad(f"types[{i}] is not an object")
        code = entry.get("code")
        if not isinstance(code, str) or not code:
            raise _bad(f"types[{i}] has no code")
        where = f"type {code}"
        if code in seen:
            raise _bad(f"{where} appears twice")
        seen.add(code)
        name, ntc = entry.get("name"), entry.get("national_type_code")
        if not isinstance(name, str) or not isinstance(ntc, str):
            raise _bad(f"{where} needs a name and a national_type_code")
        validity = entry.get("validity_days")
        if validity is not None and type(validity) is not int:
            raise _bad(f"{where}: validity_days is an integer or null")
        qr_claims = entry.get("qr_claims", [])
        if not (isinstance(qr_claims, list) and all(isinstance(c, str) for c in qr_claims)):
            raise _bad(f"{where}: qr_claims is a list of claim names")
        version = entry.get("version")
        if version is not None and (type(version) is not int or version < 1):
            raise _bad(f"{where}: version is a positive integer")
        schema = entry.get("schema")
        if isinstance(schema, str):
            schema = load_schema(schema)
        if not isinstance(schema, dict):
            raise _bad(f"{where}: schema is a JSON Schema object or the path of one")
        result.append({
            "code": code, "name": name, "national_type_code": ntc, "schema": schema,
            "validity_days": validity, "qr_claims": list(qr_claims), "version": version,
            "extra": {k: v for k, v in entry.items() if k not in KNOWN_MEMBERS},
        })
    return result


def catalog_document(types: Iterable[Mapping[str, Any]],
                     schema_ref: Callable[[str, Mapping[str, Any]], Any] | None = None
                     ) -> dict[str, Any]:
    """A catalog of ``types`` (entries as :func:`parse_catalog` returns them).

    ``schema_ref(code, schema)`` says what to write under ``schema`` (e.g. a file path it
    wrote the schema to); by default the schema is embedded.
    """
    entries = []
    for t in types:
        entry: dict[str, Any] = {
            "code": t["code"], "name": t["name"], "national_type_code": t["national_type_code"],
            "version": t["version"],
            "schema": schema_ref(t["code"], t["schema"]) if schema_ref else dict(t["schema"]),
            "validity_days": t["validity_days"], "qr_claims": list(t["qr_claims"]),
        }
        for key, value in sorted(dict(t.get("extra") or {}).items()):
            if key not in KNOWN_MEMBERS:
                entry[key] = value
        entries.append(entry)
    return {"types": entries}
