"""``ecert issue-batch`` and ``revoke-batch``: every row of a CSV or JSON Lines file."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

import ecert
from ecert.batch import RejectCode, RowOutcome, RowStatus
from ecert_cli._app import EXIT_NOT_VALID, cli, emit, json_option, settings
from ecert_cli._errors import SUMMARIES
from ecert_cli._i18n import N_, _, is_chinese
from ecert_cli._render import fmt, say


def default_rejects(path: Path) -> Path:
    """``licences.csv`` -> ``licences.rejects.csv`` beside it."""
    return path.with_name(f"{path.stem}.rejects{path.suffix or '.csv'}")


def count_lines(path: Path) -> int:
    """Line breaks in ``path`` (at 1 MiB a read): the rows to expect, for the ETA."""
    count = 0
    last = b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk
    return count + (1 if last and not last.endswith(b"\n") else 0)


class Progress:
    """A bar with rate and ETA on a terminal (tqdm), else a line every ``every`` seconds;
    both on standard error."""

    def __init__(self, total: int, every: float, clock: Callable[[], float]) -> None:
        self.counts: Counter[RowStatus] = Counter()
        self.codes: Counter[str] = Counter()
        self.total = total
        self._every = every
        self._clock = clock
        self.started = self._last = clock()
        self._bar: Any = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
            except ImportError:  # the registry extra brings it; without it: plain lines
                pass
            else:
                self._bar = tqdm(total=total or None, unit=fmt("rows"), file=sys.stderr,
                                 dynamic_ncols=True, smoothing=0.1)

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def add(self, outcome: RowOutcome) -> None:
        self.counts[outcome.status] += 1
        if outcome.code is not None:
            self.codes[outcome.code.value] += 1
        if self._bar is not None:
            self._bar.update(1)
            if outcome.status is RowStatus.REJECTED:
                self._bar.set_postfix_str(fmt("{rejected} rejected",
                                              rejected=self.counts[RowStatus.REJECTED]),
                                          refresh=False)
            return
        now = self._clock()
        if now - self._last >= self._every:
            self._last = now
            click.echo(self.line(now), err=True)

    def line(self, now: float) -> str:
        rate = self.done / max(now - self.started, 1e-9)
        if self.counts[RowStatus.IMPORTED]:
            return fmt("{done} of {total} lines: {imported} imported, {skipped} imported "
                       "before, {rejected} rejected ({rate}/s)", done=self.done,
                       total=self.total, imported=self.counts[RowStatus.IMPORTED],
                       skipped=self.counts[RowStatus.SKIPPED],
                       rejected=self.counts[RowStatus.REJECTED], rate=round(rate))
        return fmt("{done} of {total} rows: {issued} issued, {skipped} issued before, "
                   "{rejected} rejected ({rate}/s)", done=self.done, total=self.total,
                   issued=self.counts[RowStatus.ISSUED],
                   skipped=self.counts[RowStatus.SKIPPED],
                   rejected=self.counts[RowStatus.REJECTED], rate=round(rate))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    @contextmanager
    def interruptible(self, message: str) -> Iterator[None]:
        """Close the bar at the end; on Ctrl-C first say ``message`` (``{done}``: the
        rows done), then let the interruption end the command (exit 130)."""
        try:
            yield
        except KeyboardInterrupt:
            self.close()
            click.echo(fmt(message, done=self.done), err=True)
            raise
        finally:
            self.close()


#: What each reject code means, put before the library's reason (which names the field,
#: value or line) in a rejects file read in Chinese, as an error line is written; a code
#: that means what a library error code means shares its summary.
REJECT_SUMMARIES: dict[str, str] = {
    RejectCode.HOLDER_ID_CHECK: N_("the holder id breaks the type's id scheme"),
    RejectCode.SCHEMA: SUMMARIES["claims_invalid"],
    RejectCode.MISSING_HOLDER_NAME: N_("the holder name is empty"),
    RejectCode.HOLDER_CLAIMS_MISMATCH: N_(
        "the holder id or name differs from the claims that name the holder"),
    RejectCode.DUPLICATE_ROW: N_("the same row as an earlier one of this file"),
    RejectCode.TEXT: N_("a name or claim holds characters a certificate may not carry"),
    RejectCode.VALIDITY: N_("the validity dates cannot be read or are out of order"),
    RejectCode.QR_TOO_LARGE: SUMMARIES["qr_short_form_too_large"],
    RejectCode.INPUT: N_("this row cannot be used"),
    RejectCode.NOT_FOUND: N_("no such certificate (or the serial is ambiguous)"),
    RejectCode.INVALID_REASON: N_("not an RFC 5280 revocation reason"),
    RejectCode.SIGNATURE: N_(
        "the token does not verify against the exporting registry's trust list"),
    RejectCode.EXPORT_MISMATCH: N_("a member differs from what the signed token states"),
    RejectCode.STATUS_ROLLBACK: N_(
        "the status is less final than the exporting registry published"),
    RejectCode.ID_TAKEN: N_("the certificate id is taken in this registry"),
}


def reason_text(code: str, reason: str) -> str:
    """The ``_reason`` a rejects file gets: in Chinese the code's summary, then the
    library's reason (names and values as they were); in English the reason alone."""
    summary = REJECT_SUMMARIES.get(code)
    if summary is None or not is_chinese():
        return reason
    return _("{summary}: {detail}").format(summary=_(summary), detail=reason)


@cli.command("issue-batch")
@click.option("--type", "type_code", required=True, help="Certificate type code.")
@click.option("--agency", "agency_code", required=True, help="Issuing agency code.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--id-column", default=None, metavar="NAME",
              help="A column whose value identifies the row across runs (default: a keyed "
                   "hash of the whole row).")
@click.option("--rejects", "rejects_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE",
              help="Where refused rows go, with _line, _code and _reason (mode 0600; "
                   "default: FILE's name with .rejects before its extension).")
@click.option("--encoding", default=None,
              help="Encoding of a CSV file (default: UTF-8, with or without BOM, or "
                   "GB 18030, detected).")
@click.option("--chunk", "chunk_size", type=click.IntRange(1, 10_000), default=500,
              show_default=True, help="Rows per transaction.")
@click.option("--progress-every", type=click.FloatRange(0), default=10.0, show_default=True,
              metavar="SECONDS", help="Without a terminal: a progress line this often.")
@json_option
def issue_batch(type_code: str, agency_code: str, file: Path, id_column: str | None,
                rejects_file: Path | None, encoding: str | None, chunk_size: int,
                progress_every: float) -> None:
    """Issue a certificate for every row of a CSV or JSON Lines FILE.

    Columns (members): holder_id, holder_name, claims (a JSON object; without a claims
    column every other column is a text claim), optional valid_from and valid_until. Each
    row is checked as 'ecert issue' checks one and issued fully or not at all; refused
    rows go to the rejects file, which runs again as it is once fixed. Running the same
    FILE again issues only what is missing, so an interrupted run is finished by running
    it again. Exit code 0 when every row is issued (now or before), 1 when some were
    rejected.
    """
    rejects_path = rejects_file if rejects_file is not None else default_rejects(file)
    header = 0 if file.suffix.lower() in (".jsonl", ".ndjson") else 1
    total = max(count_lines(file) - header, 0) if file.is_file() else 0
    progress = Progress(total, progress_every, time.monotonic)
    with progress.interruptible(N_("interrupted after {done} rows: each row is issued or "
                                   "not; run the same command again to finish")), \
            settings().open_registry() as registry:
        for outcome in registry.issue_file(type_code, agency_code, file,
                                           id_column=id_column, rejects=rejects_path,
                                           encoding=encoding, chunk_size=chunk_size,
                                           reason_text=reason_text):
            progress.add(outcome)
    seconds = time.monotonic() - progress.started
    counts = progress.counts

    def summary() -> None:
        say("{rows} rows: {issued} issued, {skipped} issued before, {rejected} rejected "
            "({rate}/s)", rows=progress.done, issued=counts[RowStatus.ISSUED],
            skipped=counts[RowStatus.SKIPPED], rejected=counts[RowStatus.REJECTED],
            rate=round(progress.done / max(seconds, 1e-9)))

    _report({"rows": progress.done, "issued": counts[RowStatus.ISSUED]}, summary, counts,
            progress.codes, rejects_path, seconds=seconds)


@cli.command("revoke-batch")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rejects", "rejects_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE",
              help="Where refused rows go, with _line, _code and _reason (mode 0600; "
                   "default: FILE's name with .rejects before its extension).")
@click.option("--encoding", default=None,
              help="Encoding of a CSV file (default: UTF-8, with or without BOM, or "
                   "GB 18030, detected).")
@json_option
def revoke_batch(file: Path, rejects_file: Path | None, encoding: str | None) -> None:
    """Revoke every certificate a CSV or JSON Lines FILE lists, as one change.

    Columns (members): id (a certificate id, or its serial where unambiguous) and reason
    (an RFC 5280 reason name). The whole batch is one unit of work; where a four-eyes
    policy applies to revoking any of its types, it is one request that another operator
    approves as a whole. Certificates revoked already are skipped, so the same FILE can
    run again. Exit code 0 when every row is revoked (now or before) or waits for
    approval, 1 when some were rejected.
    """
    rejects_path = rejects_file if rejects_file is not None else default_rejects(file)
    with settings().open_registry() as registry:
        outcomes = registry.revoke_file(file, rejects=rejects_path, encoding=encoding,
                                        reason_text=reason_text)
    counts = Counter(o.status for o in outcomes)
    codes = Counter(o.code.value for o in outcomes if o.code is not None)

    def summary() -> None:
        say("{rows} rows: {revoked} revoked, {skipped} revoked before, {rejected} rejected",
            rows=len(outcomes), revoked=counts[RowStatus.REVOKED],
            skipped=counts[RowStatus.SKIPPED], rejected=counts[RowStatus.REJECTED])

    _report({"rows": len(outcomes), "revoked": counts[RowStatus.REVOKED]}, summary, counts,
            codes, rejects_path)


@cli.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def export(file: Path) -> None:
    """Write every certificate to FILE as JSON Lines (mode 0600), for 'ecert import'
    into another registry or as a backup.

    Each line holds the signed token, what it states and the certificate's status now.
    Erased certificates are left out (and counted); keys, operators and the log are not
    exported. Publish right before exporting: an import checks each line's status
    against the published status lists. Needs the admin or auditor role; the log records
    who exported how many certificates and the file's SHA-256.
    """
    with settings().open_registry() as registry:
        report = registry.export_certificates(file)
    emit({"file": str(report.path), "certificates": report.count,
          "redacted": report.redacted, "sha256": report.sha256},
         lambda: say("{count} certificates written to {file} ({redacted} erased ones left "
                     "out)", count=report.count, file=str(report.path),
                     redacted=report.redacted))


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--anchor", "anchor_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The exporting registry's anchor (its 'ecert trust export-anchor'), "
                   "obtained apart from the export: every token is verified against it.")
@click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="The exporting registry's published directory (default: "
                                 "fetched from the URL its anchor names).")
@click.option("--rejects", "rejects_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE",
              help="Where refused lines go, with _line, _code and _reason (mode 0600; "
                   "default: FILE's name with .rejects before its extension).")
@click.option("--chunk", "chunk_size", type=click.IntRange(1, 10_000), default=500,
              show_default=True, help="Lines per transaction.")
@click.option("--progress-every", type=click.FloatRange(0), default=10.0, show_default=True,
              metavar="SECONDS", help="Without a terminal: a progress line this often.")
@json_option
def import_(file: Path, anchor_file: Path, bundle: Path | None, rejects_file: Path | None,
            chunk_size: int, progress_every: float) -> None:
    """Import the certificates of an export FILE ('ecert export' of another registry).

    Every line is verified against the exporting registry's trust list (--anchor,
    --bundle) and its status against that registry's published status lists (a line may
    say revoked where the list says valid, never the reverse), then checked as 'ecert
    issue' checks a certificate and signed again by this registry's agency key under
    its original id, logged as imported. Refused lines go to the rejects file. Running
    the same FILE again imports only what is missing. Exit code 0 when every line is
    imported (now or before), 1 when some were rejected.
    """
    s = settings()
    rejects_path = rejects_file if rejects_file is not None else default_rejects(file)
    total = count_lines(file) if file.is_file() else 0
    anchor = ecert.TrustAnchor.load(anchor_file)
    cache = s.home / "verifier-cache"
    if bundle is not None:
        verifier = ecert.Verifier.from_bundle(bundle, anchor=anchor, clock=s.clock)
    else:
        verifier = ecert.Verifier.from_anchor(anchor, cache_dir=cache, clock=s.clock)
    progress = Progress(total, progress_every, time.monotonic)
    with progress.interruptible(N_("interrupted after {done} lines: each line is imported or "
                                   "not; run the same command again to finish")), \
            s.open_registry() as registry:
        for outcome in registry.import_file(file, verifier, rejects=rejects_path,
                                            chunk_size=chunk_size, reason_text=reason_text):
            progress.add(outcome)
    seconds = time.monotonic() - progress.started
    counts = progress.counts

    def summary() -> None:
        say("{lines} lines: {imported} imported, {skipped} imported before, {rejected} "
            "rejected ({rate}/s)", lines=progress.done, imported=counts[RowStatus.IMPORTED],
            skipped=counts[RowStatus.SKIPPED], rejected=counts[RowStatus.REJECTED],
            rate=round(progress.done / max(seconds, 1e-9)))

    _report({"lines": progress.done, "imported": counts[RowStatus.IMPORTED]}, summary,
            counts, progress.codes, rejects_path, seconds=seconds)


def _report(done: dict[str, Any], summary: Callable[[], None],
            counts: Mapping[RowStatus, int], codes: Mapping[str, int], rejects_path: Path,
            *, seconds: float | None = None) -> None:
    """A batch command's result: as JSON, ``done`` (the rows read and those it changed)
    with the skipped and rejected ones, each reject code's count, the rejects file and the
    time taken; else ``summary`` then the codes and where the rejected rows went. Exit 1
    if any row was rejected."""
    rejected = counts[RowStatus.REJECTED]
    data = {**done, "skipped": counts[RowStatus.SKIPPED], "rejected": rejected,
            "codes": dict(sorted(codes.items())),
            "rejects_file": str(rejects_path) if rejected else None,
            **({} if seconds is None else {"seconds": round(seconds, 3)})}

    def human() -> None:
        summary()
        for code, count in sorted(codes.items()):
            meaning = REJECT_SUMMARIES.get(code)
            if meaning is None:
                say("  {code}: {count}", code=code, count=count)
            else:
                say("  {code}: {count} ({meaning})", code=code, count=count,
                    meaning=_(meaning))
        if rejected:
            say("rejected rows are in {file}: fix them there and run it again",
                file=str(rejects_path))

    emit(data, human)
    if rejected:
        sys.exit(EXIT_NOT_VALID)
