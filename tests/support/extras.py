"""Run Python or the ``ecert`` command in a fresh interpreter as a verifier-only install
would: the modules of the optional extras cannot be imported.

A meta path finder, first on ``sys.meta_path``, refuses the extras' modules the way a
missing package does (``ModuleNotFoundError`` naming it) and records each attempt, so a
test can tell what a command never even tried to import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

#: Import names of what the optional extras install (registry, image, postgres, audit) and
#: of web frameworks (a sharing service's): a verifier-only install has none of them.
EXTRA_MODULES = ("sqlalchemy", "alembic", "jsonschema", "segno", "PIL", "zxingcpp",
                 "psycopg", "nacl", "starlette", "uvicorn")

_PRELUDE = '''
import atexit, json, os, sys

BLOCKED = set(json.loads(os.environ["ECERT_TEST_BLOCKED"]))
TRIED = []


class Missing:
    """What a verifier-only install looks like to the import system."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            TRIED.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Missing())


def report():
    with open(os.environ["ECERT_TEST_REPORT"], "w") as f:
        json.dump({"tried": TRIED, "modules": sorted(sys.modules)}, f)


atexit.register(report)
'''

_RUN_CLI = '''
from datetime import datetime

from ecert_cli import _load
from ecert_cli._app import Runtime

cli = _load()  # every command, as the ecert program imports them
now = datetime.fromisoformat(os.environ["ECERT_TEST_NOW"])
sys.argv[0] = "ecert"
try:
    cli.main(sys.argv[1:], prog_name="ecert", obj=Runtime(clock=lambda: now))
except SystemExit as e:
    report()  # os._exit below skips atexit
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(e.code if isinstance(e.code, int) else 1)
'''


@dataclass(frozen=True)
class Run:
    """What a run printed and imported."""

    returncode: int
    stdout: str
    stderr: str
    #: Imports of blocked modules that were attempted (and failed).
    tried: list[str]
    #: Every module loaded when the interpreter ended.
    modules: list[str]


def run_without_extras(code: str, *args: str, tmp_path: Path,
                       blocked: tuple[str, ...] = EXTRA_MODULES,
                       env: dict[str, str] | None = None) -> Run:
    """Run ``code`` (after the blocking prelude) in a fresh interpreter with ``args``."""
    report = tmp_path / "imports.json"
    environment = {**os.environ, "ECERT_TEST_BLOCKED": json.dumps(list(blocked)),
                   "ECERT_TEST_REPORT": str(report), **(env or {})}
    result = subprocess.run([sys.executable, "-c", _PRELUDE + code, *args],
                            capture_output=True, text=True, env=environment, timeout=120,
                            check=False)
    imported = json.loads(report.read_text("utf-8")) if report.exists() else {
        "tried": [], "modules": []}
    return Run(result.returncode, result.stdout, result.stderr, imported["tried"],
               imported["modules"])


def ecert_without_extras(*args: str, tmp_path: Path, now: datetime, lang: str = "en",
                         blocked: tuple[str, ...] = EXTRA_MODULES) -> Run:
    """Run ``ecert ARGS`` (home in ``tmp_path``, clock at ``now``) without the extras."""
    env = {"ECERT_TEST_NOW": now.isoformat(), "ECERT_LANG": lang,
           "ECERT_HOME": str(tmp_path / "home")}
    return run_without_extras(_RUN_CLI, *args, tmp_path=tmp_path, blocked=blocked, env=env)
