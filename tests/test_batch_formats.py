"""The fast paths batch issuance takes, each against the reference it replaces: the
compiled schema check against jsonschema, the tabulated permutation against
``permuted_index``, the QR length bound against the exact probe, one-pass unit sealing
against ``sign_unit``, ``CompactSigner`` against ``sign_compact``; and the batch file
reader (a decoder) on any text a CSV or JSON Lines file can hold."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ecert import _samples
from ecert._allocation import Permutation, permuted_index
from ecert._formats import qr as _qr
from ecert._formats.jose import (
    CompactSigner,
    canonical_json,
    key_from_jwk,
    parse_compact,
    sign_compact,
    verify_signature,
)
from ecert._formats.log import Entry, sealed_leaves, sign_unit
from ecert._mac import mac_under
from ecert.batch import detect_encoding, open_rows
from ecert.errors import FormatError, InputError
from ecert.keys import LocalSigner, generate_private_key
from ecert.registry._compiled import compile_schema
from ecert.registry._issuance import _format_checker
from tests.support.issuing import uscc

KID = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"  # a key thumbprint's shape
SCHEMAS = {entry["code"]: entry["schema"] for entry in _samples.catalog()}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False), st.text(max_size=30),
                    st.sampled_from(["2026-01-31", "2026/01/31", uscc(7), uscc(7)[:-1] + "0",
                                     "330106198501010011", ""]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@pytest.mark.parametrize("code", sorted(SCHEMAS))
def test_every_sample_schema_compiles(code: str) -> None:
    cls = jsonschema.validators.validator_for(SCHEMAS[code])
    assert compile_schema(SCHEMAS[code], _format_checker(cls).conforms) is not None


@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SCHEMAS)), st.data())
def test_the_compiled_check_says_valid_only_where_jsonschema_does(code: str,
                                                                  data: st.DataObject) -> None:
    schema = SCHEMAS[code]
    cls = jsonschema.validators.validator_for(schema)
    checker = _format_checker(cls)
    fast = compile_schema(schema, checker.conforms)
    assert fast is not None
    reference = cls(schema, format_checker=checker)
    properties = list(schema.get("properties", {}))
    # Instances near the schema: its own members with any values, some left out, extras.
    claims = data.draw(st.fixed_dictionaries(
        {}, optional={name: values for name in properties}))
    claims.update(data.draw(st.dictionaries(st.text(max_size=6), values, max_size=1)))
    if fast(claims):
        assert reference.is_valid(claims), claims
    # and the sample claims of the catalog, valid for both
    sample = {"cn.business-licence": "business-licence-gd"}.get(code)
    if sample is not None:
        assert fast(_samples.claims(sample)) and reference.is_valid(_samples.claims(sample))


@pytest.mark.parametrize("schema", [
    {"type": "object", "patternProperties": {"a": {}}},
    {"type": "number"}, {"items": [{}]}, {"allOf": []}, {"properties": {"a": {"$ref": "#"}}},
    {"additionalProperties": {"type": "string"}}, {"enum": [1, 2]}, {"minimum": 1.5},
    {"pattern": "("},
])
def test_schemas_outside_the_subset_have_no_fast_path(schema: dict[str, Any]) -> None:
    assert compile_schema(schema, lambda _v, _f: True) is None


@settings(max_examples=60)
@given(st.binary(min_size=1, max_size=32), st.integers(1, 3000), st.data())
def test_the_tabulated_permutation_is_permuted_index(key: bytes, size: int,
                                                     data: st.DataObject) -> None:
    permute = Permutation(key, size)
    for counter in data.draw(st.lists(st.integers(0, size - 1), max_size=40)):
        assert permute(counter) == permuted_index(key, counter, size)
    with pytest.raises(ValueError):
        permute(size)


@given(st.binary(max_size=130), st.binary(max_size=100))
def test_the_hmac_under_one_key_is_the_standard_one(key: bytes, message: bytes) -> None:
    assert mac_under(key)(message) == hmac.digest(key, message, "sha256")


def test_slots_are_those_existing_registries_hold() -> None:
    # Registries in use took their slots with these: a faster HMAC must not move one.
    assert [permuted_index(b"k" * 32, n, 131_072) for n in (0, 1, 2, 1000, 131_071)] == \
        [89275, 20551, 16132, 93860, 121069]
    assert [permuted_index(b"\x01" * 100, n, 1000) for n in (0, 5, 999)] == [785, 531, 967]


def test_the_tabulated_permutation_at_the_default_list_size() -> None:
    permute = Permutation(b"k" * 32, 131_072)
    assert [permute(n) for n in range(0, 131_072, 997)] == [
        permuted_index(b"k" * 32, n, 131_072) for n in range(0, 131_072, 997)]


qr_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats()
    | st.text(max_size=300), lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=70), inner, max_size=4), max_leaves=6)


@settings(max_examples=80)
@given(st.dictionaries(st.text(max_size=4), qr_values, max_size=6))
def test_the_qr_length_bound_is_never_below_the_exact_length(payload: dict[str, Any]) -> None:
    bound = _qr.probe_length_bound(payload)
    assume(bound is not None)
    assert bound is not None
    try:
        exact = len(_qr.probe_text(payload, "ES256", KID))
    except FormatError:  # a bound may only be given where the probe reads back
        raise AssertionError(f"bounded but not encodable: {payload!r}") from None
    assert exact <= bound


def test_the_qr_length_bound_of_a_business_licence_spares_the_exact_probe() -> None:
    """The bound is loose for Chinese (three UTF-8 bytes a character where the code holds
    two), yet the short form of the sample licence stays under the limit by it."""
    from ecert.qr import MAX_TEXT_AT_DEFAULT

    entry = next(e for e in _samples.catalog() if e["code"] == "cn.business-licence")
    claims = _samples.claims("business-licence-gd")
    payload = {"t": "cn.business-licence", "v": 1, "r": "GD", "n": "00000001",
               "i": 1767225600, "a": 1767225600, "s": [1, 4711],
               "c": {n: claims[n] for n in entry["qr_claims"] if n in claims},
               "h": claims["name"], "d": "AAAAAAAAAAAAAAAAAAAAAA", "e": 2082844800}
    bound = _qr.probe_length_bound(payload)
    exact = len(_qr.probe_text(payload, "ES256", KID))
    assert bound is not None and exact <= bound <= MAX_TEXT_AT_DEFAULT


@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_compact_signer_makes_what_sign_compact_makes(alg: str) -> None:
    signer = LocalSigner(generate_private_key(alg))
    payload = {"b": [1, "二"], "a": {"z": None, "y": True}}
    token, data = CompactSigner(signer, "ecert+jwt").sign(payload)
    reference = sign_compact(payload, signer, "ecert+jwt")
    assert token.split(".")[:2] == reference.split(".")[:2]
    if alg == "Ed25519":  # deterministic signatures: the very same token
        assert token == reference
    parsed = parse_compact(token, max_bytes=10_000)
    assert parsed.payload == payload
    assert data == canonical_json(payload)
    alg_name, key = key_from_jwk(signer.public_jwk)
    assert verify_signature(alg_name, key, parsed.signing_input, parsed.signature)


@given(st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=20) | st.integers(),
                                max_size=3), min_size=1, max_size=6))
def test_sealed_leaves_are_sign_units_leaves(details: list[dict[str, Any]]) -> None:
    signer = LocalSigner(generate_private_key("Ed25519"))
    entries = [Entry(1767225600 + i, "certificate.issue", f"c:{i}", signer.kid, d)
               for i, d in enumerate(details)]
    assert sealed_leaves(entries, signer) == [e.encode() for e in sign_unit(entries, signer)]


@given(st.dictionaries(st.text(max_size=5), st.text(max_size=20) | st.integers(), max_size=3),
       st.sampled_from([{}, {"sig": None}, {"sig": "AAAA"}]))
def test_a_decoded_entrys_content_hash_is_its_contents(details: dict[str, Any],
                                                        extra: dict[str, Any]) -> None:
    # A replay takes an entry's content hash from its leaf: only where the leaf is the
    # canonical JSON of that content (no ``sig`` member, not even null).
    content = Entry(1767225600, "certificate.issue", "c:1", "kid", details).content()
    decoded = Entry.decode(canonical_json({**content, **extra}))
    assert decoded.content_hash() == hashlib.sha256(canonical_json(content)).digest()


# -- the batch file reader -----------------------------------------------------------------

cells = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                max_size=20)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(cells, cells, cells), min_size=1, max_size=8),
       st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
def test_csv_rows_read_back_as_written(tmp_path: Path, rows: list[tuple[str, str, str]],
                                       encoding: str) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["holder_id", "holder_name", "claims"])
    writer.writerows(rows)
    try:
        data = out.getvalue().encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    path = tmp_path / "rows.csv"
    path.write_bytes(data)
    # Detection is a guess for GB 18030 bytes that happen to be valid UTF-8 too; where it
    # guesses so, naming the encoding is the clerk's way (--encoding).
    named = None
    try:
        guessed_right = data.decode(detect_encoding(path)) == out.getvalue().lstrip("\ufeff")
    except UnicodeDecodeError:
        guessed_right = False
    if not guessed_right:
        named = encoding
    with open_rows(path, encoding=named) as source:
        read = [(r.row.holder_id, r.row.holder_name, r.row.claims) for r in source.records()
                if r.row is not None]
    assert read == rows


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_any_bytes_give_rows_or_one_input_error(tmp_path: Path, data: bytes) -> None:
    for name in ("x.csv", "x.jsonl"):
        path = tmp_path / name
        path.write_bytes(b"holder_id,holder_name,claims\n" + data if name == "x.csv" else data)
        try:
            with open_rows(path) as source:
                for read in source.records():
                    assert (read.row is None) == (read.problem is not None)
        except InputError:
            pass  # one error for the whole file (its encoding, its CSV): fine


def test_json_lines_refuse_duplicate_members(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"holder_id": "a", "holder_id": "b", "holder_name": "n"}\n'
                    + json.dumps({"holder_id": "a", "holder_name": "n"}) + "\n")
    with open_rows(path) as source:
        reads = list(source.records())
    assert reads[0].row is None and "not JSON" in (reads[0].problem or "")
    assert reads[1].row is not None


@given(st.from_regex(r"[0-9A-Z]{1,32}", fullmatch=True), st.from_regex(r"[0-9]{3}",
                                                                        fullmatch=True))
def test_ids_made_from_a_prefix_are_certificate_ids(serial: str, version: str) -> None:
    from ecert.identifiers import CertificateId, CertificateIdPrefix

    prefix = CertificateIdPrefix("11100000MB0143028R001", "11440000MB2C01234R")
    made = prefix.id_of(serial, version)
    assert made == str(CertificateId("11100000MB0143028R001", "11440000MB2C01234R", serial,
                                     version))
    assert prefix.matches(made)


plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4), max_leaves=12)


@settings(max_examples=80)
@given(plain_values)
def test_plain_json_length_is_the_canonical_length(value: Any) -> None:
    from ecert._formats import jose

    assert jose.plain_json_length(value) == len(jose.canonical_json(value))


@settings(max_examples=60)
@given(st.binary(min_size=1, max_size=32), st.integers(1, 3000), st.data())
def test_counter_of_undoes_the_permutation(key: bytes, size: int,
                                           data: st.DataObject) -> None:
    permute = Permutation(key, size)
    for counter in data.draw(st.lists(st.integers(0, size - 1), max_size=40)):
        assert permute.counter_of(permute(counter)) == counter
    with pytest.raises(ValueError):
        permute.counter_of(size)
