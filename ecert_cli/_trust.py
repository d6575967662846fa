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
from ecert.trust import fetch_trust_list
from ecert_cli._app import cli, emit, input_error, json_mode, json_option, settings
from ecert_cli._i18n import _, ngettext
from ecert_cli._render import fmt, local_time, safe, say


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
             fmt("anchor of {region} written to {file} (root key {kid})", region=anchor.region,
                 file=output, kid=anchor.kid))
    else:
        click.echo(data.decode("utf-8"), nl=False)


def _parse_maps(maps: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in maps:
        theirs, sep, ours = item.partition("=")
        if not sep or not theirs.strip() or not ours.strip():
            raise input_error("--map {item}: write THEIRS=OURS, e.g. "
                              "zj.spjyxkz=cn.food-business-licence", item=repr(item))
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
        raise input_error("the anchor is for region {anchor_region}, not {region}",
                          anchor_region=anchor.region, region=region)
    mapping = _parse_maps(maps)
    end = None
    if until is not None:
        try:
            end = date.fromisoformat(until)
        except ValueError as e:
            raise input_error("{option} {value} is not a date (YYYY-MM-DD)", option="--until",
                              value=repr(until)) from e
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
            # Imported here: the registry (opened above) needs the registry extra, which
            # the verifier's commands in this module do not.
            from ecert.registry._recognition import national_code_mismatches

            differ = national_code_mismatches(
                mapping, {t.code: t.national_type_code for t in theirs.types},
                {t.code: t.national_type_code for t in registry.types()})
        from ecert_cli._render import day_instant

        agreement = registry.recognize(anchor, mapping, valid_until=day_instant(end, end=True),
                                       theirs=theirs, force=force)
    emit({"region": agreement.region, "root_kid": agreement.root_jwk["kid"],
          "types": dict(agreement.types), "valid_until": agreement.valid_until,
          "national_codes_differ": differ},
         fmt("{region} now recognizes {other}: {types}; run 'ecert publish' to put it in the "
             "trust list", region=registry.region.code, other=agreement.region,
             types=", ".join(fmt("{theirs} as {ours}", theirs=t, ours=o)
                             for t, o in agreement.types.items())))
    for d in differ:  # only reached with --force
        click.echo(fmt("warning: {region}'s {theirs} ({their_code}) is accepted as our {ours} "
                       "({our_code}) although their national type codes differ",
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
         fmt("agreement with {region} withdrawn; run 'ecert publish'", region=region.upper()))


@trust_group.command("show")
@json_option
def show() -> None:
    """Show this region's anchor and its recognition agreements."""
    with settings().open_registry() as registry:
        anchor = registry.anchor()
        agreements = registry.agreements()

    def human() -> None:
        say("region {region} ({name}), root key {kid}", region=anchor.region, name=anchor.name,
            kid=anchor.kid)
        say("trust list {url}", url=anchor.trust_list_url)
        if not agreements:
            say("no recognition agreements")
        now = settings().clock().timestamp()
        for a in agreements:
            until = _("open-ended") if a.valid_until is None else fmt(
                "until {time}", time=local_time(datetime.fromtimestamp(a.valid_until, UTC)))
            lapsed = " " + _("(LAPSED)") if a.valid_until is not None and a.valid_until <= now \
                else ""
            say("recognizes {region} ({name}), root {kid}, {until}", region=a.region,
                name=a.name, kid=a.root_jwk["kid"], until=until + lapsed)
            for theirs, ours in a.types.items():
                click.echo(f"    {safe(theirs)} -> {safe(ours)}")

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
        raise input_error("give exactly one of --anchor FILE or --bundle DIR")
    anchor = ecert.TrustAnchor.load(anchor_file or Path(str(bundle)) / "anchor.json")
    show_progress = sys.stderr.isatty() and not json_mode()

    def progress(uri: str) -> None:
        if show_progress:
            click.echo("  " + fmt("fetching {uri}", uri=uri), err=True)

    report = sync(anchor, out, bundle=bundle, progress=progress)
    emit({"directory": str(report.directory), "regions": list(report.regions),
          "documents": report.documents, "problems": list(report.problems)},
         fmt("mirrored {documents} document(s) of {regions} to {directory}",
             documents=report.documents, regions=", ".join(report.regions),
             directory=report.directory)
         + "".join("\n" + fmt("warning: {warning}", warning=p) for p in report.problems))


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
        click.confirm(fmt("Forget the trust list sequences and root rotations remembered in "
                          "{file}, and start it afresh for the anchor of {region} (root "
                          "{kid})?", file=path, region=anchor.region, kid=anchor.kid),
                      abort=True, err=True)
    forgotten = TrustState.reset(path, anchor)
    emit({"file": str(path), "region": anchor.region, "root_kid": anchor.kid,
          "regions_forgotten": forgotten},
         fmt("trust state {file} started afresh for {region} (root {kid}); ", file=path,
             region=anchor.region, kid=anchor.kid)
         + (_("the old file was corrupt") if forgotten is None
            else ngettext("{count} region forgotten", "{count} regions forgotten",
                          forgotten).format(count=forgotten)))


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
         fmt("new root key {kid}; run 'ecert publish' and hand out the new anchor ('ecert "
             "trust export-anchor'): existing verifiers follow the rotation", kid=key.kid))
