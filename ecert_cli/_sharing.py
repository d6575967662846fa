"""``ecert key …``, ``ecert share …``, ``ecert consent …``: the registry side of sharing
(sharing and requester keys, entitlements 用证清单, consent codes 用证码)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from ecert._formats.trustlist import Entitlement
from ecert_cli._app import (
    EXIT_DENIED,
    EXIT_ERROR,
    cli,
    emit,
    fail,
    json_mode,
    json_option,
    settings,
)
from ecert_cli._copy_card import (
    CARD_SIZES,
    card_target,
    copy_verifier,
    say_card,
    write_cards,
)
from ecert_cli._duration import Duration
from ecert_cli._i18n import N_, _, in_english
from ecert_cli._paging import emit_page, page_options
from ecert_cli._render import fmt, key_json, local_time, safe, say


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@cli.group("key")
def key_group() -> None:
    """Sharing and requester keys (agency signing keys: 'ecert agency rotate-key')."""


@key_group.command("create-requester")
@click.argument("agency")
@json_option
def key_create_requester(agency: str) -> None:
    """Give AGENCY a requester key, which signs its requests to other regions."""
    _requester_key(agency, replace=False)


@key_group.command("rotate-requester")
@click.argument("agency")
@json_option
def key_rotate_requester(agency: str) -> None:
    """Replace AGENCY's requester key."""
    _requester_key(agency, replace=True)


def _requester_key(agency: str, *, replace: bool) -> None:
    with settings().open_registry() as registry:
        key = (registry.rotate_requester_key(agency) if replace
               else registry.create_requester_key(agency))
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


# -- entitlements (用证清单) ---------------------------------------------------------------------


def entitlement_json(value: Entitlement) -> dict[str, Any]:
    """An entitlement as the trust list publishes it."""
    return value.to_json()


@cli.group("share")
def share_group() -> None:
    """Entitlements: who may fetch which certificates, for what (用证清单)."""


@share_group.command("allow")
@click.argument("requester")
@click.option("--types", "types", required=True, metavar="T,…",
              help="Certificate types the requester may fetch.")
@click.option("--purposes", required=True, metavar="P,…",
              help="Purposes (用证事由) it may state.")
@click.option("--claims", default=None, metavar="A,…",
              help="Only these claims are given (default: every claim of the type).")
@click.option("--without-consent", is_flag=True,
              help="By statute: no consent code needed (needs a second operator's "
                   "approval).")
@json_option
def share_allow(requester: str, types: str, purposes: str, claims: str | None,
                without_consent: bool) -> None:
    """Let REQUESTER (REGION/agency-code, or REGION) fetch certificates of --types."""
    with settings().open_registry() as registry:
        value = registry.share_allow(
            requester, _split(types), _split(purposes),
            None if claims is None else _split(claims), without_consent)
    emit(entitlement_json(value), fmt("entitlement {id}: {requester} may fetch {types}; "
                                      "publish to announce it", id=value.id,
                                      requester=value.requester,
                                      types=", ".join(value.types)))


@share_group.command("list")
@click.option("--ended", is_flag=True, help="Also entitlements that were revoked or ended.")
@page_options()
@json_option
def share_list(ended: bool, limit: int, after: str | None) -> None:
    """The entitlements in force."""
    with settings().open_registry() as registry:
        page = registry.share_list(ended=ended, limit=limit, after=after)

    def human() -> None:
        if not page.items:
            say("no entitlements")
        for e in page.items:
            consent = (fmt("without consent (by statute)") if e.without_consent
                       else fmt("with the holder's consent"))
            claims = ", ".join(e.claims) if e.claims is not None else fmt("all claims")
            click.echo(f"{safe(e.id):<16} {safe(e.requester)}  {safe(', '.join(e.types))}")
            click.echo(f"{'':<16} " + fmt("purposes: {purposes}",
                                          purposes=safe("; ".join(e.purposes))))
            click.echo(f"{'':<16} " + fmt("claims: {claims}; {consent}",
                                          claims=safe(claims), consent=consent))

    emit_page(page, entitlement_json, human)


@share_group.command("revoke")
@click.argument("entitlement_id", metavar="ID")
@json_option
def share_revoke(entitlement_id: str) -> None:
    """End entitlement ID now."""
    with settings().open_registry() as registry:
        value = registry.share_revoke(entitlement_id)
    emit(entitlement_json(value), fmt("entitlement {id} ended; publish to announce it",
                                      id=value.id))


@share_group.command("limits")
@click.option("--fetches-per-hour", type=click.IntRange(0), default=None,
              help="Fetches per requester and hour (0: none).")
@click.option("--checks-per-hour", type=click.IntRange(0), default=None,
              help="Checks (核验) per requester and hour (0: none).")
@click.option("--checks-per-subject", type=click.IntRange(0), default=None,
              help="Checks per requester and certificate or holder, per hour.")
@click.option("--grants-per-holder", type=click.IntRange(0), default=None,
              help="Consent codes a holder grants on their own channel per hour.")
@json_option
def share_limits(fetches_per_hour: int | None, checks_per_hour: int | None,
                 checks_per_subject: int | None, grants_per_holder: int | None) -> None:
    """Show the sharing service's rate limits, or set those given (a trust admin)."""
    changes = (fetches_per_hour, checks_per_hour, checks_per_subject, grants_per_holder)
    with settings().open_registry() as registry:
        value = registry.share_limits() if all(c is None for c in changes) else \
            registry.set_share_limits(fetches_per_hour=fetches_per_hour,
                                      checks_per_hour=checks_per_hour,
                                      checks_per_subject=checks_per_subject,
                                      grants_per_holder=grants_per_holder)
    emit(value.to_json(), fmt("per requester and hour: {fetches} fetches, {checks} checks; "
                              "per requester and subject and hour: {subject} checks; "
                              "per holder and "
                              "hour: {grants} consent codes of their own",
                              fetches=value.fetches_per_hour, checks=value.checks_per_hour,
                              subject=value.checks_per_subject,
                              grants=value.grants_per_holder))


# -- consent codes (用证码) ----------------------------------------------------------------------


@cli.group("consent")
def consent_group() -> None:
    """Consent codes (用证码): a holder lets one requester fetch, once, for a purpose."""


@consent_group.command("grant")
@click.option("--holder-id", required=True, help="The holder's id (as on the certificate).")
@click.option("--to", "to", required=True, metavar="REGION/AGENCY",
              help="The requesting agency the code is for.")
@click.option("--types", "types", required=True, metavar="T,…",
              help="Certificate types it may fetch.")
@click.option("--purpose", required=True, help="The purpose (用证事由) it must state.")
@click.option("--ttl", type=Duration(), default="1h", show_default=True,
              help="How long the code holds (at most 30 days).")
@json_option
def consent_grant(holder_id: str, to: str, types: str, purpose: str, ttl: Any) -> None:
    """Make a consent code on the holder's behalf (at the service window); print it once."""
    with settings().open_registry() as registry:
        made = registry.consent_grant(holder_id, to, _split(types), purpose, ttl)
    def human() -> None:
        click.echo(made.code)
        say("consent {id} for {to}, valid until {expires}; give the code to the holder, it "
            "is not shown again", id=made.id, to=to,
            expires=local_time(_instant(made.expires_at)))

    emit({"code": made.code, "id": made.id, "expires_at": made.expires_at}, human)


@consent_group.command("revoke")
@click.argument("consent_id", metavar="ID")
@json_option
def consent_revoke(consent_id: str) -> None:
    """Revoke consent ID (not yet used)."""
    with settings().open_registry() as registry:
        registry.consent_revoke(consent_id)
    emit({"id": consent_id, "revoked": True}, fmt("consent {id} revoked", id=consent_id))


@consent_group.command("list")
@click.option("--holder-id", required=True, help="The holder's id.")
@json_option
def consent_list(holder_id: str) -> None:
    """The consents a holder gave, newest first (never the codes)."""
    with settings().open_registry() as registry:
        found = registry.consents(holder_id)

    def human() -> None:
        if not found:
            say("no consents")
        for c in found:
            state = (fmt("revoked") if c.revoked_at is not None else
                     fmt("used") if c.used_at is not None else fmt("open"))
            # The agencies whose certificates it releases (* for a consent from before
            # consents were scoped: any agency's).
            agencies = "*" if c.scope is None else ", ".join(sorted({a for a, _ in c.scope}))
            click.echo(f"{safe(c.id)}  {safe(c.requester)}  {safe(', '.join(c.types))}  "
                       f"{safe(c.purpose)}  {state}  "
                       + local_time(_instant(c.expires_at)) + f"  {safe(agencies)}")

    emit([c._asdict() for c in found], human)


def _instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# -- use records ---------------------------------------------------------------------------------


@cli.command("uses")
@click.option("--holder-id", required=True, help="The holder's id.")
@page_options()
@json_option
def uses(holder_id: str, limit: int, after: str | None) -> None:
    """Who fetched or checked a holder's certificates through the sharing service, newest
    first."""
    with settings().open_registry() as registry:
        page = registry.uses(holder_id, limit=limit, after=after)

    def human() -> None:
        if not page.items:
            say("no use records")
        for u in page.items:
            outcome = (fmt("granted") if u.problem is None
                       else fmt("refused: {problem}", problem=u.problem))
            consent = fmt("by statute") if u.consent == "by statute" else (u.consent or "-")
            kind = fmt("check") if u.kind == "check" else fmt("fetch")
            click.echo(f"{local_time(_instant(u.at))}  {kind}  {safe(u.requester)}  "
                       f"{safe(u.purpose)}  {outcome}")
            click.echo("    " + fmt("staff {staff} ({role}), item {item}, case {case}, "
                                    "consent {consent}", staff=safe(u.staff_id),
                                    role=safe(u.staff_role), item=safe(u.service_item),
                                    case=safe(u.case), consent=safe(consent)))
            for cert_id in u.certificates:
                click.echo("    " + safe(cert_id))

    emit_page(page, lambda u: u.to_json(), human)


# -- fetching from another region's sharing service ------------------------------------------

#: Seconds ``share fetch`` waits for the whole exchange (connect, send, answer).
FETCH_DEADLINE = 30.0


def _copy_json(token: str, log_index: int | None) -> dict[str, Any]:
    """What ``share fetch`` says of a copy (decoded, not verified: ``ecert verify`` it);
    ``log_index``: the serving log's entry that commits to it (``--leaf-index``)."""
    from ecert._formats.copy import CopyClaims
    from ecert._formats.jose import parse_compact

    claims = CopyClaims.from_payload(parse_compact(token, max_bytes=1 << 20).payload)
    return {"token": token, "copy_of": claims.copy_of, "type": claims.original.vct,
            "region": claims.region, "audience": claims.aud, "purpose": claims.purpose,
            "case": claims.case, "claims": dict(claims.claims),
            "expires_at": _instant(claims.exp).isoformat(), "log_index": log_index}


def _failed(message: str, code: str, **values: object) -> NoReturn:
    """One line (``message`` translated), exit code 2; JSON in English."""
    with in_english():
        english = fmt(message, **values)
    fail(fmt(message, **values), code, english=english)


def _exchange(url: str, request: Any, signer: Any, requester: str) -> Any:
    """Send ``request`` within :data:`FETCH_DEADLINE` seconds in all (a thread bounds the
    whole exchange: a socket timeout alone bounds each read, not a server that drips)."""
    import threading

    from ecert.sharing.client import send

    clock = settings().clock
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(send(url, request, signer, requester, clock=clock,
                                timeout=FETCH_DEADLINE))
        except Exception as e:  # handed to the caller's thread
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(FETCH_DEADLINE)
    if not outcome:
        raise TimeoutError(f"no answer within {FETCH_DEADLINE:g} s")
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


@share_group.command("fetch")
@click.argument("url")
@click.option("--agency", required=True, help="The requesting agency (ours), whose "
              "requester key signs the request.")
@click.option("--holder-id", required=True, help="The holder's id.")
@click.option("--type", "types", required=True, multiple=True, metavar="T",
              help="A certificate type to fetch (repeatable).")
@click.option("--purpose", required=True, help="The purpose (用证事由).")
@click.option("--case", "case_no", required=True, help="The case number (业务流水号).")
@click.option("--service-item", default="-", show_default=True,
              help="The service item code (事项编码).")
@click.option("--staff-id", default=None, help="Who handles the case (default: "
              "ECERT_OPERATOR, else '-').")
@click.option("--staff-role", default="-", show_default=True, help="Their role.")
@click.option("--consent", default=None, help="The holder's consent code (用证码).")
@click.option("--card", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Also draw each copy that verifies as a printable card "
              "(.png or .svg; several copies: FILE-1, FILE-2…).")
@click.option("--card-size", type=click.Choice(CARD_SIZES, case_sensitive=False),
              default="a5", show_default=True, help="The card's size: A5 or A4, landscape.")
@json_option
def share_fetch(url: str, agency: str, holder_id: str, types: tuple[str, ...], purpose: str,
                case_no: str, service_item: str, staff_id: str | None, staff_role: str,
                consent: str | None, card: Path | None, card_size: str) -> None:
    """Fetch a holder's certificates from another region's sharing service at URL (its
    base URL, or its /v1/copies), as purpose-bound copies, signed with --agency's
    requester key. Run in our own registry home.

    With --card, each copy is verified by our region's verifier, for our agency and the
    purpose, and drawn as a card watermarked with its use, whose QR code verifies it.
    """
    from ecert._formats.sharing import CaseContext, ShareRequest
    from ecert.errors import FormatError

    s = settings()
    if card is not None:
        card = card_target(card)  # before anything is sent: a consent code works once
    target = url.rstrip("/")
    if not target.endswith("/v1/copies"):
        target += "/v1/copies"
    context = CaseContext(purpose=purpose, case=case_no, service_item=service_item,
                          staff_id=staff_id or s.operator or "-", staff_role=staff_role,
                          consent=consent)
    request = ShareRequest(holder_id, tuple(types), context)
    with s.open_registry() as registry:
        signer = registry.requester_signer(agency)
        requester = f"{registry.region.code}/{agency.strip().lower()}"
        anchor = registry.anchor()
    verifier = copy_verifier(anchor) if card is not None else None
    try:
        answer = _exchange(target, request, signer, requester)
    except FormatError as e:
        _failed(N_("the service at {url} answered nonsense: {why}"), "bad_answer", url=target,
                why=e.message)
    except OSError as e:
        _failed(N_("cannot reach {url}: {why}"), "network_error", url=target,
                why=getattr(e, "reason", None) or e.strerror or e)
    if answer.problem is not None:
        problem = answer.problem
        if json_mode():
            click.echo(problem.to_json().decode("utf-8"))
        refusal = problem.status in (401, 403, 429)
        message = (N_("refused by {url}: {code} ({title})") if refusal
                   else N_("the service at {url} answered {code} ({title})"))
        click.echo(_("ecert: error: {message}").format(message=fmt(
            message, url=target, code=problem.code, title=problem.title)), err=True)
        sys.exit(EXIT_DENIED if refusal else EXIT_ERROR)
    try:
        copies = [_copy_json(item["token"], answer.log_index)
                  for item in (answer.value or {}).get("copies", [])]
    except (FormatError, KeyError, TypeError) as e:
        _failed(N_("the service at {url} answered nonsense: {why}"), "bad_answer", url=target,
                why=e)

    cards = [] if card is None or verifier is None else write_cards(
        copies, card, card_size.lower(), verifier, requester, purpose)

    def human() -> None:
        if not copies:
            say("no certificate of the holder matches: nothing was fetched")
        for n, c in enumerate(copies, 1):
            say("copy {n}: of certificate {id} ({type}), for the purpose {purpose}, case "
                "{case}, valid until {expires}", n=n, id=c["copy_of"], type=c["type"],
                purpose=c["purpose"], case=c["case"],
                expires=local_time(datetime.fromisoformat(c["expires_at"])))
            click.echo(c["token"])
            if cards:
                say_card(n, cards[n - 1])
        if copies and copies[0]["log_index"] is not None:
            say("served as entry {index} of the region's log: ecert verify COPY "
                "--require-inclusion --leaf-index {index}", index=copies[0]["log_index"])

    emit({"copies": [{**c, **o.to_json()} for c, o in zip(copies, cards, strict=True)]
          if cards else copies}, human)
    failed = [o for o in cards if o.card is None]
    if failed:  # the copies are printed all the same: a consent code works once
        worst = min(failed, key=lambda o: o.exit_code)
        fail(worst.message, str(worst.code), worst.exit_code, json_output=False,
             english=worst.english)
