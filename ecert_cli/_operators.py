"""``ecert operator …``, ``policy …``, ``requests``, ``approve``, ``reject``: who may act."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

import ecert
from ecert._pagination import page_in_memory
from ecert_cli._app import cli, emit, input_error, json_option, settings
from ecert_cli._i18n import _
from ecert_cli._paging import emit_page, page_options
from ecert_cli._render import fmt, local_time, safe, say


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _scope(values: tuple[str, ...]) -> list[str] | None:
    found = _split(values)
    return found or None


def new_passphrase(passphrase_file: Path | None, who: str) -> str:
    """A new operator passphrase: from a file (first line), or asked twice at a terminal."""
    if passphrase_file is not None:
        from ecert_cli._files import read_text_file

        # UTF-8 (a BOM Notepad wrote is not part of the passphrase) or GB 18030.
        value = read_text_file(str(passphrase_file)).splitlines()[0:1]
        if not value or not value[0]:
            raise input_error("{file} holds no passphrase on its first line",
                              file=passphrase_file)
        return value[0]
    if sys.stdin.isatty():
        return str(click.prompt(fmt("New passphrase for operator {who}", who=who),
                                hide_input=True, confirmation_prompt=True, err=True))
    value_env = os.environ.get("ECERT_NEW_OPERATOR_PASSPHRASE")
    if value_env:
        return value_env
    raise input_error("give --passphrase-file FILE (or ECERT_NEW_OPERATOR_PASSPHRASE): no "
                      "terminal is there to ask")


def operator_json(op: ecert.Operator) -> dict[str, object]:
    return {"name": op.name, "kid": op.kid, "active": op.active,
            "created_at": op.created_at.isoformat(),
            "grants": [g.to_json() for g in op.grants]}


def _describe(op: ecert.Operator) -> str:
    parts = []
    for g in op.grants:
        scope = []
        if g.agencies is not None:
            scope.append(fmt("agencies {codes}", codes=",".join(g.agencies)))
        if g.types is not None:
            scope.append(fmt("types {codes}", codes=",".join(g.types)))
        parts.append(g.role.value + (f" ({'; '.join(scope)})" if scope else ""))
    return ", ".join(parts)


_ROLE_HELP = "Role: " + ", ".join(r.value for r in ecert.Role) + " (repeatable or A,B)."
_PASS_FILE = click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
                          default=None, help="File whose first line is the new passphrase "
                                             "(otherwise asked twice).")


@cli.group("operator")
def operator_group() -> None:
    """Operator accounts: roles, personal keys, passphrases."""


@operator_group.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help=_ROLE_HELP)
@click.option("--agency", "agencies", multiple=True, metavar="CODE[,CODE]",
              help="Limit clerk/officer roles to these agencies.")
@click.option("--types", "types", multiple=True, metavar="T[,T]",
              help="Limit clerk/officer roles to these types.")
@_PASS_FILE
@click.option("--public-key", "public_key_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="A JWK file: the operator's key is held elsewhere (smart "
                                 "card, HSM); no key file is made.")
@json_option
def operator_add(name: str, roles: tuple[str, ...], agencies: tuple[str, ...],
                 types: tuple[str, ...], passphrase_file: Path | None,
                 public_key_file: Path | None) -> None:
    """Add operator NAME with a new personal key (encrypted under their passphrase), or
    with the public key of a key they hold elsewhere."""
    from ecert_cli._catalog import read_json_file

    jwk: dict[str, str] | None = None
    passphrase = None
    if public_key_file is not None:
        value = read_json_file(str(public_key_file))
        if not isinstance(value, dict):
            raise input_error("{file} must hold a JWK object", file=public_key_file)
        jwk = value
    else:
        passphrase = new_passphrase(passphrase_file, name)
    with settings().open_registry() as registry:
        op = registry.add_operator(name, roles=_split(roles), agencies=_scope(agencies),
                                   types=_scope(types), passphrase=passphrase, public_jwk=jwk)
    emit(operator_json(op), fmt("added operator {name} ({roles}), key {kid}", name=op.name,
                                roles=_describe(op), kid=op.kid))


@operator_group.command("list")
@page_options()
@json_option
def operator_list(limit: int, after: str | None) -> None:
    """List operators with their roles, by name."""
    with settings().open_registry() as registry:
        page = page_in_memory(registry.operators(), limit, after, lambda o: (o.name,), (str,))

    def human() -> None:
        for op in page.items:
            state = "" if op.active else "  " + _("[disabled]")
            click.echo(f"{safe(op.name):<20} {safe(_describe(op))}{state}")

    emit_page(page, operator_json, human)


@operator_group.command("whoami")
@json_option
def operator_whoami() -> None:
    """Authenticate as ECERT_OPERATOR and show the roles held."""
    with settings().open_registry() as registry:
        op = registry.whoami()
    emit(operator_json(op), fmt("{name}: {roles}", name=op.name, roles=_describe(op)))


@operator_group.command("disable")
@click.argument("name")
@json_option
def operator_disable(name: str) -> None:
    """Disable operator NAME (their past entries stay attributable)."""
    with settings().open_registry() as registry:
        op = registry.disable_operator(name)
    emit(operator_json(op), fmt("operator {name} disabled", name=op.name))


@operator_group.command("grant")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help=_ROLE_HELP)
@click.option("--agency", "agencies", multiple=True, metavar="CODE[,CODE]")
@click.option("--types", "types", multiple=True, metavar="T[,T]")
@json_option
def operator_grant(name: str, roles: tuple[str, ...], agencies: tuple[str, ...],
                   types: tuple[str, ...]) -> None:
    """Replace the roles of operator NAME."""
    with settings().open_registry() as registry:
        op = registry.grant(name, roles=_split(roles), agencies=_scope(agencies),
                            types=_scope(types))
    emit(operator_json(op), fmt("operator {name} now: {roles}", name=op.name,
                                roles=_describe(op)))


@operator_group.command("reset")
@click.argument("name")
@_PASS_FILE
@json_option
def operator_reset(name: str, passphrase_file: Path | None) -> None:
    """Give operator NAME a new key under a new passphrase (an admin's action)."""
    passphrase = new_passphrase(passphrase_file, name)
    with settings().open_registry() as registry:
        op = registry.reset_operator(name, passphrase=passphrase)
    emit(operator_json(op), fmt("operator {name} has a new key {kid}", name=op.name,
                                kid=op.kid))


@operator_group.command("rotate-key")
@_PASS_FILE
@json_option
def operator_rotate_key(passphrase_file: Path | None) -> None:
    """Give yourself (ECERT_OPERATOR) a new personal key."""
    s = settings()
    passphrase = new_passphrase(passphrase_file, s.operator or _("you"))
    with s.open_registry() as registry:
        op = registry.rotate_operator_key(passphrase=passphrase)
    emit(operator_json(op), fmt("operator {name} now signs with key {kid}", name=op.name,
                                kid=op.kid))


@operator_group.command("passwd")
@_PASS_FILE
@json_option
def operator_passwd(passphrase_file: Path | None) -> None:
    """Change your own (ECERT_OPERATOR's) passphrase."""
    s = settings()
    passphrase = new_passphrase(passphrase_file, s.operator or _("you"))
    with s.open_registry() as registry:
        registry.change_passphrase(passphrase)
    emit({"name": s.operator, "changed": True},
         fmt("passphrase of {name} changed", name=s.operator))


@cli.group("policy")
def policy_group() -> None:
    """Four-eyes policies: which changes need a second operator."""


@policy_group.command("set")
@click.argument("action")
@click.option("--approvals", type=click.IntRange(1, 5), required=True,
              help="Operators who must agree (1: none besides the one acting).")
@click.option("--type", "type_code", default=None, help="Only for this certificate type.")
@json_option
def policy_set(action: str, approvals: int, type_code: str | None) -> None:
    """Require APPROVALS operators for ACTION (e.g. certificate.revoke, key.compromise)."""
    with settings().open_registry() as registry:
        registry.set_policy(action, approvals=approvals, type_code=type_code)
    emit({"action": action, "type": type_code, "approvals": approvals},
         fmt("{action} of {type} now needs {approvals} operator(s)", action=action,
             type=type_code, approvals=approvals) if type_code else
         fmt("{action} now needs {approvals} operator(s)", action=action,
             approvals=approvals))


@policy_group.command("list")
@page_options()
@json_option
def policy_list(limit: int, after: str | None) -> None:
    """List four-eyes policies."""
    with settings().open_registry() as registry:
        found = registry.policies()
    page = page_in_memory(list(found.items()), limit, after, lambda p: p[0], (str, str))

    def human() -> None:
        if not page.items:
            say("no policies: one operator suffices for everything")
        for (a, t), n in page.items:
            if t:
                say("{action} of {type}: {approvals} operators", action=a, type=t, approvals=n)
            else:
                say("{action}: {approvals} operators", action=a, approvals=n)

    emit_page(page, lambda p: {"action": p[0][0], "type": p[0][1] or None,
                               "approvals": p[1]}, human)


def request_line(r: ecert.ApprovalRequest) -> str:
    return (f"#{r.id:<5} {r.status.value:<9} {r.action:<22} "
            + fmt("{subject}  by {operator}  until {until}", subject=r.subject,
                  operator=r.requested_by, until=local_time(r.expires_at))
            + (fmt("  approved by {operators}", operators=", ".join(r.approved_by))
               if r.approved_by else ""))


@cli.command("requests")
@click.option("--pending", is_flag=True, help="Only requests still waiting.")
@page_options()
@json_option
def requests_command(pending: bool, limit: int, after: str | None) -> None:
    """List four-eyes requests, newest first."""
    with settings().open_registry() as registry:
        page = registry.requests_page(pending=pending, limit=limit, after=after)

    def human() -> None:
        click.echo("\n".join(request_line(r) for r in page.items) or _("no requests"))

    emit_page(page, lambda r: r.to_json(), human)


@cli.command("approve")
@click.argument("request_id", type=int, metavar="REQ")
@json_option
def approve(request_id: int) -> None:
    """Approve request REQ (never your own); the last approval carries it out."""
    with settings().open_registry() as registry:
        request = registry.approve(request_id)
    emit(request.to_json(), fmt("request {id}: {status} ({action} of {subject})",
                                id=request.id, status=request.status.value,
                                action=request.action, subject=request.subject))


@cli.command("reject")
@click.argument("request_id", type=int, metavar="REQ")
@click.option("--reason", required=True, help="Why (kept in the registry).")
@json_option
def reject(request_id: int, reason: str) -> None:
    """Reject request REQ."""
    with settings().open_registry() as registry:
        request = registry.reject(request_id, reason=reason)
    emit(request.to_json(), fmt("request {id} rejected", id=request.id))


@operator_group.command("bootstrap")
@click.option("--admin", default=None, metavar="NAME",
              help="The first admin (default: ECERT_OPERATOR).")
@json_option
def operator_bootstrap(admin: str | None) -> None:
    """Bring a registry made before operators existed under the log (needs its passphrase)."""
    s = settings()
    admin = admin or s.operator
    if not admin:
        raise input_error("name the first admin: --admin NAME (or ECERT_OPERATOR)")
    credential = ecert.OperatorCredential(
        admin, passphrase=s.operator_passphrase(confirm=True, name=admin))
    with ecert.Registry.adopt(s.home, admin=credential, passphrase=s.passphrase,
                              database_url=s.database_url, clock=s.clock) as registry:
        entries = len(registry.events(limit=10_000_000))
    emit({"admin": admin, "log_size": entries},
         fmt("{admin} is the first admin; the registry's history is {entries} log entries",
             admin=admin, entries=entries))
