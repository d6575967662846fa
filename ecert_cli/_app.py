"""Root command, shared options, output and the one error handler.

Exit codes: 0 ok (or certificate valid, or a change now waiting for approval), 1 not
valid (a certificate, an audit, a publication that left something out), 2 usage or input
error, 4 not permitted (unknown, disabled or unauthenticated operator, or no role for it).
Errors are one line on stderr (and a JSON object on stdout under ``--json``); never a
traceback. The clock is chosen here, at the composition root (tests inject theirs).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import platformdirs

import ecert
from ecert._clock import system_clock

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_NOT_VALID = 1
EXIT_ERROR = 2
EXIT_DENIED = 4
_JSON_KEY = "ecert.json"


@dataclass(frozen=True)
class Runtime:
    """What the composition root injects: the clock (tests pass ``obj=Runtime(clock)``),
    and how ``publish --watch`` waits (None: real time, woken by SIGTERM or Ctrl-C)."""

    clock: ecert.Clock = system_clock
    sleep: Callable[[float], None] | None = None


def env_secret(name: str) -> str | None:
    """A secret from the environment: ``NAME`` itself, or the file ``NAME_FILE`` names
    (e.g. a systemd credential, ``%d/passphrase``), without its final line break."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(64 * 1024)
    except (OSError, UnicodeDecodeError) as e:
        raise ecert.InputError("cannot read {name}_FILE {path}: {why}".format(
            name=name, path=path, why=getattr(e, "strerror", None) or e)) from e
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ecert.InputError("{name}_FILE {path} is empty".format(name=name, path=path))  # noqa: UP032 - a message for gettext
    return text


@dataclass
class Settings:
    """What the root command parsed: where the registry is and who acts."""

    home: Path
    database_url: str | None
    operator: str | None
    clock: ecert.Clock = system_clock
    sleep: Callable[[float], None] | None = None

    def operator_passphrase(self, *, confirm: bool = False, name: str | None = None) -> str:
        """ECERT_OPERATOR_PASSPHRASE (or the file ECERT_OPERATOR_PASSPHRASE_FILE names),
        or a prompt when a person is at the terminal."""
        value = env_secret("ECERT_OPERATOR_PASSPHRASE")
        if value:
            return value
        who = name or self.operator or "the operator"
        if sys.stdin.isatty():
            return str(click.prompt(f"Passphrase of operator {who}", hide_input=True,
                                    confirmation_prompt=confirm, err=True))
        raise ecert.NotAuthenticated(f"set ECERT_OPERATOR_PASSPHRASE: {who}'s key is "
                                     "encrypted and no terminal is there to ask")

    def credential(self) -> ecert.OperatorCredential | None:
        """Who acts (ECERT_OPERATOR); their passphrase is asked only when a change needs it."""
        if not self.operator:
            return None
        return ecert.OperatorCredential(self.operator, passphrase=self.operator_passphrase)

    def passphrase(self, *, confirm: bool = False) -> str:
        """ECERT_PASSPHRASE (or the file ECERT_PASSPHRASE_FILE names), or a prompt when a
        person is at the terminal."""
        value = env_secret("ECERT_PASSPHRASE")
        if value:
            return value
        if sys.stdin.isatty():
            return str(click.prompt("Passphrase for the registry's private keys",
                                    hide_input=True, confirmation_prompt=confirm, err=True))
        raise ecert.KeyStoreError("set ECERT_PASSPHRASE: the registry's private keys are "
                                  "encrypted and no terminal is there to ask")

    def open_registry(self) -> ecert.Registry:
        """Open the registry; the passphrase is asked only if a private key is needed."""
        return ecert.Registry.open(self.home, passphrase=self.passphrase,
                                   database_url=self.database_url, operator=self.credential(),
                                   clock=self.clock)


def settings() -> Settings:
    """The :class:`Settings` of the running command."""
    ctx = click.get_current_context()
    value = ctx.find_object(Settings)
    if value is None:  # pragma: no cover - every command runs under the root group
        raise click.UsageError("internal: no settings")
    return value


def json_option(func: F) -> F:
    """Add ``--json`` to a command."""

    def set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.meta[_JSON_KEY] = True  # meta is shared by the whole command chain

    return click.option("--json", "as_json", is_flag=True, expose_value=False,
                        callback=set_json, is_eager=True,
                        help="Print machine-readable JSON.")(func)


def json_mode() -> bool:
    """Whether ``--json`` was given anywhere on the command line."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(_JSON_KEY))


def emit(data: Any, human: Callable[[], None] | str) -> None:
    """Print ``data`` as JSON under ``--json``, else the human rendering."""
    if json_mode():
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    elif isinstance(human, str):
        click.echo(human)
    else:
        human()


def fail(message: str, code: str = "error", exit_code: int = EXIT_ERROR, *,
         json_output: bool | None = None) -> NoReturn:
    """Print one error line (and JSON under ``--json``) and exit."""
    message = " ".join(message.split())  # one line, whatever the message held
    if json_output if json_output is not None else json_mode():
        click.echo(json.dumps({"error": {"code": code, "message": message}},
                              ensure_ascii=False))
    click.echo(f"ecert: error: {message}", err=True)
    sys.exit(exit_code)


class EcertGroup(click.Group):
    """A group whose commands turn every error into one line and exit code 2."""

    def main(self, args: Any = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            fail(f"missing command (see '{e.ctx.command_path} --help')", "usage_error",
                 json_output="--json" in argv)
        except click.ClickException as e:
            hint = f" (see '{e.ctx.command_path} --help')" if isinstance(
                e, click.UsageError) and e.ctx is not None else ""
            # Parsing failed, perhaps before --json was seen: honour it from argv.
            fail(e.format_message() + hint, "usage_error", e.exit_code,
                 json_output="--json" in argv)
        except click.exceptions.Abort:
            fail("aborted", "aborted")
        except BrokenPipeError:
            # The reader went away (e.g. `ecert list | head`): not an error worth a line.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_OK)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ecert.PendingApproval as e:
            request = e.request
            emit({"pending": True, "request": {
                "id": request.id, "action": request.action, "subject": request.subject,
                "requested_by": request.requested_by,
                "expires_at": request.expires_at.isoformat()}},
                f"waiting for approval: request {request.id} ({request.action} of "
                f"{request.subject}) needs {request.approvals_needed - 1} more operator(s) "
                f"to run 'ecert approve {request.id}' before "
                f"{request.expires_at.isoformat()}")
            sys.exit(EXIT_OK)
        except ecert.AccessError as e:
            fail(e.message.splitlines()[0] if e.message else type(e).__name__, e.code,
                 EXIT_DENIED)
        except (ecert.RecordTampered, ecert.CertificateNotValid) as e:
            fail(e.message, e.code, EXIT_NOT_VALID)
        except ecert.EcertError as e:
            fail(e.message.splitlines()[0] if e.message else type(e).__name__, e.code)
        except BrokenPipeError:
            raise
        except OSError as e:
            fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e), "os_error")
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            fail("interrupted", "interrupted", 130)
        except Exception as e:  # never a traceback for a clerk; say what happened
            fail(f"internal error ({type(e).__name__}): {e}", "internal_error")


@click.group(cls=EcertGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="ECERT_HOME",
              default=lambda: platformdirs.user_data_dir("ecert"), show_default="per-user dir",
              help="Registry home: encrypted keys and the embedded database. [env ECERT_HOME]")
@click.option("--database-url", envvar="ECERT_DATABASE_URL", default=None,
              help="SQLAlchemy URL instead of the embedded SQLite, e.g. "
                   "postgresql+psycopg://user@host/db. [env ECERT_DATABASE_URL]")
@click.option("--operator", envvar="ECERT_OPERATOR", default=None,
              help="Who acts: an operator account (its key's passphrase comes from "
                   "ECERT_OPERATOR_PASSPHRASE or a prompt). [env ECERT_OPERATOR]")
@json_option
@click.version_option(ecert.__version__, prog_name="ecert")
@click.pass_context
def cli(ctx: click.Context, home: Path, database_url: str | None, operator: str | None) -> None:
    """Issue, sign, verify, suspend and revoke electronic certificates."""
    runtime = ctx.obj if isinstance(ctx.obj, Runtime) else Runtime()
    ctx.obj = Settings(home=home, database_url=database_url or None, operator=operator,
                       clock=runtime.clock, sleep=runtime.sleep)


def main() -> None:
    """Console entry point."""
    cli(prog_name="ecert")
