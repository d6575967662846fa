"""``ecert trust …`` and ``ecert root rotate``: cross-region recognition and trust anchors."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import click

import ecert
from ecert._clock import now_seconds
from ecert._state import STATE_FILE, TrustState
from ecert.mirror import sync
from ecert.registry._recognition import national_code_mismatches
from ecert.trust import fetch_trust_list
from ecert_cli._app import cli, emit, json_mode, json_option, settings


@cli.group("trust")
def trust_group() -> None:
    """Trust anchors, recognition agreements with other regions, offline mirrors."""


@trust_group.command("export-anchor")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE instead of stdout.")
@json_option
def export_anchor(output: Path | None) -> None:
    """Print this region's anchor (code, root public key, trust list URL) for others."""
    with settings().open_registry() as registry:
        anchor = registry.anchor()
    data = anchor.to_bytes()
    if output is not None:
        output.write_bytes(data)
        emit({"region": anchor.region, "file": str(output), "root_kid": anchor.kid},
             f"anchor of {anchor.region} written to {output} (root key {anchor.kid})")
    else:
        click.echo(data.decode("utf-8"), nl=False)


def _parse_maps(maps: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in maps:
        theirs, sep, ours = item.partition("=")
        if not sep or not theirs.strip() or not ours.strip():
            raise ecert.InputError(f"--map {item!r}: write THEIRS=OURS, e.g. "
                                   "zj.spjyxkz=cn.food-business-licence")
        mapping[theirs.strip()] = ours.strip()
    return mapping


@trust_group.command("recognize")
@click.argument("region")
@click.option("--anchor", "anchor_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The other region's anchor file (from its 'ecert trust export-anchor').")
@click.option("--map", "maps", multiple=True, metavar="THEIRS=OURS",
              help="Accept their type THEIRS as our type OURS (repeatable).")
@click.option("--auto", is_flag=True,
              help="Also accept types whose national type code matches one of ours "
                   "(read from their verified trust list).")
@click.option("--their-bundle", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Read their trust list from this bundle, not their URL.")
@click.option("--until", default=None, metavar="DATE", help="Last day the agreement holds.")
@click.option("--force", is_flag=True,
              help="Map types whose national type codes differ (refused otherwise).")
@json_option
def recognize(region: str, anchor_file: Path, maps: tuple[str, ...], auto: bool,
              their_bundle: Path | None, until: str | None, force: bool) -> None:
    """Recognize REGION's certificates for the mapped types (effective at next publish).

    Their verified trust list (from their URL, or --their-bundle) must list every type
    mapped, and each pair must carry the same national type code unless --force.
    """
    anchor = ecert.TrustAnchor.load(anchor_file)
    if anchor.region != region.upper():
        raise ecert.InputError(f"the anchor is for region {anchor.region}, not {region}")
    mapping = _parse_maps(maps)
    end = None
    if until is not None:
        try:
            end = date.fromisoformat(until)
        except ValueError as e:
            raise ecert.InputError(f"--until {until!r} is not a date (YYYY-MM-DD)") from e
    s = settings()
    with s.open_registry() as registry:
        theirs = None
        differ: list[dict[str, str]] = []
        if (mapping or auto) and anchor.region != registry.region.code:
            theirs = fetch_trust_list(anchor, bundle=their_bundle, now=now_seconds(s.clock))
        if theirs is not None:
            if auto:
                for code, ours in registry.suggest_mapping(theirs).items():
                    mapping.setdefault(code, ours)
            differ = national_code_mismatches(
                mapping, {t.code: t.national_type_code for t in theirs.types},
                {t.code: t.national_type_code for t in registry.types()})
        agreement = registry.recognize(anchor, mapping, valid_until=end, theirs=theirs,
                                       force=force)
    emit({"region": agreement.region, "root_kid": agreement.root_jwk["kid"],
          "types": dict(agreement.types), "valid_until": agreement.valid_until,
          "national_codes_differ": differ},
         f"{registry.region.code} now recognizes {agreement.region}: "
         + ", ".join(f"{t} as {o}" for t, o in agreement.types.items())
         + "; run 'ecert publish' to put it in the trust list")
    for d in differ:  # only reached with --force
        click.echo("warning: {region}'s {theirs} ({their_code}) is accepted as our {ours} "
                   "({our_code}) although their national type codes differ".format(
                       region=agreement.region, theirs=d["theirs"],
                       their_code=d["their_national_code"], ours=d["ours"],
                       our_code=d["our_national_code"]), err=True)


@trust_group.command("withdraw")
@click.argument("region")
@json_option
def withdraw(region: str) -> None:
    """Withdraw the agreement with REGION (effective at the next publish)."""
    with settings().open_registry() as registry:
        registry.withdraw(region)
    emit({"region": region.upper(), "withdrawn": True},
         f"agreement with {region.upper()} withdrawn; run 'ecert publish'")


@trust_group.command("show")
@json_option
def show() -> None:
    """Show this region's anchor and its recognition agreements."""
    with settings().open_registry() as registry:
        anchor = registry.anchor()
        agreements = registry.agreements()

    def human() -> None:
        click.echo(f"region {anchor.region} ({anchor.name}), root key {anchor.kid}")
        click.echo(f"trust list {anchor.trust_list_url}")
        if not agreements:
            click.echo("no recognition agreements")
        now = settings().clock().timestamp()
        for a in agreements:
            until = "open-ended" if a.valid_until is None else (
                f"until {datetime.fromtimestamp(a.valid_until, UTC).isoformat()}")
            lapsed = " (LAPSED)" if a.valid_until is not None and a.valid_until <= now else ""
            click.echo(f"recognizes {a.region} ({a.name}), root {a.root_jwk['kid']}, "
                       f"{until}{lapsed}")
            for theirs, ours in a.types.items():
                click.echo(f"    {theirs} -> {ours}")

    emit({"region": anchor.region, "root_kid": anchor.kid,
          "trust_list": anchor.trust_list_url,
          "agreements": [a.to_json() for a in agreements]}, human)


@trust_group.command("sync")
@click.option("--anchor", "anchor_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Home anchor file.")
@click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Home region's bundle directory (its anchor.json is used).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the offline mirror.")
@json_option
def trust_sync(anchor_file: Path | None, bundle: Path | None, out: Path) -> None:
    """Mirror everything a verifier needs offline (verified before it is written)."""
    if (anchor_file is None) == (bundle is None):
        raise ecert.InputError("give exactly one of --anchor FILE or --bundle DIR")
    anchor = ecert.TrustAnchor.load(anchor_file or Path(str(bundle)) / "anchor.json")
    show_progress = sys.stderr.isatty() and not json_mode()

    def progress(uri: str) -> None:
        if show_progress:
            click.echo(f"  fetching {uri}", err=True)

    report = sync(anchor, out, bundle=bundle, progress=progress)
    emit({"directory": str(report.directory), "regions": list(report.regions),
          "documents": report.documents, "problems": list(report.problems)},
         f"mirrored {report.documents} document(s) of {', '.join(report.regions)} to "
         f"{report.directory}" + "".join(f"\nwarning: {p}" for p in report.problems))


@trust_group.command("reset-state")
@click.option("--anchor", "anchor_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The home anchor the verifier cache is to belong to.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def reset_state(anchor_file: Path, yes: bool) -> None:
    """Forget the verifier's rollback memory (HOME/verifier-cache/trust-state.json).

    For a trust state that is corrupt or belongs to another anchor: the file is
    replaced by an empty one for --anchor. Until the verifier has seen lists again, it
    is open to rollbacks to any list still within its validity.
    """
    anchor = ecert.TrustAnchor.load(anchor_file)
    path = settings().home / "verifier-cache" / STATE_FILE
    if not yes:
        click.confirm(f"Forget the trust list sequences and root rotations remembered in "
                      f"{path}, and start it afresh for the anchor of {anchor.region} "
                      f"(root {anchor.kid})?", abort=True, err=True)
    forgotten = TrustState.reset(path, anchor)
    emit({"file": str(path), "region": anchor.region, "root_kid": anchor.kid,
          "regions_forgotten": forgotten},
         f"trust state {path} started afresh for {anchor.region} (root {anchor.kid}); "
         + ("the old file was corrupt" if forgotten is None
            else f"{forgotten} region(s) forgotten"))


@cli.group("root")
def root_group() -> None:
    """The region root key."""


@root_group.command("rotate")
@json_option
def root_rotate() -> None:
    """Replace the root key; verifiers follow via a statement signed by the old root."""
    with settings().open_registry() as registry:
        key = registry.rotate_root()
    emit({"kid": key.kid},
         f"new root key {key.kid}; run 'ecert publish' and hand out the new anchor "
         "('ecert trust export-anchor'): existing verifiers follow the rotation")
