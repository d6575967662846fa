"""The ``ecert`` command line: a thin layer that parses, calls the library once, and prints.

Importing this package is cheap: the commands (and the library, cryptography…) are
imported by :func:`main`, under a Ctrl-C handler that ends the program with one line
and exit code 130 even while those imports run, or on first use of :data:`cli`. The
registry (SQLAlchemy, Alembic, jsonschema: the ``registry`` extra) is imported only by a
command that opens one, so ``ecert verify`` works in a verifier-only install.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

__all__ = ["cli", "main"]

_COMMANDS = ("_audit", "_batch", "_catalog", "_certificates", "_demo", "_doctor",
             "_operators", "_qr", "_registry", "_serve", "_sharing", "_trust", "_vectors",
             "_verify")


def _load() -> Any:
    """Import the commands (each module registers its own on ``cli``); return ``cli``."""
    import importlib

    for name in _COMMANDS:
        importlib.import_module(f"ecert_cli.{name}")
    from ecert_cli._app import cli

    return cli


def _interrupted_while_starting(_signum: int, _frame: FrameType | None) -> None:
    # Nothing is open yet: say it in one line and leave at once (no exception, so no
    # traceback from whichever import was running). The handler itself must never raise:
    # the signal may come while the very modules it would use are half imported (the
    # translations, json), so anything that fails falls back to plain English.
    try:
        if "--json" in sys.argv[1:]:
            # JSON is the same in every language (written by hand: json may be half
            # imported too).
            sys.stdout.write('{"error": {"code": "interrupted", "message": "interrupted"}}\n')
            sys.stdout.flush()
    except BaseException:  # noqa: S110 - the exit code says it all the same
        pass
    try:
        from ecert_cli._i18n import _

        line = _("ecert: error: {message}").format(message=_("interrupted"))
    except BaseException:
        line = "ecert: error: interrupted"
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    finally:
        os._exit(130)


# Run as the ``ecert`` program (not imported by a test or an application): take Ctrl-C
# from this first line on, before main() is even called. What comes before it is the
# interpreter's own start-up.
if os.path.basename(sys.argv[0] if sys.argv else "") in ("ecert", "ecert.exe", "ecert-script.py"):
    signal.signal(signal.SIGINT, _interrupted_while_starting)


def main() -> None:
    """Console entry point."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is _interrupted_while_starting:  # installed above
        previous = signal.default_int_handler
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    _load()
    from ecert_cli._app import run

    run(previous)


def __getattr__(name: str) -> Any:
    if name == "cli":
        return _load()
    raise AttributeError(name)
