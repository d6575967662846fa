"""GB/T 36904 certificate ids, GB 32100 credit codes and national type codes."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ecert.errors import InputError, InvalidCertificateId
from ecert.identifiers import (
    ID_PREFIX,
    CertificateId,
    is_valid_uscc,
    mod37_36_check_char,
    validate_national_type_code,
    validate_uscc,
)

#: The example id of GB/T 36904-2018.
VECTOR = "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F"

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"

def _with_uscc_check(body: str) -> str:
    return body + reference_uscc_check(body)


# Issuer codes and the first 18 characters of type codes are GB 32100 credit codes.
_uscc_bodies = st.builds(
    lambda head, area, tail: head + area + tail,
    st.text(st.sampled_from(USCC_ALPHABET), min_size=2, max_size=2),
    st.text("0123456789", min_size=6, max_size=6),
    st.text(st.sampled_from(USCC_ALPHABET), min_size=9, max_size=9),
)
issuer_codes = _uscc_bodies.map(_with_uscc_check)
type_codes = st.builds(lambda uscc, seq: uscc + seq, issuer_codes,
                       st.text("0123456789", min_size=3, max_size=3))
serials = st.text(ALNUM, min_size=1, max_size=32)
versions = st.text("0123456789", min_size=3, max_size=3)
ids = st.builds(CertificateId, type_codes, issuer_codes, serials, versions)


def reference_mod37_36(data: str) -> str:
    """ISO/IEC 7064 MOD 37,36 written from the standard's P/S recurrence, independently."""
    m = 36
    p = m  # P1 = M
    for char in data:
        s = p + ALNUM.index(char)  # S_j = P_j + a_j
        p = ((s % m or m) * 2) % (m + 1)  # P_j+1 = (||S_j||_M * 2) mod (M+1)
    return ALNUM[(1 - p) % m]  # (P_n+1 + check) mod M == 1


def reference_uscc_check(body: str) -> str:
    """GB 32100 check character: weights 3^i mod 31, check = 31 - sum mod 31."""
    total = sum(USCC_ALPHABET.index(c) * pow(3, i, 31) for i, c in enumerate(body))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def fields(cid: CertificateId) -> list[tuple[int, str]]:
    """(offset in the printed id, text) of the four checked fields."""
    offset = len(ID_PREFIX) + 1
    out = []
    for text in (cid.type_code, cid.issuer_code, cid.serial, cid.version):
        out.append((offset, text))
        offset += len(text) + 1
    return out


def data_positions(cid: CertificateId) -> list[int]:
    """Offsets in ``str(cid)`` of every character covered by the check character."""
    return [start + i for start, text in fields(cid) for i in range(len(text))]


# -- the standard's vector ------------------------------------------------------------------


def test_vector_parses() -> None:
    cid = CertificateId.parse(VECTOR)
    assert cid == CertificateId("11100000000013338W032", "11220000013544541J", "2430599", "001")
    assert cid.check_char == "F"
    assert str(cid) == VECTOR


def test_vector_check_char_matches_reference_implementation() -> None:
    data = "11100000000013338W032" + "11220000013544541J" + "2430599" + "001"
    assert reference_mod37_36(data) == "F"
    assert mod37_36_check_char(data) == "F"


def test_vector_parts_are_valid_codes() -> None:
    cid = CertificateId.parse(VECTOR)
    assert validate_national_type_code(cid.type_code) == cid.type_code
    assert is_valid_uscc(cid.issuer_code)


def test_parse_normalizes_case_and_surrounding_space() -> None:
    assert CertificateId.parse(f"  {VECTOR.lower()}\n") == CertificateId.parse(VECTOR)


def test_vector_every_wrong_check_char_refused() -> None:
    for char in ALNUM.replace("F", ""):
        with pytest.raises(InvalidCertificateId, match="check character"):
            CertificateId.parse(VECTOR[:-1] + char)


def test_vector_every_single_substitution_refused() -> None:
    cid = CertificateId.parse(VECTOR)
    for pos in data_positions(cid):
        for char in ALNUM:
            if char != VECTOR[pos]:
                with pytest.raises(InvalidCertificateId):
                    CertificateId.parse(VECTOR[:pos] + char + VECTOR[pos + 1 :])


@pytest.mark.parametrize(
    "text",
    [
        "",
        ID_PREFIX,
        "1.2.156.3005.3.11100000000013338W032.11220000013544541J.2430599.001.F",
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001",
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F.X",
        "1.2.156.3005.2.11100000000013338W03.11220000013544541J.2430599.001.F",
        "1.2.156.3005.2.11100000000013338W032.11220000013544541.2430599.001.F",
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J..001.F",
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.01.F",
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.00A.F",
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.FF",
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.",
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J." + "1" * 33 + ".001.F",
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.243-599.001.F",
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F" + " " * 100,
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.２４３０５９９.001.F",
    ],
)
def test_malformed_ids_refused(text: str) -> None:
    with pytest.raises(InvalidCertificateId):
        CertificateId.parse(text)


@pytest.mark.parametrize("value", [None, 42, b"1.2.156.3005.2", ["1.2.156"]])
def test_parse_refuses_non_text(value: object) -> None:
    with pytest.raises(InvalidCertificateId):
        CertificateId.parse(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("type_code", "issuer_code", "serial", "version"),
    [
        ("11100000000013338w032", "11220000013544541J", "2430599", "001"),
        ("11100000000013338W032", "1122000001354454１J", "2430599", "001"),
    ],
)
def test_constructor_refuses_characters_outside_the_id_alphabet(
    type_code: str, issuer_code: str, serial: str, version: str
) -> None:
    # The fields of a certificate id are digits and capitals only; a value object that
    # accepts anything else yields an id whose str() then fails.
    with pytest.raises(InvalidCertificateId):
        CertificateId(type_code, issuer_code, serial, version)


def test_constructor_refuses_wrong_lengths() -> None:
    uscc, ntc = "11220000013544541J", "11100000000013338W032"
    with pytest.raises(InvalidCertificateId):
        CertificateId(ntc[:20], uscc, "1")
    with pytest.raises(InvalidCertificateId):
        CertificateId(ntc, uscc + "1", "1")
    with pytest.raises(InvalidCertificateId):
        CertificateId(ntc, uscc, "")
    with pytest.raises(InvalidCertificateId):
        CertificateId(ntc, uscc, "1", "1")
    assert CertificateId(ntc, uscc, "1").version == "001"


def test_constructor_refuses_credit_codes_with_wrong_check_characters() -> None:
    with pytest.raises(InvalidCertificateId, match="GB 32100"):
        CertificateId("11100000000013338W032", "11220000013544541K", "1")
    with pytest.raises(InvalidCertificateId, match="GB 32100"):
        CertificateId("11100000000013338X032", "11220000013544541J", "1")


def test_check_char_refuses_foreign_characters() -> None:
    with pytest.raises(InvalidCertificateId):
        mod37_36_check_char("ABC.1")
    with pytest.raises(InvalidCertificateId):
        mod37_36_check_char("abc")


# -- properties -------------------------------------------------------------------------------


@given(ids)
def test_str_parses_back_equal(cid: CertificateId) -> None:
    text = str(cid)
    assert text == ".".join((ID_PREFIX, cid.type_code, cid.issuer_code, cid.serial,
                             cid.version, cid.check_char))
    assert CertificateId.parse(text) == cid
    assert CertificateId.parse(text.lower()) == cid


@given(ids)
def test_check_char_matches_reference(cid: CertificateId) -> None:
    assert cid.check_char == reference_mod37_36(
        cid.type_code + cid.issuer_code + cid.serial + cid.version
    )


@settings(max_examples=30)
@given(ids)
def test_every_single_substitution_is_detected(cid: CertificateId) -> None:
    text = str(cid)
    for pos in data_positions(cid):
        for char in ALNUM:
            if char != text[pos]:
                with pytest.raises(InvalidCertificateId):
                    CertificateId.parse(text[:pos] + char + text[pos + 1 :])


@settings(max_examples=200)
@given(ids)
def test_adjacent_transpositions_are_detected_as_the_standard_says(cid: CertificateId) -> None:
    # MOD 37,36 is a hybrid system: it detects every single substitution but, unlike the
    # pure MOD 37-2, NOT every adjacent transposition (about 0.16% of (state, a, b) pairs
    # slip through; see test_known_undetected_transposition). So: a transposition is
    # refused exactly when the standard's check character changes.
    data = cid.type_code + cid.issuer_code + cid.serial + cid.version
    text = str(cid)
    positions = data_positions(cid)
    for i in range(len(data) - 1):
        if data[i] == data[i + 1]:
            continue
        swapped = data[:i] + data[i + 1] + data[i] + data[i + 2 :]
        a, b = positions[i], positions[i + 1]
        candidate = list(text)
        candidate[a], candidate[b] = candidate[b], candidate[a]
        mutated = "".join(candidate)
        credit_codes = (swapped[:18], swapped[21:39])  # type code's USCC, issuer's USCC
        caught = reference_mod37_36(swapped) != cid.check_char or not all(
            c[:17] + reference_uscc_check(c[:17]) == c for c in credit_codes
            if set(c) <= set(USCC_ALPHABET)
        ) or not all(set(c) <= set(USCC_ALPHABET) for c in credit_codes)
        if caught:
            with pytest.raises(InvalidCertificateId):
                CertificateId.parse(mutated)
        else:
            try:
                CertificateId.parse(mutated)
            except InvalidCertificateId:
                # Only a field-format rule (a letter moved into the version) may refuse it.
                assert b == positions[len(data) - 3] and not swapped[-3:].isdigit()


def test_transpositions_in_vector_detected_except_the_standard_blind_spot() -> None:
    cid = CertificateId.parse(VECTOR)
    text = str(cid)
    undetected = []
    for start, field in fields(cid):
        for i in range(len(field) - 1):
            if field[i] == field[i + 1]:
                continue
            pos = start + i
            mutated = text[:pos] + text[pos + 1] + text[pos] + text[pos + 2 :]
            try:
                CertificateId.parse(mutated)
            except InvalidCertificateId:
                continue
            undetected.append(mutated)
    # "...13544541J" -> "...13544451J" keeps MOD 37,36 check character F (a documented
    # limitation of hybrid ISO 7064 systems), but the GB 32100 check of the issuer's credit
    # code catches it, so no transposition in the vector goes undetected.
    assert undetected == []
    assert not is_valid_uscc("11220000013544451J")


def test_known_undetected_transposition() -> None:
    a = CertificateId("11100000000013338W032", "11220000013544541J", "890")
    b = CertificateId("11100000000013338W032", "11220000013544541J", "980")
    assert a.check_char == b.check_char == "6"
    assert CertificateId.parse(str(b)) == b


@given(st.text())
@example("1.2.156.3005.2.ß" * 3)
@example("1.2.156.3005.2." + "ǅ" * 21 + ".11220000013544541J.1.001.F")
@example("1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.\x00")
def test_parse_arbitrary_text_only_raises_invalid_certificate_id(text: str) -> None:
    try:
        cid = CertificateId.parse(text)
    except InvalidCertificateId:
        return
    assert CertificateId.parse(str(cid)) == cid


_part = st.text(st.sampled_from(ALNUM + "abcz-_ .\x00ßǅ١２"), max_size=34)


@given(st.lists(_part, min_size=0, max_size=7))
def test_parse_prefixed_random_parts_only_raises_invalid_certificate_id(
    parts: list[str],
) -> None:
    try:
        cid = CertificateId.parse(".".join([ID_PREFIX, *parts]))
    except InvalidCertificateId:
        return
    assert str(cid) == ".".join([ID_PREFIX, *parts]).strip().upper()


# -- unified social credit codes ------------------------------------------------------------


SAMPLE_USCCS = ["11440000MB2C01234R", "91440300MA5F3K2L8G"]


@pytest.mark.parametrize("code", SAMPLE_USCCS)
def test_sample_usccs_valid(code: str) -> None:
    assert is_valid_uscc(code)
    assert validate_uscc(code) == code
    assert reference_uscc_check(code[:17]) == code[17]


@pytest.mark.parametrize("code", SAMPLE_USCCS)
def test_every_one_char_change_of_a_uscc_is_invalid(code: str) -> None:
    for pos in range(18):
        for char in ALNUM + "abcio ":
            if char == code[pos]:
                continue
            changed = code[:pos] + char + code[pos + 1 :]
            assert not is_valid_uscc(changed), changed
            with pytest.raises(InputError) as info:
                validate_uscc(changed)
            assert info.value.code == "invalid_uscc"


@pytest.mark.parametrize("code", SAMPLE_USCCS)
def test_uscc_adjacent_transpositions_are_invalid(code: str) -> None:
    for pos in range(17):
        if code[pos] != code[pos + 1]:
            assert not is_valid_uscc(code[:pos] + code[pos + 1] + code[pos] + code[pos + 2 :])


@pytest.mark.parametrize(
    "code",
    [
        "",
        "11440000MB2C01234",
        "11440000MB2C01234RR",
        "11440000mb2c01234r",
        " 11440000MB2C01234R",
        "11440000MB2C01234R\n",
        "1144000AMB2C01234R",  # the 6-digit area code must be digits
        "11440000MB2C0I234R",  # I, O, S, V, Z are not in the GB 32100 alphabet
        "１１440000MB2C01234R",
    ],
)
def test_malformed_usccs_invalid(code: str) -> None:
    assert not is_valid_uscc(code)
    with pytest.raises(InputError):
        validate_uscc(code)


@given(
    st.text(st.sampled_from(USCC_ALPHABET), min_size=2, max_size=2),
    st.text("0123456789", min_size=6, max_size=6),
    st.text(st.sampled_from(USCC_ALPHABET), min_size=9, max_size=9),
)
def test_uscc_with_reference_check_char_is_valid(head: str, area: str, tail: str) -> None:
    body = head + area + tail
    check = reference_uscc_check(body)
    assert is_valid_uscc(body + check)
    for other in USCC_ALPHABET.replace(check, ""):
        assert not is_valid_uscc(body + other)


@given(st.text(max_size=20))
def test_is_valid_uscc_never_raises_on_text(code: str) -> None:
    assert is_valid_uscc(code) in (True, False)


# -- national type codes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["11100000MB0143028R001", "11100000MB0143028R002", "11100000MB01750230001",
             "11100000000013338W032"]
)
def test_national_type_codes_valid(code: str) -> None:
    assert validate_national_type_code(code) == code


@pytest.mark.parametrize(
    "code",
    [
        "",
        "11100000MB0143028R00",
        "11100000MB0143028R0011",
        "11100000MB0143028R00A",
        "11100000MB0143028R０01",
        "11100000MB0143028R00١",
        "11100000MB0143028R00²",
        "11100000MB0143028R 01",
    ],
)
def test_malformed_national_type_codes_refused(code: str) -> None:
    with pytest.raises(InputError) as info:
        validate_national_type_code(code)
    assert info.value.code == "invalid_national_type_code"


def test_national_type_code_with_bad_uscc_refused() -> None:
    with pytest.raises(InputError):
        validate_national_type_code("11100000MB0143028X001")
    with pytest.raises(InputError):
        validate_national_type_code("11100000MB0143082R001")
