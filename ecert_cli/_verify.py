"""``ecert verify``: check a token against a published bundle; needs no registry."""

from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path
from typing import Any

import click

import ecert
from ecert_cli._app import EXIT_NOT_VALID, cli, emit, input_error, json_option, settings
from ecert_cli._errors import SUMMARIES
from ecert_cli._i18n import N_, _, is_chinese
from ecert_cli._render import fmt, last_day, local_day, local_time, safe, say

# Verification statuses as a person reads them (the JSON and exit code keep the codes).
_STATUS = {"valid": N_("valid"), "revoked": N_("revoked"), "suspended": N_("suspended"),
           "expired": N_("expired"), "not_yet_valid": N_("not yet valid"),
           "invalid": N_("invalid"), "untrusted": N_("untrusted issuer"),
           "malformed": N_("malformed"), "not_logged": N_("not in the public log")}


def status_words(status: str) -> str:
    """A verification status for people: its code in English, words in Chinese."""
    return _(_STATUS[status]) if is_chinese() and status in _STATUS else status


def _not_valid(status: str, detail: str) -> str:
    """The NOT VALID line: the status, then the verifier's detail (English: it names
    codes and values)."""
    return fmt("NOT VALID ({status}): {detail}", status=status_words(status), detail=detail)

# Trust list errors that mean "you pointed me at the wrong place" (exit 2), not "not valid".
# A trust state file that is corrupt or of another anchor needs a person (exit 2).
_INPUT_PROBLEMS = frozenset({"anchor_unreadable", "anchor_malformed", "trust_list_unavailable",
                             "trust_state_corrupt", "trust_state_wrong_anchor",
                             "trust_state_unwritable"})


@cli.command("verify")
@click.argument("token", required=False)
@click.option("--image", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Read the QR code from a photo or scan (PNG, JPEG...).")
@click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Published bundle directory of the home region.")
@click.option("--anchor", "anchor_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Home anchor file: pins the root key and says where the "
                                 "trust list lives (with --bundle: pins the bundle).")
@click.option("--offline", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Offline mirror made by 'ecert trust sync': no network.")
@click.option("--require-inclusion", is_flag=True,
              help="Also require the certificate's issue in its region's public log.")
@click.option("--proof", "proof_file", type=click.Path(exists=True, dir_okay=False,
                                                       path_type=Path), default=None,
              help="The JSON of 'ecert audit prove ID --json' (or {\"index\": N}).")
@click.option("--leaf-index", type=click.IntRange(0), default=None,
              help="The issue entry's leaf index (the proof is computed from the tiles).")
@click.option("--witnesses", type=click.IntRange(0, 100), default=0, show_default=True,
              help="With --require-inclusion: cosignatures required from witnesses the "
                   "home region trusts.")
@click.option("--witness-outage", type=click.Choice(["warn", "refuse"]), default="warn",
              show_default=True, help="When too few witnesses can be reached: warn or refuse.")
@click.option("--audience", default=None, metavar="REGION/AGENCY",
              help="For a purpose-bound copy: the requester it must have been made for "
                   "(required to accept a copy).")
@click.option("--purpose", default=None,
              help="For a purpose-bound copy: the purpose it must have been made for.")
@json_option
def verify(token: str | None, image: Path | None, bundle: Path | None,
           anchor_file: Path | None, offline: Path | None, require_inclusion: bool,
           proof_file: Path | None, leaf_index: int | None, witnesses: int,
           witness_outage: str, audience: str | None, purpose: str | None) -> None:
    """Verify TOKEN or QR text ('-' reads it from stdin), or the QR code in --image,
    or a purpose-bound copy for --audience. Exit 0 if valid, 1 if not.

    Needs no registry: --home only holds the verifier's cache.
    """
    if image is not None:
        if token is not None:
            raise input_error("give TOKEN or --image, not both")
        from ecert.qr import decode_qr_image

        token = decode_qr_image(image)
    if token is None:
        raise input_error("give TOKEN (or '-' for stdin), or --image FILE")
    if token == "-":  # noqa: S105 - "-" means stdin
        token = sys.stdin.read(1024 * 1024).strip()
    if re.match(r"https?://[^#]*#EC[0-9]", token):
        # A verification link (ecert qr --link): the QR text rides in its fragment.
        from ecert.qr import text_from_link

        with contextlib.suppress(ecert.FormatError):  # else verified as given: malformed
            token = text_from_link(token)
    if bundle is None and anchor_file is None and offline is None:
        raise input_error("give --anchor FILE (and --offline DIR), or --bundle DIR")
    if audience is not None and _AUDIENCE.fullmatch(audience) is None:
        raise input_error("--audience is REGION/agency-code, e.g. ZJ/zj-amr: not {audience}",
                          audience=audience)
    s = settings()
    cache = s.home / "verifier-cache"
    try:
        if anchor_file is None and offline is not None:
            anchor_file = offline / "anchor.json"
        anchor = ecert.TrustAnchor.load(anchor_file) if anchor_file else None
        if bundle is not None:
            verifier = ecert.Verifier.from_bundle(bundle, anchor=anchor, offline=offline,
                                                  cache_dir=cache, clock=s.clock)
        elif anchor is not None:
            verifier = ecert.Verifier.from_anchor(anchor, offline=offline, cache_dir=cache,
                                                  clock=s.clock)
        else:  # pragma: no cover - excluded above
            raise input_error("give --anchor FILE")
    except ecert.TrustListError as e:
        if e.code in _INPUT_PROBLEMS:
            raise
        # A trust list that is stale, rolled back or wrongly signed makes nothing valid.
        emit({"valid": False, "status": ecert.VerificationStatus.UNTRUSTED.value,
              "errors": [e.code], "messages": [e.message]},
             _not_valid(ecert.VerificationStatus.UNTRUSTED.value, e.message))
        sys.exit(EXIT_NOT_VALID)
    result = verifier.verify(token, audience=audience, purpose=purpose)
    inclusion = None
    if require_inclusion:
        inclusion = _inclusion(verifier, token, result, proof_file, leaf_index, witnesses,
                               witness_outage)
    elif proof_file is not None or leaf_index is not None or witnesses:
        raise input_error("--proof, --leaf-index and --witnesses go with --require-inclusion")
    valid = result.valid and (inclusion is None or inclusion.included)

    def human() -> None:
        # Every value from the token goes through fmt/safe: a holder name with a line
        # break or a bidi override cannot print as an "issuer:" line of its own.
        if result.valid and inclusion is not None and not inclusion.included:
            click.echo(_not_valid("not_logged", "; ".join(inclusion.messages)))
            return
        if result.valid and result.copy is not None and result.issuer is not None:
            _show_copy(result.copy, result.issuer, result)
        elif result.valid and result.certificate and result.issuer:
            cert, issuer = result.certificate, result.issuer
            until = last_day(cert.valid_until)
            say("VALID  {type}  {id}", type=cert.type_code, id=cert.id)
            say("holder: {name}", name=cert.holder_name)
            say("issuer: {agency_name} ({agency}, {region})", agency_name=issuer.agency_name,
                agency=issuer.agency_code, region=issuer.region)
            if result.agreement is not None:
                say("recognized under the agreement with {region} as {type}",
                    region=result.agreement.region, type=result.local_type)
            say("valid:  {start} to {end}", start=local_day(cert.valid_from), end=until)
            if inclusion is not None:
                if inclusion.witnesses is not None:
                    say("logged: entry {index} of {region}'s log (checkpoint {size}), "
                        "cosigned by {witnesses}", index=inclusion.leaf_index,
                        region=inclusion.region, size=inclusion.checkpoint_size,
                        witnesses=", ".join(inclusion.witnesses.covering(0)))
                else:
                    say("logged: entry {index} of {region}'s log (checkpoint {size})",
                        index=inclusion.leaf_index, region=inclusion.region,
                        size=inclusion.checkpoint_size)
                for warning in inclusion.warnings:
                    say("warning: {warning}", warning=warning)
            if result.qr:
                if result.digest_bound:
                    say("QR claims: {claims}; the others are bound by digest",
                        claims=", ".join(result.claims_present))
                else:
                    say("QR claims: {claims}; complete", claims=", ".join(result.claims_present))
        else:
            detail = safe("; ".join(result.messages) or ", ".join(result.errors))
            if is_chinese() and result.errors:
                # The codes' summaries first in Chinese; the detail names values in English.
                detail = _("{summary}: {detail}").format(summary="；".join(
                    _(SUMMARIES.get(code, code)) for code in result.errors), detail=detail)
            if result.kind is ecert.TokenKind.COPY:
                click.echo(fmt("NOT VALID COPY ({status}): {detail}",
                               status=status_words(result.status.value), detail=detail))
            else:
                click.echo(_not_valid(result.status.value, detail))

    value = result.to_json()
    if inclusion is not None:
        value["inclusion"] = inclusion.to_json()
        value["valid"] = valid
    emit(value, human)
    if not valid:
        sys.exit(EXIT_NOT_VALID)


#: A requester named as an audience: one agency of a region (check_requester's shape).
_AUDIENCE = re.compile(r"[A-Z]{2,8}/[a-z0-9][a-z0-9.-]{0,99}")


def _show_copy(copy: ecert.CopyInfo, issuer: ecert.Issuer,
               result: ecert.VerificationResult) -> None:
    """A valid purpose-bound copy: what it is of, for whom, why, and until when."""
    say("VALID COPY  {type}  of {id}", type=copy.type_code, id=copy.copy_of)
    say("for:    {audience}, case {case}", audience=copy.audience, case=copy.case)
    say("purpose: {purpose}", purpose=copy.purpose)
    say("issuer: {agency_name} ({agency}, {region})", agency_name=issuer.agency_name,
        agency=issuer.agency_code, region=issuer.region)
    if result.agreement is not None:
        if result.local_type is not None:
            say("recognized under the agreement with {region} as {type}",
                region=result.agreement.region, type=result.local_type)
        else:
            say("recognized under the agreement with {region}",
                region=result.agreement.region)
    say("original valid: {start} to {end}", start=local_day(copy.original_valid_from),
        end=last_day(copy.original_valid_until))
    say("copy expires: {time}", time=local_time(copy.expires_at))
    for name, value in sorted(copy.claims.items()):
        say("  {name}: {value}", name=name, value=value)


def _inclusion(verifier: ecert.Verifier, token: str, result: ecert.VerificationResult,
               proof_file: Path | None, leaf_index: int | None, witnesses: int,
               outage: str) -> Any:
    import json

    from ecert.inclusion import InclusionPolicy, check_inclusion
    from ecert.monitor import WitnessPolicy

    proof = None
    if proof_file is not None:
        try:
            proof = json.loads(proof_file.read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise input_error("cannot read the proof {file}: {error}", file=proof_file,
                              error=e) from e
        if not isinstance(proof, dict):
            raise input_error("the proof {file} is not a JSON object", file=proof_file)
    return check_inclusion(verifier, token, proof=proof, leaf_index=leaf_index, result=result,
                           policy=InclusionPolicy(WitnessPolicy(witnesses, outage)))
