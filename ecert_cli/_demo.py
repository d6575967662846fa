"""``ecert demo``: the whole life of a certificate in a throw-away registry."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import click

import ecert
from ecert import _samples
from ecert_cli._app import cli, emit, json_mode, json_option, settings
from ecert_cli._i18n import N_, _, is_chinese
from ecert_cli._render import fmt, local_day, safe


class Msg:
    """A fact of the demo that is a sentence: English in the JSON (language-independent),
    translated on the terminal."""

    def __init__(self, template: str, /, **values: Any) -> None:
        self.template, self.values = template, values

    def english(self) -> str:
        return self.template.format(**self.values)

    def shown(self) -> str:
        return fmt(self.template, **self.values)


_FACTS = {"region": N_("region"), "home": N_("home"), "admin": N_("admin"),
          "clerk": N_("clerk"), "types": N_("types"), "agencies": N_("agencies"),
          "id": N_("id"), "holder": N_("holder"), "holder_pseudonym": N_("holder pseudonym"),
          "valid_until": N_("valid until"), "token_bytes": N_("token bytes"),
          "published": N_("published"), "verified": N_("verified"), "errors": N_("errors"),
          "refused": N_("refused"), "entries": N_("entries"), "intact": N_("intact"),
          "log_entries": N_("log entries"), "findings": N_("findings")}

_DEMO_PASSPHRASE = "demo only: throw-away registry"  # noqa: S105 - deleted after the demo
_ADMIN_PASSPHRASE = "demo only: the admin's key"  # noqa: S105
#: PBKDF2 rounds of the throwaway demo registry's key files (a kept one gets the default).
_THROWAWAY_KDF_ROUNDS = 10_000
_CLERK_PASSPHRASE = "demo only: the clerk's key"  # noqa: S105


@cli.command("demo")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the demo registry and bundle in this directory (its key files then "
                   "get the full key-derivation cost).")
@json_option
def demo(keep: Path | None) -> None:
    """Issue, publish, verify, suspend, reinstate and revoke a sample business licence,
    as accountable operators, then catch an insider's raw-SQL edit with the audit."""
    steps: list[dict[str, Any]] = []
    clock = settings().clock

    def step(title: str, **facts: Any) -> None:
        steps.append({"step": title, **{k: v.english() if isinstance(v, Msg) else v
                                        for k, v in facts.items()}})
        if not json_mode():
            click.secho(f"\n== {len(steps)}. {_(title)}", bold=True)
            for name, value in facts.items():
                shown = value.shown() if isinstance(value, Msg) else (
                    _("yes") if value is True else _("no") if value is False else safe(value))
                click.echo(f"   {_(_FACTS.get(name, name))}{'：' if is_chinese() else ': '}"
                           f"{shown}")

    # The throwaway registry's key files (deleted at the end, under passphrases written in
    # this file) need no costly key derivation; a kept one gets the full cost.
    rounds = None if keep is not None else _THROWAWAY_KDF_ROUNDS
    with tempfile.TemporaryDirectory(prefix="ecert-demo-") as scratch:
        root = keep or Path(scratch)
        home = root / "home"
        sample = _samples.region("GD")
        admin = ecert.OperatorCredential("demo-admin", passphrase=_ADMIN_PASSPHRASE)
        registry = ecert.Registry.init(home, region="GD", name=sample["name"],
                                       base_url=sample["base_url"], admin=admin,
                                       passphrase=_DEMO_PASSPHRASE, clock=clock,
                                       kdf_rounds=rounds)
        with registry:
            _samples.populate(registry)
            registry.add_operator("demo-clerk", roles=["clerk"], agencies=["gd-amr"],
                                  passphrase=_CLERK_PASSPHRASE)
            step(N_("registry created by its first admin"), region=f"GD {sample['name']}",
                 home=home, admin=Msg("demo-admin (every role)"),
                 clerk=Msg("demo-clerk (clerk of gd-amr only)"),
                 types=", ".join(t.code for t in registry.types()),
                 agencies=", ".join(a.code for a in registry.agencies()))
        clerk = ecert.Registry.open(
            home, operator=ecert.OperatorCredential("demo-clerk", passphrase=_CLERK_PASSPHRASE),
            passphrase=_DEMO_PASSPHRASE, clock=clock, kdf_rounds=rounds)
        registry = ecert.Registry.open(home, operator=admin, passphrase=_DEMO_PASSPHRASE,
                                       clock=clock, kdf_rounds=rounds)
        with registry, clerk:
            claims = _samples.claims("business-licence-gd")
            cert = clerk.issue("cn.business-licence", "gd-amr", holder_id=claims["uscc"],
                               holder_name=claims["name"], claims=claims)
            step(N_("business licence issued by demo-clerk for gd-amr"), id=cert.id,
                 holder=cert.holder_name, holder_pseudonym=cert.holder,
                 valid_until=_LastDay(cert.valid_until) if cert.valid_until
                 else Msg("no expiry"),
                 token_bytes=len(cert.token))
            bundle = root / "bundle"

            def publish_and_verify(title: str) -> ecert.VerificationResult:
                report = registry.publish(bundle)
                result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token)
                step(title, published=Msg("trust list #{sequence} and {entries} log entries "
                                          "to {bundle}", sequence=report.sequence,
                                          entries=report.log_size, bundle=bundle),
                     verified=_Status(result.status.value),
                     errors=", ".join(result.errors) or Msg("none"))
                return result

            publish_and_verify(N_("published the bundle and the log; verified offline"))
            clerk.suspend(cert.id)
            publish_and_verify(N_("suspended by demo-clerk, republished, verified"))
            clerk.reinstate(cert.id)
            publish_and_verify(N_("reinstated by demo-clerk, republished, verified"))
            try:
                clerk.revoke(cert.id, ecert.RevocationReason.PRIVILEGE_WITHDRAWN)
                refused: Any = Msg("not refused (unexpected)")
            except ecert.AccessError as e:
                refused = f"{e.code}: {e.message}"
            step(N_("demo-clerk tries to revoke (an officer's role)"), refused=refused)
            registry.revoke(cert.id, ecert.RevocationReason.PRIVILEGE_WITHDRAWN)
            final = publish_and_verify(N_("revoked by demo-admin (privilege-withdrawn), "
                                          "republished, verified"))
            tampered = cert.token[:-8] + ("A" * 8 if not cert.token.endswith("A" * 8) else "B" * 8)
            forged = ecert.Verifier.from_bundle(bundle, clock=clock).verify(tampered)
            step(N_("a tampered token"), verified=_Status(forged.status.value),
                 errors=", ".join(forged.errors))
            step(N_("the log of this certificate"), entries="; ".join(
                f"#{e.seq} {e.operator} {e.action}" for e in registry.events(cert.id)))
            report = registry.audit(bundle=bundle)
            step(N_("audit verify"), intact=report.intact, log_entries=report.log_size)
            # An insider with the database file quietly reinstates the licence.
            with sqlite3.connect(home / "registry.db") as db:
                db.execute("UPDATE certificates SET status = 'valid' WHERE id = ?", (cert.id,))
            report = registry.audit(bundle=bundle)
            step(N_("an insider sets the licence back to valid with raw SQL; audit verify "
                    "again"),
                 intact=report.intact,
                 findings="; ".join(f"{f.kind} {f.subject}" for f in report.findings))
    emit({"steps": steps, "final_status": final.status.value,
          "tampering_detected": not report.intact},
         "\n" + (fmt("demo finished: registry and bundle kept in {directory}", directory=keep)
                 if keep else _("demo finished")))


class _Status(Msg):
    """A verification status: its code in the JSON, in words on a Chinese terminal."""

    def __init__(self, status: str) -> None:
        super().__init__("{status}", status=status)

    def english(self) -> str:
        return str(self.values["status"])

    def shown(self) -> str:
        from ecert_cli._verify import status_words

        return status_words(self.values["status"])


class _LastDay(Msg):
    """The last valid day: the UTC date in the JSON (as before), the local day on screen."""

    def __init__(self, until: Any) -> None:
        super().__init__("{day}", day=until)

    def english(self) -> str:
        return str(self.values["day"].date())

    def shown(self) -> str:
        from datetime import timedelta

        return local_day(self.values["day"] - timedelta(seconds=1))
