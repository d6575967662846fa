"""``ecert doctor``: report what is wrong with the home, the keys, a bundle and the verifier state.

Reports only, changes nothing (see :mod:`ecert.doctor` for why orphan key files are not
removed automatically). Exit 0 healthy, 1 problems found, 2 usage.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import click

import ecert
from ecert import doctor
from ecert_cli._app import EXIT_NOT_VALID, cli, emit, json_option, settings
from ecert_cli._duration import Duration
from ecert_cli._i18n import _
from ecert_cli._render import fmt, safe


def _registry_facts() -> tuple[set[str] | None, set[str] | None, list[doctor.Finding],
                               Path | None]:
    """Known and active kids from the registry, its watcher's lease and the directory it
    last published to — or why they could not be read.

    A missing registry is not a problem for a verifier-only machine: doctor still checks
    the bundle and the verifier state.
    """
    where = settings()
    try:
        with where.open_registry() as registry:
            keys = registry.keys()
            lease = registry.publication_lease()
            published = registry.published_directory()
    except ecert.EcertError as e:
        missing = e.code == "not_initialized"
        if isinstance(e, ecert.ExtraMissing):  # a verifier-only install: no registry runs here
            why = fmt("the '{extra}' extra is not installed: only files were checked",
                      extra=e.extra)
        elif missing:
            why = _("no registry here: only files were checked")
        else:
            why = fmt("cannot open the registry ({code}): {error}", code=e.code,
                      error=e.message.splitlines()[0])
        return None, None, [doctor.Finding(
            "registry_unavailable",
            doctor.Severity.INFO if missing or isinstance(e, ecert.ExtraMissing)
            else doctor.Severity.WARNING, str(where.home), why)], None
    known = {k.kid for k in keys}
    active = {k.kid for k in keys if k.status is ecert.KeyStatus.ACTIVE}
    return known, active, doctor.check_lease(lease), published


@cli.command("doctor")
@click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Check this published bundle (trust list and status lists "
                                 "valid, not expired, not about to expire). Default: the "
                                 "directory the registry last published to, if it is here.")
@click.option("--anchor", "anchor_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Verify the bundle's trust list against this anchor "
                                 "instead of the bundle's own anchor.json.")
@click.option("--warn-before", type=Duration(minimum=timedelta(0)), default="6h",
              show_default=True,
              help="Warn when a published document expires within this time (at most "
                   "half its lifetime), e.g. 2h, 12h, 1d.")
@json_option
def doctor_command(bundle: Path | None, anchor_file: Path | None,
                   warn_before: timedelta) -> None:
    """Check the registry home, its key files and modes, a bundle and the verifier state.

    Reports only; changes nothing. Exit 0 if healthy, 1 if problems were found.
    """
    if anchor_file is not None and bundle is None:
        raise click.UsageError(_("--anchor checks a bundle: give --bundle DIR too"))
    known, active, extra, published = _registry_facts()
    if bundle is None and published is not None:
        if published.is_dir():
            bundle = published
        else:
            extra.append(doctor.Finding(
                "bundle_elsewhere", doctor.Severity.INFO, str(published),
                _("the registry last published to this directory, which is not on this "
                  "machine: check it where it is (ecert doctor --bundle DIR)")))
    report = doctor.diagnose(settings().home, bundle=bundle, anchor=anchor_file,
                             known_kids=known, active_kids=active, extra=extra,
                             warn_within=int(warn_before.total_seconds()))

    def human() -> None:
        for f in report.findings:
            click.echo(f"{f.severity.value}: {f.code}: {safe(f.subject)}: {safe(f.message)}")
        problems = sum(f.severity is not doctor.Severity.INFO for f in report.findings)
        click.echo(_("healthy") if report.healthy
                   else fmt("{count} problem(s) found", count=problems))

    emit(report.to_json(), human)
    if not report.healthy:
        sys.exit(EXIT_NOT_VALID)
