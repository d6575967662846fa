"""``ecert demo``: the whole life of a certificate in a throw-away registry."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

import ecert
from ecert import _samples
from ecert_cli._app import cli, emit, json_mode, json_option

_DEMO_PASSPHRASE = "demo only: throw-away registry"  # noqa: S105 - deleted after the demo


@cli.command("demo")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the demo registry and bundle in this directory.")
@json_option
def demo(keep: Path | None) -> None:
    """Issue, publish, verify, suspend, reinstate and revoke a sample business licence."""
    steps: list[dict[str, Any]] = []

    def step(title: str, **facts: Any) -> None:
        steps.append({"step": title, **facts})
        if not json_mode():
            click.secho(f"\n== {len(steps)}. {title}", bold=True)
            for name, value in facts.items():
                click.echo(f"   {name}: {value}")

    with tempfile.TemporaryDirectory(prefix="ecert-demo-") as scratch:
        root = keep or Path(scratch)
        sample = _samples.region("GD")
        registry = ecert.Registry.init(root / "home", region="GD", name=sample["name"],
                                       base_url=sample["base_url"],
                                       passphrase=_DEMO_PASSPHRASE, operator="demo-clerk")
        with registry:
            _samples.populate(registry)
            step("registry created", region=f"GD {sample['name']}", home=root / "home",
                 types=", ".join(t.code for t in registry.types()),
                 agencies=", ".join(a.code for a in registry.agencies()))
            claims = _samples.claims("business-licence-gd")
            cert = registry.issue("cn.business-licence", "gd-amr", holder_id=claims["uscc"],
                                  holder_name=claims["name"], claims=claims)
            step("business licence issued by gd-amr", id=cert.id, holder=cert.holder_name,
                 holder_pseudonym=cert.holder,
                 valid_until=cert.valid_until.date() if cert.valid_until else "no expiry",
                 token_bytes=len(cert.token))
            bundle = root / "bundle"

            def publish_and_verify(title: str) -> ecert.VerificationResult:
                report = registry.publish(bundle)
                result = ecert.Verifier.from_bundle(bundle).verify(cert.token)
                step(title, published=f"trust list #{report.sequence} to {bundle}",
                     verified=result.status.value,
                     errors=", ".join(result.errors) or "none")
                return result

            publish_and_verify("published the bundle and verified offline")
            registry.suspend(cert.id)
            publish_and_verify("suspended, republished, verified")
            registry.reinstate(cert.id)
            publish_and_verify("reinstated, republished, verified")
            registry.revoke(cert.id, ecert.RevocationReason.PRIVILEGE_WITHDRAWN)
            final = publish_and_verify("revoked (privilege-withdrawn), republished, verified")
            tampered = cert.token[:-8] + ("A" * 8 if not cert.token.endswith("A" * 8) else "B" * 8)
            forged = ecert.Verifier.from_bundle(bundle).verify(tampered)
            step("a tampered token", verified=forged.status.value,
                 errors=", ".join(forged.errors))
            step("event record", events="; ".join(
                f"{e.operator} {e.action}" for e in registry.events(cert.id)))
    emit({"steps": steps, "final_status": final.status.value}, "\ndemo finished"
         + (f": registry and bundle kept in {keep}" if keep else ""))
