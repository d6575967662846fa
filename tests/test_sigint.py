"""Ctrl-C at any moment — while the program imports, while it works — ends ``ecert`` with
one line on stderr and exit code 130, never a traceback.

A real process gets a real SIGINT. ``-X importtime`` (PYTHONPROFILEIMPORTTIME) makes the
interpreter report each import as it finishes, so the signal can be sent at chosen
moments of the start-up rather than after guessed delays.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import ecert

ECERT = Path(sys.executable).parent / "ecert"

pytestmark = pytest.mark.skipif(not ECERT.exists() or os.name != "posix",
                                reason="needs the installed ecert script and POSIX signals")


def _reader(stream: object, into: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)
    into.put(None)


def _interrupt(args: list[str], when: str, tmp_path: Path, *, lang: str = "en",
               stream: str = "stderr") -> tuple[int, list[str], str]:
    """Run ``ecert ARGS``, send SIGINT once a line containing ``when`` appears on
    ``stream`` (an import line on stderr, or output on stdout); return the exit code, the
    stderr lines that are not import timings, and stdout."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "ECERT_LANG": lang,
           "ECERT_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    env.pop("ECERT_TZ", None)
    with subprocess.Popen([str(ECERT), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env) as process:
        return _watch(process, when, stream)


def _watch(process: subprocess.Popen[str], when: str,
           stream: str) -> tuple[int, list[str], str]:
    lines: queue.Queue[str | None] = queue.Queue()
    watched = process.stderr if stream == "stderr" else process.stdout
    other = process.stdout if stream == "stderr" else process.stderr
    seen: list[str] = []
    other_lines: queue.Queue[str | None] = queue.Queue()
    threads = [threading.Thread(target=_reader, args=(watched, lines), daemon=True),
               threading.Thread(target=_reader, args=(other, other_lines), daemon=True)]
    for t in threads:
        t.start()
    sent = False
    while True:
        line = lines.get(timeout=120)
        if line is None:
            break
        seen.append(line)
        if not sent and (line.rsplit("|", 1)[-1].strip() == when if stream == "stderr"
                         and line.startswith("import time:") else when in line):
            process.send_signal(signal.SIGINT)
            sent = True
    code = process.wait(timeout=120)
    for t in threads:
        t.join(timeout=10)
    rest: list[str] = []
    while not other_lines.empty():
        item = other_lines.get()
        if item is not None:
            rest.append(item)
    assert sent, f"never saw {when!r}: the moment to interrupt did not come"
    stderr = seen if stream == "stderr" else rest
    stdout = "".join(rest if stream == "stderr" else seen)
    return code, [s.rstrip("\n") for s in stderr
                  if not s.startswith("import time:") and s.strip()], stdout


# Moments of the start-up: our package itself, then what main() imports behind it.
@pytest.mark.parametrize("module", ["ecert_cli", "click", "cryptography", "sqlalchemy",
                                    "ecert_cli._app"])
def test_ctrl_c_while_starting(module: str, tmp_path: Path) -> None:
    code, errors, _ = _interrupt(["demo"], module, tmp_path)
    assert code == 130, errors
    assert errors == ["ecert: error: interrupted"]


def test_ctrl_c_while_starting_in_chinese_with_json(tmp_path: Path) -> None:
    code, errors, stdout = _interrupt(["--json", "demo"], "sqlalchemy", tmp_path,
                                      lang="zh")
    assert code == 130
    assert errors == ["ecert: 错误：已中断"]
    assert '"code": "interrupted"' in stdout


@pytest.mark.parametrize("step", ["== 1.", "== 3."])
def test_ctrl_c_while_working(step: str, tmp_path: Path) -> None:
    code, errors, _ = _interrupt(["demo"], step, tmp_path, stream="stdout")
    assert code == 130, errors
    assert errors == ["ecert: error: interrupted"]


@pytest.mark.parametrize("json_flag", [False, True])
def test_the_handler_never_raises_while_its_own_modules_are_half_imported(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        json_flag: bool) -> None:
    """The signal can come while the translations are being imported: the handler then
    finds a half-initialized module and must still end with one line and 130 (it used to
    raise ImportError there, and the program ended with a traceback and exit code 1)."""
    import types

    import ecert_cli

    class Exited(Exception):
        pass

    def exit_(code: int) -> None:
        raise Exited(code)

    monkeypatch.setitem(sys.modules, "ecert_cli._i18n", types.ModuleType("ecert_cli._i18n"))
    monkeypatch.setattr(sys, "argv", ["ecert", *(["--json"] if json_flag else []), "demo"])
    monkeypatch.setattr(os, "_exit", exit_)
    with pytest.raises(Exited) as exited:
        ecert_cli._interrupted_while_starting(signal.SIGINT, None)
    assert exited.value.args == (130,)
    out, err = capsys.readouterr()
    assert err == "ecert: error: interrupted\n"
    assert out == ('{"error": {"code": "interrupted", "message": "interrupted"}}\n'
                   if json_flag else "")


def test_an_interrupt_is_what_the_caller_sees_when_the_rollback_fails_too(
        registry: ecert.Registry) -> None:
    """Ctrl-C mid-transaction may cut the database connection, so that the rollback fails
    as well: the interrupt (exit 130), not a "database error" (exit 2), must come out."""
    from sqlalchemy.exc import OperationalError

    from ecert._storage.repository import Repository
    from ecert.registry._core import _Transaction

    class CutConnection:
        def __exit__(self, *args: object) -> None:
            raise OperationalError("ROLLBACK", {}, Exception("server closed the connection"))

    transaction = _Transaction(registry.engine, Repository, write=True)
    transaction._ctx = CutConnection()
    assert transaction.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None) is None
    with pytest.raises(ecert.StorageError):  # any other failure still says so
        transaction.__exit__(ValueError, ValueError("x"), None)
