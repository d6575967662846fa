"""Input that can be trusted, through the registry and the CLI: holder id schemes and
holder binding per type, code claims, text fields, the short QR form, 长期, file encodings,
and hypothesis runs showing that no input ends in anything but an EcertError / exit 2."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st

import ecert
from ecert import _samples
from ecert.qr import MAX_TEXT_AT_DEFAULT, MAX_VERSION, qr_text
from ecert.registry import _issuance
from tests.support import FakeClock, RegistryFactory, issue_business_licence, uscc
from tests.support.cli import Cli, assert_no_traceback

BL = "cn.business-licence"
DL = "cn.driving-licence"
BL_CLAIMS = _samples.claims("business-licence-gd")
HOLDERS = list(csv.DictReader((Path(__file__).parent / "data" / "holders.csv")
                              .read_text("utf-8").splitlines()))
#: Which sample region and agency issue each type of holders.csv.
ISSUERS = {BL: ("GD", "gd-amr"), "cn.food-business-licence": ("SH", "sh-amr"),
           DL: ("ZJ", "zj-psb-traffic"), "cn.professional-qualification": ("GD", "gd-hrss")}
FULL_WIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})


def refused(call: Any, code: str) -> ecert.EcertError:
    with pytest.raises(ecert.EcertError) as info:
        call()
    assert info.value.code == code, info.value.message
    assert isinstance(info.value, ecert.InputError)
    return info.value


# -- the sample holders --------------------------------------------------------------------------


@pytest.mark.parametrize("holder", HOLDERS, ids=[h["type"] for h in HOLDERS])
def test_sample_holders_are_issued_and_found_by_id_as_typed(
        make_registry: RegistryFactory, holder: dict[str, str]) -> None:
    region, agency = ISSUERS[holder["type"]]
    registry = make_registry(region)
    claims = _samples.claims(Path(holder["claims_file"]).stem)
    cert = registry.issue(holder["type"], agency, holder_id=holder["holder_id"],
                          holder_name=holder["holder_name"], claims=claims)
    # Typed on a Chinese keyboard (full width, lower case): the same holder.
    typed = holder["holder_id"].lower().translate(FULL_WIDTH)
    assert [c.id for c in registry.find(holder_id=typed)] == [cert.id]
    assert registry.get_type(holder["type"]).holder_id_scheme in ("uscc", "resident-id")


def test_a_mistyped_holder_id_is_refused_with_the_reason(registry: ecert.Registry) -> None:
    good = BL_CLAIMS["uscc"]
    for holder_id, code in ((good[:-1] + "X", "holder_id_check"),
                            (good[:-1], "holder_id_length"),
                            (good[:5] + "O" + good[6:], "holder_id_characters")):
        error = refused(lambda h=holder_id: issue_business_licence(
            registry, holder_id=h, claims=BL_CLAIMS), code)
        assert "unified social credit code" in error.message or "GB 32100" in error.message
    assert registry.count() == 0


def test_full_width_ids_and_codes_are_normalised(registry: ecert.Registry) -> None:
    claims = {**BL_CLAIMS, "uscc": BL_CLAIMS["uscc"].lower().translate(FULL_WIDTH)}
    cert = registry.issue(BL, "gd-amr", holder_id=claims["uscc"], holder_name=claims["name"],
                          claims=claims)
    assert cert.claims["uscc"] == BL_CLAIMS["uscc"]
    assert cert.holder == registry.holder_pseudonym(BL_CLAIMS["uscc"])
    serial = cert.id.split(".")[-3]
    assert registry.get(serial.translate(FULL_WIDTH)).id == cert.id
    # Codes typed with full-width letters (type, agency) name the same ones.
    again = registry.issue("ｃｎ．ｂｕｓｉｎｅｓｓ－ｌｉｃｅｎｃｅ", "ＧＤ-ａｍｒ",
                           holder_id=BL_CLAIMS["uscc"], holder_name=claims["name"],
                           claims=BL_CLAIMS)
    assert again.type_code == BL and again.agency_code == "gd-amr"


def test_holder_id_and_name_must_agree_with_the_claims(registry: ecert.Registry) -> None:
    other = uscc(42)
    refused(lambda: issue_business_licence(registry, holder_id=other, claims=BL_CLAIMS),
            "holder_id_mismatch")
    refused(lambda: issue_business_licence(registry, holder_name="另一家公司", claims=BL_CLAIMS),
            "holder_name_mismatch")
    missing = {k: v for k, v in BL_CLAIMS.items() if k != "uscc"}
    refused(lambda: issue_business_licence(registry, claims=missing), "claims_invalid")
    assert registry.count() == 0


def test_code_claims_are_checked_not_only_pattern_matched(make_registry: RegistryFactory
                                                          ) -> None:
    registry = make_registry("ZJ")
    claims = _samples.claims("driving-licence-zj")
    good = claims["licence_number"]
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")  # matches the schema's pattern
    error = refused(lambda: registry.issue(DL, "zj-psb-traffic", holder_id=bad,
                                           holder_name=claims["name"],
                                           claims={**claims, "licence_number": bad}),
                    "holder_id_check")
    assert "GB 11643" in error.message
    # Checked as a claim format too, when the id itself is not what is wrong.
    assert isinstance(registry.get_type(DL).schema["properties"]["licence_number"], dict)
    with pytest.raises(ecert.ClaimsInvalid) as info:
        registry.validate_claims(DL, {**claims, "licence_number": bad})
    assert info.value.field == "$.claims.licence_number"
    assert "check character" in info.value.message


def test_types_without_a_scheme_keep_todays_behaviour(registry: ecert.Registry) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "string"}}}
    added = registry.add_type("gd.free", name="自由", national_type_code="11100000MB0143028R009",
                              schema=schema)
    assert added.holder_id_scheme is None and added.holder_claims == {}
    assert registry.get_type("gd.free") == added


def test_type_input_rules_are_stored_logged_and_checked(registry: ecert.Registry) -> None:
    schema = {"type": "object", "properties": {"no": {"type": "string"},
                                               "who": {"type": "string"}}}
    added = registry.add_type("gd.permit", name="许可", schema=schema,
                              national_type_code="11100000mb0143028r009",
                              holder_id_scheme=" pattern:GD[0-9]{6} ",
                              holder_claims={"holder_id": "no", "holder_name": "who"})
    assert added.national_type_code == "11100000MB0143028R009"
    stored = registry.get_type("gd.permit")
    assert stored.holder_id_scheme == "pattern:GD[0-9]{6}"
    assert stored.holder_claims == {"holder_id": "no", "holder_name": "who"}
    entry = [e for e in registry.events() if e.action == "type.add"][-1]
    assert entry.details["holder_id_scheme"] == "pattern:GD[0-9]{6}"
    for scheme, holder_claims, code in (("passport", None, "invalid_holder_id_scheme"),
                                        ("pattern:(", None, "invalid_holder_id_scheme"),
                                        (None, {"holder_id": "nope"}, "invalid_holder_claims")):
        refused(lambda s=scheme, h=holder_claims: registry.add_type(
            "gd.bad", name="坏", national_type_code="11100000MB0143028R009", schema=schema,
            holder_id_scheme=s, holder_claims=h), code)
    report = registry.audit()
    assert report.intact, report.findings


@pytest.mark.parametrize(("name", "code"), [("王丽华\nissuer: 公安部", "text_control"),
                                            ("\u202e公司", "text_bidi"),
                                            ("公司\u2028", "text_control")])
def test_names_that_could_fake_output_are_refused(registry: ecert.Registry, name: str,
                                                  code: str) -> None:
    refused(lambda: registry.issue(BL, "gd-amr", holder_id=BL_CLAIMS["uscc"], holder_name=name,
                                   claims={**BL_CLAIMS, "name": name}), code)
    refused(lambda: issue_business_licence(
        registry, claims={**BL_CLAIMS, "address": "深圳\n签发机关: 假"}), "text_control")
    assert registry.count() == 0


def test_a_minority_name_is_issued_as_typed(registry: ecert.Registry) -> None:
    name = "阿依古丽·买买提\u200d葛\U000e0100"
    cert = issue_business_licence(registry, holder_name=name, claims={**BL_CLAIMS, "name": name})
    assert cert.holder_name == name


def test_a_certificate_whose_qr_would_not_fit_is_not_issued(registry: ecert.Registry) -> None:
    # The schema allows 40 characters of legal representative; names may be 200.
    name = "深圳市" + "前海星河数字科技" * 22 + "有限公司"
    error = refused(lambda: issue_business_licence(
        registry, holder_name=name, claims={**BL_CLAIMS, "name": name[:100]}),
        "holder_name_mismatch")
    assert error
    schema = dict(registry.get_type(BL).schema)
    props = dict(schema["properties"])
    props["name"] = {**props["name"], "maxLength": 200}
    props["legal_representative"] = {"type": "string", "maxLength": 1000}
    registry.add_type("gd.long", name="长", national_type_code="11100000MB0143028R009",
                      schema={**schema, "properties": props},
                      qr_claims=["name", "uscc", "legal_representative"],
                      holder_claims={"holder_name": "name"})
    with registry.engine.begin() as conn:  # let gd-amr issue it (no agency update here)
        from sqlalchemy import text
        conn.execute(text("INSERT INTO agency_types (agency_code, type_code) "
                          "VALUES ('gd-amr', 'gd.long')"))
    # Varied characters: repeated ones would deflate to nothing.
    varied = "".join(chr(0x4E00 + i * 7919 % 20_000) for i in range(300))
    claims = {**BL_CLAIMS, "name": name, "legal_representative": varied}
    error = refused(lambda: registry.issue("gd.long", "gd-amr", holder_id="x", holder_name=name,
                                           claims=claims), "qr_short_form_too_large")
    assert str(MAX_TEXT_AT_DEFAULT) in error.message
    assert registry.count() == 0
    # A long business scope is no problem: it rides only in the full form.
    cert = issue_business_licence(registry, claims={**BL_CLAIMS, "business_scope": "经营" * 900})
    assert len(qr_text(registry.qr_token(cert.id))) <= MAX_TEXT_AT_DEFAULT


def test_the_short_form_limit_is_what_segno_fits_in_version_25_at_q() -> None:
    fits = segno.make_qr("A" * MAX_TEXT_AT_DEFAULT, error="Q", boost_error=False)
    assert fits.version == MAX_VERSION
    with pytest.raises(segno.DataOverflowError):
        segno.make_qr("A" * (MAX_TEXT_AT_DEFAULT + 1), error="Q", boost_error=False,
                      version=MAX_VERSION)


def test_the_issued_short_form_is_what_qr_makes(registry: ecert.Registry) -> None:
    cert = issue_business_licence(registry)
    cert_type = registry.get_type(BL)
    key = registry.keys("gd-amr")[-1]
    made = qr_text(registry.qr_token(cert.id))
    length = _issuance.check_short_form(cert_type, cert.token, registry.region.base_url,
                                        int(cert.issued_at.timestamp()), key.alg, key.kid)
    assert length == len(made)  # the probe is exactly as long as the signed QR


def test_long_term_means_no_end(registry: ecert.Registry) -> None:
    cert = issue_business_licence(registry, valid_until=date(9999, 12, 31))
    assert cert.valid_until is None
    payload = json.loads(ecert._formats.jose.b64url_decode(cert.token.split(".")[1]))
    assert "exp" not in payload or payload["exp"] is None


# -- no input ends in an internal error ---------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                    | st.text(max_size=20), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), b"x", object(),
                                   10 ** 400])
def test_claims_json_cannot_carry_are_refused(registry: ecert.Registry, value: Any) -> None:
    # Found by the property test below: an infinity used to end in a ValueError.
    try:
        cert = issue_business_licence(registry, claims={**BL_CLAIMS, "address": value})
    except ecert.ClaimsInvalid as e:
        assert e.field.startswith("$.claims")
    else:  # a big integer is JSON; the schema then refuses it as not a string
        pytest.fail(f"issued {cert.id} with address {value!r}")


@settings(max_examples=60)
@given(holder_id=st.one_of(st.text(max_size=30), st.just(BL_CLAIMS["uscc"])),
       holder_name=st.one_of(st.text(max_size=30), st.just(BL_CLAIMS["name"])),
       patch=st.dictionaries(st.sampled_from(sorted(BL_CLAIMS)) | st.text(max_size=5), JSON,
                             max_size=3),
       until=st.one_of(st.none(), st.dates(), st.datetimes(timezones=st.timezones())),
       type_code=st.sampled_from([BL, "cn.food-business-licence", "ＣＮ.x", ""]))
def test_issue_raises_nothing_but_ecert_errors(
        registry: ecert.Registry, holder_id: str, holder_name: str, patch: dict[str, Any],
        until: date | datetime | None, type_code: str) -> None:
    try:
        registry.issue(type_code, "gd-amr", holder_id=holder_id, holder_name=holder_name,
                       claims={**BL_CLAIMS, **patch}, valid_until=until)
    except ecert.EcertError as e:
        assert e.code and "\n" not in e.message


@settings(max_examples=30)
@given(holder_id=st.text(max_size=20), holder_name=st.text(max_size=20), claims=JSON,
       scheme=st.one_of(st.none(), st.text(max_size=12)))
def test_odd_types_raise_nothing_but_ecert_errors(
        registry: ecert.Registry, holder_id: str, holder_name: str, claims: Any,
        scheme: str | None) -> None:
    outcomes = []
    for call in (lambda: registry.add_type(
                     "gd.odd", name="奇", national_type_code="11100000MB0143028R009",
                     schema={"type": "object"}, holder_id_scheme=scheme),
                 lambda: registry.issue("gd.odd", "gd-amr", holder_id=holder_id,
                                        holder_name=holder_name, claims=claims)):
        try:
            outcomes.append(call().__class__.__name__)
        except ecert.EcertError as e:
            outcomes.append(e.code)
    assert all(outcomes)


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture
def gd_cli(cli_as_admin: Any, registry: ecert.Registry, clock: FakeClock) -> Any:
    def run(*args: str) -> Any:
        return cli_as_admin(registry, *args)

    return run


def test_cli_reads_gbk_and_bom_claims_files(gd_cli: Any, tmp_path: Path) -> None:
    text = json.dumps(BL_CLAIMS, ensure_ascii=False)
    files = {"gbk": text.encode("gbk"), "gb18030": text.encode("gb18030"),
             "bom": b"\xef\xbb\xbf" + text.encode("utf-8")}
    for name, data in files.items():
        path = tmp_path / f"{name}.json"
        path.write_bytes(data)
        result = gd_cli("issue", "--type", BL, "--agency", "gd-amr", "--holder-id",
                        "９１４４０３００ｍａ５ｆ３ｋ２ｌ８ｇ", "--holder-name", BL_CLAIMS["name"],
                        "--claims", str(path), "--valid-until", "9999-12-31", "--json")
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert out["claims"]["name"] == BL_CLAIMS["name"] and out["valid_until"] is None
    path = tmp_path / "latin.json"
    path.write_bytes(text.encode("gbk"))
    result = gd_cli("issue", "--type", BL, "--agency", "gd-amr", "--holder-id", "x",
                    "--holder-name", "x", "--claims", str(path), "--encoding", "utf-8")
    assert result.exit_code == 2 and "not utf-8 text" in result.stderr
    result = gd_cli("issue", "--type", BL, "--agency", "gd-amr", "--holder-id", "x",
                    "--holder-name", "x", "--claims", str(path), "--encoding", "klingon")
    assert result.exit_code == 2 and "unknown encoding" in result.stderr


def test_cli_refuses_a_mistyped_id_in_one_line(gd_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(BL_CLAIMS, ensure_ascii=False), "utf-8")
    result = gd_cli("issue", "--type", BL, "--agency", "gd-amr", "--holder-id",
                    BL_CLAIMS["uscc"][:-1] + "X", "--holder-name", BL_CLAIMS["name"],
                    "--claims", str(path), "--json")
    assert_no_traceback(result)
    assert result.exit_code == 2
    assert json.loads(result.stdout or result.stderr)["error"]["code"] == "holder_id_check"


def test_cli_type_add_with_a_scheme(tmp_path: Path, database_url: str | None,
                                    clock: FakeClock) -> None:
    from tests.support import OPERATOR_PASSPHRASE, PASSPHRASE
    from tests.support.cli import type_args
    run = Cli(tmp_path / "home", database_url, env={
        "ECERT_PASSPHRASE": PASSPHRASE, "ECERT_OPERATOR": "clerk-li",
        "ECERT_OPERATOR_PASSPHRASE": OPERATOR_PASSPHRASE, "ECERT_HOME": None,
        "ECERT_DATABASE_URL": None}, clock=clock)
    gd = _samples.region("GD")
    run.ok("init", "--region", "GD", "--name", gd["name"], "--base-url", gd["base_url"])
    out = run.json(*type_args(BL))
    assert out["holder_id_scheme"] == "uscc"
    assert out["holder_claims"] == {"holder_id": "uscc", "holder_name": "name"}
    message = run.fails(*type_args("cn.food-business-licence")[:-0 or None],
                        "--holder-claim", "holder_id")
    assert "KEY=CLAIM" in message


@settings(max_examples=40)
@given(holder_id=st.text(max_size=24), holder_name=st.text(max_size=24),
       until=st.text(max_size=12) | st.just("9999-12-31"))
def test_cli_issue_exits_cleanly_on_any_input(gd_cli: Any, tmp_path: Path, holder_id: str,
                                              holder_name: str, until: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(BL_CLAIMS, ensure_ascii=False), "utf-8")
    if "\x00" in holder_id + holder_name + until:
        return  # argv cannot carry NUL
    result = gd_cli("issue", "--type", BL, "--agency", "gd-amr", "--holder-id", holder_id,
                    "--holder-name", holder_name, "--claims", str(path),
                    "--valid-until", until)
    assert_no_traceback(result)
    assert result.exit_code in (0, 2), result.output


# -- file encodings (the one helper every CLI file read goes through) ------------------------


def test_decode_text_detects_bom_utf8_and_gb18030() -> None:
    from ecert_cli._files import decode_text

    text = "营业执照 深圳市前海星河数字科技有限公司"
    assert decode_text(b"\xef\xbb\xbf" + text.encode(), "f") == text
    assert decode_text(text.encode(), "f") == text
    assert decode_text(text.encode("gbk"), "f") == text
    assert decode_text(text.encode("gb18030"), "f") == text
    assert decode_text(text.encode("gbk"), "f", "GBK") == text
    assert decode_text(b"\xef\xbb\xbfabc", "f", "utf-8") == "abc"
    for data, encoding, code in ((text.encode("gbk"), "utf-8", "invalid_encoding"),
                                 (b"abc", "no-such-codec", "unknown_encoding"),
                                 (b"\x81\x30\x81", None, "invalid_encoding")):
        with pytest.raises(ecert.InputError) as info:
            decode_text(data, "f", encoding)
        assert info.value.code == code


@given(st.binary(max_size=64), st.sampled_from([None, "utf-8", "gb18030", "latin-1", "x"]))
def test_decode_text_gives_text_or_an_input_error(data: bytes, encoding: str | None) -> None:
    from ecert_cli._files import decode_text

    try:
        assert isinstance(decode_text(data, "f", encoding), str)
    except ecert.InputError as e:
        assert e.code in ("invalid_encoding", "unknown_encoding")


def test_a_passphrase_file_with_a_bom(tmp_path: Path) -> None:
    from ecert_cli._operators import new_passphrase

    path = tmp_path / "pass.txt"
    path.write_bytes("\ufeff口令 one two\r\n".encode())
    assert new_passphrase(path, "clerk") == "口令 one two"
