"""Command-line arguments built from the sample catalog and regions."""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

import ecert
from ecert import _samples
from ecert._clock import Clock, system_clock
from ecert_cli import cli
from ecert_cli._app import Runtime

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
    if entry.get("holder_id_scheme"):
        args += ["--holder-id-scheme", entry["holder_id_scheme"]]
    for key, claim in entry.get("holder_claims", {}).items():
        args += ["--holder-claim", f"{key}={claim}"]
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


def collect_leaked_connections() -> None:
    """Run the garbage collector now, so that a database connection a failed command left
    open (a ResourceWarning, an error under ``filterwarnings = error``; psycopg warns,
    sqlite3 does not) is blamed on this test and not on whichever test runs next."""
    gc.collect()


def assert_one_line_error(result: Result, exit_code: int = 2) -> str:
    """The CLI error contract; returns the message after ``ecert: error:``."""
    assert_no_traceback(result)
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].strip(), result.stderr
    assert lines[0].startswith("ecert: error: "), lines[0]
    return lines[0].removeprefix("ecert: error: ")


@dataclass
class Cli:
    """Runs ``ecert --home HOME [--database-url URL] ARGS…`` in-process."""

    home: Path
    database_url: str | None
    env: dict[str, str | None] = field(default_factory=dict)
    clock: Clock | None = None
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, input: str | None = None,
                 env: dict[str, str | None] | None = None) -> Result:
        root = ["--home", str(self.home)]
        if self.database_url:
            root += ["--database-url", self.database_url]
        result = self.runner.invoke(cli, [*root, *args], input=input,
                                    env={**self.env, **(env or {})}, prog_name="ecert",
                                    obj=Runtime(self.clock or system_clock))
        assert_no_traceback(result)
        return result

    def ok(self, *args: str, **kwargs: Any) -> Result:
        result = self(*args, **kwargs)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.ok(*args, "--json", **kwargs).stdout)

    def items(self, *args: str, **kwargs: Any) -> Any:
        """The ``items`` of a listing's ``--json`` page (checking the page's shape)."""
        page = self.json(*args, **kwargs)
        assert set(page) == {"items", "more", "next"}, page
        assert (page["next"] is not None) == page["more"]
        return page["items"]

    def fails(self, *args: str, exit_code: int = 2, **kwargs: Any) -> str:
        return assert_one_line_error(self(*args, **kwargs), exit_code)


def operator_cli(registry: ecert.Registry, clock: Clock | None) -> Cli:
    """The command line on ``registry``'s home and database, as its first admin (every
    role), on ``clock``; the environment's ECERT_HOME and ECERT_DATABASE_URL ignored."""
    from tests.support.constants import OPERATOR, OPERATOR_PASSPHRASE, PASSPHRASE
    from tests.support.registries import database_url_of

    return Cli(registry.home, database_url_of(registry), env={
        "ECERT_PASSPHRASE": PASSPHRASE, "ECERT_OPERATOR": OPERATOR,
        "ECERT_OPERATOR_PASSPHRASE": OPERATOR_PASSPHRASE, "ECERT_HOME": None,
        "ECERT_DATABASE_URL": None}, clock=clock)
