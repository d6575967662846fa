"""``ecert key …``: the registry's sharing key and agencies' requester keys."""

from __future__ import annotations

import click

from ecert_cli._app import cli, emit, json_option, settings
from ecert_cli._render import fmt, key_json


@cli.group("key")
def key_group() -> None:
    """Sharing and requester keys (agency signing keys: 'ecert agency rotate-key')."""


@key_group.command("create-requester")
@click.argument("agency")
@json_option
def key_create_requester(agency: str) -> None:
    """Give AGENCY a requester key, which signs its requests to other regions."""
    with settings().open_registry() as registry:
        key = registry.create_requester_key(agency)
    emit(key_json(key), fmt("agency {code} now has requester key {kid}; publish to announce "
                            "it", code=agency, kid=key.kid))


@key_group.command("rotate-requester")
@click.argument("agency")
@json_option
def key_rotate_requester(agency: str) -> None:
    """Replace AGENCY's requester key."""
    with settings().open_registry() as registry:
        key = registry.rotate_requester_key(agency)
    emit(key_json(key), fmt("agency {code} now has requester key {kid}; publish to announce "
                            "it", code=agency, kid=key.kid))


@key_group.command("retire-requester")
@click.argument("agency")
@json_option
def key_retire_requester(agency: str) -> None:
    """Retire AGENCY's requester key without a successor."""
    with settings().open_registry() as registry:
        registry.retire_requester_key(agency)
    emit({"agency": agency, "retired": True},
         fmt("agency {code} has no requester key now; publish to announce it", code=agency))


@key_group.command("rotate-sharing")
@json_option
def key_rotate_sharing() -> None:
    """Replace the registry's sharing key, which signs purpose-bound copies."""
    with settings().open_registry() as registry:
        key = registry.rotate_sharing_key()
    emit(key_json(key), fmt("the registry now signs copies with key {kid}; publish to "
                            "announce it", kid=key.kid))
