"""``ecert vectors``: write the conformance vectors, or check a set with the Python verifier."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ecert import conformance
from ecert_cli._app import EXIT_NOT_VALID, cli, emit, json_option
from ecert_cli._render import fmt, say


@cli.command("vectors")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--check", is_flag=True,
              help="Do not write: run the Python verifier over every case of the set in "
                   "DIRECTORY and report each case it answers otherwise.")
@json_option
def vectors(directory: Path, check: bool) -> None:
    """Write the conformance vectors (the same bytes every time) into DIRECTORY.

    DIRECTORY must be empty, new, or hold an earlier set, which is replaced. The index
    format is described in docs/conformance.md. With --check, exit 1 if a case fails.
    """
    if not check:
        report = conformance.write_vectors(directory)
        emit({"directory": str(report.directory), "cases": report.cases,
              "files": report.files, "bytes": report.bytes, "removed": report.removed},
             fmt("wrote {cases} cases ({files} files, {bytes} bytes) to {directory}",
                 cases=report.cases, files=report.files, bytes=report.bytes,
                 directory=report.directory))
        return
    outcomes = conformance.check_vectors(directory)
    failed = [o for o in outcomes if not o.ok]

    def human() -> None:
        for outcome in failed:
            say("FAILED {case}: {problems}", case=outcome.case_id,
                problems="; ".join(outcome.problems))
        if failed:
            say("{failed} of {cases} cases failed", failed=len(failed), cases=len(outcomes))
        else:
            say("all {cases} cases passed", cases=len(outcomes))

    emit({"directory": str(directory), "cases": len(outcomes),
          "failed": [{"id": o.case_id, "problems": list(o.problems)} for o in failed]},
         human)
    if failed:
        sys.exit(EXIT_NOT_VALID)
