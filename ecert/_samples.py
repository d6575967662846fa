"""Sample catalog, regions and claims shipped in the package (for ``ecert demo`` and tests).

All names and numbers are invented; check characters are valid.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the demo's registry extra is checked where the registry is opened
    from ecert.registry import Registry


def _read(name: str) -> Any:
    return json.loads(resources.files("ecert").joinpath("_data", name).read_text("utf-8"))


@cache
def catalog() -> list[dict[str, Any]]:
    """Type entries of ``catalog.json``, each with its JSON Schema under ``schema``."""
    types = []
    for entry in _read("catalog.json")["types"]:
        types.append({**entry, "schema": _read(entry["schema"])})
    return types


@cache
def regions() -> dict[str, Any]:
    """``regions.json``: regions, agencies and recognition agreements."""
    return dict(_read("regions.json"))


def region(code: str) -> dict[str, Any]:
    """One sample region."""
    for entry in regions()["regions"]:
        if entry["code"] == code:
            return dict(entry)
    raise KeyError(code)


def claims(name: str) -> dict[str, Any]:
    """Sample claims, e.g. ``claims("business-licence-gd")``."""
    return dict(_read(f"claims/{name}.json"))


def populate(registry: Registry) -> None:
    """Add the catalog types the registry's region uses and its sample agencies."""
    sample = region(registry.region.code)
    wanted = {t for agency in sample["agencies"] for t in agency["types"]}
    for entry in catalog():
        if entry["code"] in wanted:
            registry.add_type(
                entry["code"], name=entry["name"],
                national_type_code=entry["national_type_code"], schema=entry["schema"],
                validity_days=entry["validity_days"], qr_claims=entry["qr_claims"],
                holder_id_scheme=entry.get("holder_id_scheme"),
                holder_claims=entry.get("holder_claims"),
            )
    for agency in sample["agencies"]:
        registry.add_agency(agency["code"], name=agency["name"], uscc=agency["uscc"],
                            types=agency["types"])
