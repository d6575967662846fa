"""Command-line arguments built from the sample catalog and regions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import Result

import ecert
from ecert import _samples

DATA = Path(ecert.__file__).parent / "_data"
#: catalog.json entries; ``schema`` is the path of the schema file under ``DATA``.
CATALOG: dict[str, dict[str, Any]] = {
    entry["code"]: entry
    for entry in json.loads((DATA / "catalog.json").read_text("utf-8"))["types"]
}


def type_args(code: str) -> list[str]:
    """``ecert type add`` arguments for catalog type ``code``."""
    entry = CATALOG[code]
    args = ["type", "add", code, "--name", entry["name"], "--schema", str(DATA / entry["schema"]),
            "--national-code", entry["national_type_code"],
            "--qr-claims", ",".join(entry["qr_claims"])]
    if entry["validity_days"] is not None:
        args += ["--validity-days", str(entry["validity_days"])]
    return args


def agency_args(code: str, region: str = "GD") -> list[str]:
    """``ecert agency add`` arguments for sample agency ``code`` of ``region``."""
    agency = next(a for a in _samples.region(region)["agencies"] if a["code"] == code)
    return ["agency", "add", code, "--name", agency["name"], "--uscc", agency["uscc"],
            "--types", ",".join(agency["types"])]


def assert_no_traceback(result: Result) -> None:
    """A command may fail, but never with a traceback or an uncaught exception."""
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {result.exception!r}") from result.exception
