"""Root command, shared options, output and the one error handler.

Exit codes: 0 ok (or certificate valid, or a change now waiting for approval), 1 not
valid (a certificate, an audit, a publication that left something out), 2 usage or input
error, 4 not permitted (unknown, disabled or unauthenticated operator, or no role for it).
Errors are one line on stderr (and a JSON object on stdout under ``--json``); never a
traceback. The clock is chosen here, at the composition root (tests inject theirs).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import platformdirs

import ecert
from ecert._clock import system_clock
from ecert_cli._errors import english_text, error_text, localized
from ecert_cli._i18n import N_, _, in_english, is_chinese, translate_click
from ecert_cli._render import fmt, safe, use_registry_zone

# SQLAlchemy logs (with a traceback, through logging's last-resort handler on standard
# error) when closing a pooled connection is interrupted, e.g. by Ctrl-C, before it
# re-raises: the clerk gets our one line instead.
logging.getLogger("sqlalchemy").addHandler(logging.NullHandler())

translate_click()

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
        raise input_error("cannot read {name}_FILE {path}: {why}", name=name, path=path,
                          why=getattr(e, "strerror", None) or e) from e
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise input_error("{name}_FILE {path} is empty", name=name, path=path)
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
        who = name or self.operator or _("the operator")
        if sys.stdin.isatty():
            return str(click.prompt(fmt("Passphrase of operator {who}", who=who),
                                    hide_input=True, confirmation_prompt=confirm, err=True))
        message = ("set ECERT_OPERATOR_PASSPHRASE: {who}'s key is encrypted and no terminal "
                   "is there to ask")
        with in_english():
            english = fmt(message, who=who)
        raise localized(ecert.NotAuthenticated(fmt(message, who=who)), english)

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
            return str(click.prompt(_("Passphrase for the registry's private keys"),
                                    hide_input=True, confirmation_prompt=confirm, err=True))
        message = ("set ECERT_PASSPHRASE: the registry's private keys are encrypted and no "
                   "terminal is there to ask")
        raise localized(ecert.KeyStoreError(_(message)), message)

    def open_registry(self) -> ecert.Registry:
        """Open the registry; the passphrase is asked only if a private key is needed.
        Its time zone becomes the one of this command's output (unless ECERT_TZ)."""
        registry = ecert.Registry.open(self.home, passphrase=self.passphrase,
                                       database_url=self.database_url,
                                       operator=self.credential(), clock=self.clock)
        use_registry_zone(registry.region.tz)
        return registry


def input_error(message: str, /, code: str | None = None, **values: object) -> ecert.InputError:
    """An :class:`ecert.InputError` with ``message`` translated (values escaped)."""
    with in_english():
        english = fmt(message, **values)
    error = ecert.InputError(fmt(message, **values), code=code)
    localized(error, english)
    return error


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
                        help=N_("Print machine-readable JSON."))(func)


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
         json_output: bool | None = None, english: str | None = None) -> NoReturn:
    """Print one error line (and JSON under ``--json``) and exit.

    ``message`` is in the current language; the JSON error carries ``english`` (the same
    message in English, when it differs), so that JSON does not depend on the language.
    """
    message = safe(" ".join(message.split()))  # one line, whatever the message held
    if json_output if json_output is not None else json_mode():
        plain = message if english is None else safe(" ".join(english.split()))
        click.echo(json.dumps({"error": {"code": code, "message": plain}},
                              ensure_ascii=False))
    click.echo(_("ecert: error: {message}").format(message=message), err=True)
    sys.exit(exit_code)


def interrupted(json_output: bool | None = None) -> NoReturn:
    """Ctrl-C: one line, exit 130."""
    fail(_("interrupted"), "interrupted", 130, json_output=json_output,
         english="interrupted")


def _translated_help(text: str | None) -> str | None:
    """A help text (a docstring or an option's help) in the current language."""
    if not text:
        return text
    return _(inspect.cleandoc(text).partition("\f")[0])


def _short_help(text: str, limit: int) -> str:
    """The first sentence of a (translated) help text, for the list of commands."""
    first = text.split("\n\n", 1)[0]
    if is_chinese():
        first = first.replace("\n", "")
        sentence = first.split("。", 1)[0]
        return sentence if len(sentence) <= limit else sentence[:limit - 1] + "…"
    # As click's default: the first sentence, without its full stop, cut at ``limit``.
    words: list[str] = []
    for word in first.split():
        words.append(word.removesuffix("."))
        if word.endswith("."):
            break
    text = " ".join(words)
    return text if len(text) <= limit else text[:limit - 3].rsplit(" ", 1)[0] + "..."


class TranslatedCommand(click.Command):
    """A command whose help, short help and options' help are shown translated (their
    English text, as written in the source, is the message id)."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        saved = self.help
        self.help = _translated_help(saved)
        try:
            super().format_help_text(ctx, formatter)
        finally:
            self.help = saved

    def get_short_help_str(self, limit: int = 45) -> str:
        text = _translated_help(self.short_help or self.help)
        return _short_help(text, limit) if text else ""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        saved = [(p, p.help, p.show_default) for p in self.get_params(ctx)
                 if isinstance(p, click.Option)]
        for param, text, shown in saved:
            param.help = _translated_help(text)
            if isinstance(shown, str):
                param.show_default = _(shown)
        try:
            super().format_options(ctx, formatter)
        finally:
            for param, text, shown in saved:
                param.help, param.show_default = text, shown


def _usage_text(e: click.ClickException) -> str:
    hint = fmt(" (see '{command} --help')", command=e.ctx.command_path) if (
        isinstance(e, click.UsageError) and e.ctx is not None) else ""
    return e.format_message() + hint


class EcertGroup(TranslatedCommand, click.Group):
    """A group whose commands turn every error into one line and exit code 2."""

    command_class = TranslatedCommand
    group_class = type  # subgroups are EcertGroups too

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            with in_english():
                english = fmt("missing command (see '{command} --help')",
                              command=e.ctx.command_path)
            fail(fmt("missing command (see '{command} --help')", command=e.ctx.command_path),
                 "usage_error", json_output="--json" in argv, english=english)
        except click.ClickException as e:
            usage = self._english_usage_error(argv, prog_name) if (
                is_chinese() and "--json" in argv) else None
            if usage is None:
                with in_english():  # as far as click builds its message when asked
                    usage = _usage_text(e)
            # Parsing failed, perhaps before --json was seen: honour it from argv.
            fail(_usage_text(e), "usage_error", e.exit_code, json_output="--json" in argv,
                 english=usage)
        except KeyboardInterrupt:
            interrupted(json_output="--json" in argv)
        except click.exceptions.Abort as e:
            # click turns Ctrl-C at a prompt into Abort: that is an interruption too.
            if isinstance(e.__cause__ or e.__context__, KeyboardInterrupt):
                interrupted(json_output="--json" in argv)
            fail(_("aborted"), "aborted", english="aborted")
        except BrokenPipeError:
            # The reader went away (e.g. `ecert list | head`): not an error worth a line.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_OK)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)

    def _english_usage_error(self, argv: list[str], prog_name: str | None) -> str | None:
        """The usage error of ``argv`` as click words it in English (click translates
        some messages when it raises them): parse again, invoking nothing."""
        with in_english():
            try:
                ctx = self.make_context(prog_name or "ecert", list(argv))
                while isinstance(ctx.command, click.Group):
                    args = [*getattr(ctx, "_protected_args", []), *ctx.args]
                    if not args:  # click raises this one when it invokes the group
                        return _usage_text(click.UsageError(_("Missing command."), ctx))
                    name, command, rest = ctx.command.resolve_command(ctx, args)
                    if command is None or name is None:
                        break
                    ctx = command.make_context(name, rest, parent=ctx)
            except click.ClickException as again:
                return _usage_text(again)
            except Exception:  # noqa: S110 - best effort; the caller has a fallback
                pass
        return None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ecert.PendingApproval as e:
            request = e.request
            from ecert_cli._render import local_time

            emit({"pending": True, "request": {
                "id": request.id, "action": request.action, "subject": request.subject,
                "requested_by": request.requested_by,
                "expires_at": request.expires_at.isoformat()}},
                fmt("waiting for approval: request {id} ({action} of {subject}) needs {more} "
                    "more operator(s) to run 'ecert approve {id}' before {expires}",
                    id=request.id, action=request.action, subject=request.subject,
                    more=request.approvals_needed - 1, expires=local_time(request.expires_at)))
            sys.exit(EXIT_OK)
        except ecert.AccessError as e:
            fail(error_text(e), e.code, EXIT_DENIED, english=english_text(e))
        except ecert.ExtraMissing as e:
            # E.g. a registry command in a verifier-only install: which extra, in one line.
            with in_english():
                english = fmt("this command needs the '{extra}' extra of ecert: "
                              "pip install 'ecert[{extra}]'", extra=e.extra)
            fail(fmt("this command needs the '{extra}' extra of ecert: "
                     "pip install 'ecert[{extra}]'", extra=e.extra), e.code, english=english)
        except (ecert.RecordTampered, ecert.CertificateNotValid) as e:
            fail(error_text(e, first_line=False), e.code, EXIT_NOT_VALID,
                 english=english_text(e, first_line=False))
        except ecert.EcertError as e:
            fail(error_text(e), e.code, english=english_text(e))
        except BrokenPipeError:
            raise
        except OSError as e:
            fail(fmt("{reason}: {file}", reason=e.strerror or e, file=e.filename)
                 if e.filename else str(e), "os_error")
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            interrupted()
        except Exception as e:  # never a traceback for a clerk; say what happened
            with in_english():
                english = fmt("internal error ({kind}): {error}", kind=type(e).__name__,
                              error=e)
            fail(fmt("internal error ({kind}): {error}", kind=type(e).__name__, error=e),
                 "internal_error", english=english)


@click.group(cls=EcertGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="ECERT_HOME",
              default=lambda: platformdirs.user_data_dir("ecert"), show_default="per-user dir",
              help=N_("Registry home: encrypted keys and the embedded database. "
                      "[env ECERT_HOME]"))
@click.option("--database-url", envvar="ECERT_DATABASE_URL", default=None,
              help=N_("SQLAlchemy URL instead of the embedded SQLite, e.g. "
                      "postgresql+psycopg://user@host/db. [env ECERT_DATABASE_URL]"))
@click.option("--operator", envvar="ECERT_OPERATOR", default=None,
              help=N_("Who acts: an operator account (its key's passphrase comes from "
                      "ECERT_OPERATOR_PASSPHRASE or a prompt). [env ECERT_OPERATOR]"))
@json_option
@click.version_option(ecert.__version__, prog_name="ecert")
@click.pass_context
def cli(ctx: click.Context, home: Path, database_url: str | None, operator: str | None) -> None:
    """Issue, sign, verify, suspend and revoke electronic certificates.

    Messages are in Chinese when ECERT_LANG (or LC_ALL, LC_MESSAGES, LANG) starts with
    zh; times are shown in the registry's time zone (or ECERT_TZ).
    """
    runtime = ctx.obj if isinstance(ctx.obj, Runtime) else Runtime()
    ctx.obj = Settings(home=home, database_url=database_url or None, operator=operator,
                       clock=runtime.clock, sleep=runtime.sleep)


def run(sigint: Any = signal.default_int_handler) -> None:
    """Run the command line (after :func:`ecert_cli.main` has imported it)."""
    try:
        # From here on Ctrl-C raises KeyboardInterrupt, so that open transactions roll
        # back; it ends in the same one line and exit code 130.
        signal.signal(signal.SIGINT, sigint)
        cli(prog_name="ecert")
    except KeyboardInterrupt:  # between click's handlers, e.g. while it exits
        interrupted(json_output="--json" in sys.argv[1:])
