"""Human output cannot be faked: a holder name or claim with a line break, a carriage
return, a line/paragraph separator, a bidi override or isolate, or any C0/C1 control is
shown escaped, so ``verify`` cannot gain an extra "issuer:" line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ecert
from ecert_cli._render import _UNSAFE, safe
from tests.support.cli import Cli, agency_args, type_args
from tests.support.clock import FakeClock

DATA = Path(ecert.__file__).parent / "_data"
BL = "cn.business-licence"

HOSTILE = [
    "Alice\nissuer: 广东省市场监督管理局 (gd-amr, GD)",
    "Alice\r\nissuer: Fake Agency (fake, XX)",
    "Alice\rissuer: Fake Agency (fake, XX)",
    "Alice\u2028issuer: Fake Agency (fake, XX)",
    "Alice\u2029issuer: Fake",
    "Alice\x85issuer: Fake",  # NEL, a C1 control that some terminals break lines at
    "Alice\x0bissuer: Fake\x0c",
    "\u202eAlice\u202c (gd-amr, GD)",
    "\u2066Alice\u2069 \u200f\u061c",
    "Alice\x1b[2K\x1b[1Aissuer: Fake",  # ANSI: erase the line, move up
]


def test_safe_escapes_what_could_fake_a_line() -> None:
    assert safe("a\nb") == "a\\nb"
    assert safe("a\rb\tc") == "a\\rb\\tc"
    assert safe("\u202egnp.exe") == "\\u202egnp.exe"
    assert safe("x\x1b[31m") == "x\\x1b[31m"
    assert safe("\x85\x9f\x7f") == "\\x85\\x9f\\x7f"
    assert safe("\u2028\u2029\u2066\u2069\u200e\u200f\u061c") == (
        "\\u2028\\u2029\\u2066\\u2069\\u200e\\u200f\\u061c")


def test_safe_keeps_what_names_need() -> None:
    # Chinese, Uyghur (Arabic script), Tibetan, Mongolian, ZWJ/ZWNJ, variation selectors.
    for name in ("张三", "艾力·买买提", "ئەلى", "བཀྲ་ཤིས་", "ᠪᠠᠲᠤ", "👩\u200d💻",
                 "a\u200cb", "葛\U000e0100", "O'Brien-Smith", "\\path"):
        assert safe(name) == name


@given(st.text())
def test_safe_is_one_line_without_unsafe_characters(text: str) -> None:
    shown = safe(text)
    assert len(shown.splitlines()) <= 1
    assert not any(ord(c) in _UNSAFE for c in shown)
    if not any(ord(c) in _UNSAFE for c in text):
        assert shown == text


@pytest.fixture
def gd(tmp_path: Path, database_url: str | None, clock: FakeClock) -> Cli:
    run = Cli(tmp_path / "home", database_url, env={
        "ECERT_PASSPHRASE": "registry pass", "ECERT_OPERATOR": "admin",
        "ECERT_OPERATOR_PASSPHRASE": "admin pass", "ECERT_HOME": None,
        "ECERT_DATABASE_URL": None}, clock=clock)
    run.ok("init", "--region", "GD", "--name", "广东省", "--base-url",
           "https://ecert.gd.example")
    for code in (BL, "cn.food-business-licence", "cn.professional-qualification"):
        run.ok(*type_args(code))
    run.ok(*agency_args("gd-amr"))
    return run


def _issue(run: Cli, tmp_path: Path, name: str, scope: str) -> dict[str, Any]:
    """A certificate signed by gd-amr whose holder name and business scope are hostile.

    Issuance may refuse such text (input validation is the first defence); then the
    agency's key signs it directly, as a registry with older rules, or a compromised
    front end, would have: the output must be safe whatever a valid signature carries.
    """
    claims = json.loads((DATA / "claims" / "business-licence-gd.json").read_text("utf-8"))
    claims["business_scope"] = scope
    claims["name"] = name  # the type binds the holder name to this claim
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(claims, ensure_ascii=False), "utf-8")
    result = run("issue", "--type", BL, "--agency", "gd-amr", "--holder-id", claims["uscc"],
                 "--holder-name", name, "--claims", str(path), "--json")
    if result.exit_code == 0:
        return dict(json.loads(result.stdout))
    assert result.exit_code == 2, result.output
    return _signed_anyway(run, name, scope)


def _signed_anyway(run: Cli, name: str, scope: str) -> dict[str, Any]:
    import base64

    from ecert._formats.certificate import CertificateClaims

    plain = _issue(run, Path(run.home).parent, "Alice", "scope")
    payload = json.loads(base64.urlsafe_b64decode(plain["token"].split(".")[1] + "=="))
    claims = CertificateClaims.from_payload(payload)
    claims = claims._replace(holder_name=name,
                             claims={**claims.claims, "business_scope": scope})
    with ecert.Registry.open(run.home, database_url=run.database_url,
                             passphrase="registry pass") as registry:
        token = claims.sign(registry._ctx.signer(plain["kid"]))
    return {**plain, "token": token, "holder_name": name}


def _plant(run: Cli, cert_id: str, name: str, scope: str) -> None:
    """Write ``name`` and ``scope`` into a stored certificate with raw SQL."""
    import sqlalchemy

    with ecert.Registry.open(run.home, database_url=run.database_url,
                             passphrase="registry pass") as registry:
        engine = registry.engine
        with engine.begin() as conn:
            claims = dict(json.loads(conn.execute(sqlalchemy.text(
                "SELECT claims FROM certificates WHERE id = :id"), {"id": cert_id}).scalar_one())
                if engine.dialect.name == "sqlite" else conn.execute(sqlalchemy.text(
                    "SELECT claims FROM certificates WHERE id = :id"),
                    {"id": cert_id}).scalar_one())
            claims["business_scope"] = scope
            cast = "CAST(:c AS JSON)" if engine.dialect.name == "postgresql" else ":c"
            conn.execute(sqlalchemy.text(
                f"UPDATE certificates SET holder_name = :n, claims = {cast} WHERE id = :id"),
                {"n": name, "c": json.dumps(claims, ensure_ascii=False), "id": cert_id})


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize(("lang", "via"), [("en", "issue"), ("zh", "issue"), ("en", "sign")])
def test_verify_output_cannot_gain_an_issuer_line(gd: Cli, tmp_path: Path, name: str,
                                                  lang: str, via: str) -> None:
    cert = (_issue(gd, tmp_path, name, "scope\nissuer: forged") if via == "issue"
            else _signed_anyway(gd, name, "scope\nissuer: forged"))
    bundle = tmp_path / "bundle"
    gd.ok("publish", str(bundle), "--no-collect")
    out = gd.ok("verify", "--bundle", str(bundle), cert["token"], env={"ECERT_LANG": lang})
    lines = out.stdout.splitlines()
    issuer = "issuer:" if lang == "en" else "发证机构："
    assert sum(line.startswith(issuer) for line in lines) == 1, out.stdout
    assert len(lines) == 4  # VALID, holder, issuer, valid
    for line in lines:
        assert not any(ord(c) in _UNSAFE for c in line), repr(line)
    # JSON keeps the value exactly as signed.
    data = json.loads(gd.ok("verify", "--bundle", str(bundle), cert["token"],
                            "--json").stdout)
    assert data["certificate"]["holder_name"] == cert["holder_name"]


@pytest.mark.parametrize("name", HOSTILE[:4])
def test_show_and_list_escape(gd: Cli, tmp_path: Path, name: str) -> None:
    cert = _issue(gd, tmp_path, name, "line one\u2028issuer: forged")
    if cert["holder_name"] != name or "issuer: forged" not in json.dumps(cert):
        # Issuance refused the text: an insider plants it in the row instead, which show and
        # list must print safely all the same.
        _plant(gd, cert["id"], name, "line one\u2028issuer: forged")
    shown = gd.ok("show", cert["id"]).stdout.splitlines()
    assert sum(line.startswith("issuer:") for line in shown) == 1
    assert sum(line.startswith("holder:") for line in shown) == 1
    assert any("\\u2028issuer: forged" in line for line in shown)
    listed = gd.ok("list").stdout.splitlines()
    assert len(listed) == 1
    for line in shown + listed:
        assert not any(ord(c) in _UNSAFE for c in line), repr(line)


def test_error_lines_are_escaped(gd: Cli) -> None:
    message = gd.fails("show", "x\u202e\nissuer: forged")  # one line, checked by fails()
    assert "\u202e" not in message
    assert "\\u202e" in message
