"""Identifiers: GB/T 36904-2018 certificate ids, GB 32100 credit codes, national type codes.

A certificate id reads
``1.2.156.3005.2.<national type code>.<issuer USCC>.<serial>.<3-digit version>.<check>``;
the check character is ISO/IEC 7064 MOD 37,36 over type code + issuer code +
serial + version, so a mistyped id is caught before any database lookup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ecert.errors import InputError, InvalidCertificateId

__all__ = [
    "ID_PREFIX",
    "CertificateId",
    "CertificateIdPrefix",
    "is_valid_uscc",
    "mod37_36_check_char",
    "validate_national_type_code",
    "validate_uscc",
]

#: OID arc of GB/T 36904 electronic licence identifiers.
ID_PREFIX = "1.2.156.3005.2"

_MOD37_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MOD37_INDEX = {c: i for i, c in enumerate(_MOD37_ALPHABET)}

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_INDEX = {c: i for i, c in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_RE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")
_SERIAL_RE = re.compile(r"[0-9A-Z]{1,32}")
_TYPE_CODE_RE = re.compile(r"[0-9A-Z]{21}")
_ISSUER_CODE_RE = re.compile(r"[0-9A-Z]{18}")
_VERSION_RE = re.compile(r"[0-9]{3}")


def _transitions() -> list[dict[str, int]]:
    # ISO/IEC 7064 hybrid MOD 37,36: state' = ((state or 36) * 2 % 37 + value) % 36,
    # tabulated once so checking an id is one lookup per character.
    return [
        {c: (((state or 36) * 2) % 37 + v) % 36 for c, v in _MOD37_INDEX.items()}
        for state in range(36)
    ]


_MOD37_NEXT = _transitions()


def _mod37_state(data: str, state: int = 18) -> int:
    table = _MOD37_NEXT
    try:
        for char in data:
            state = table[state][char]
    except KeyError as e:
        raise InvalidCertificateId(f"character {e.args[0]!r} is not allowed in an id") from e
    return state


def _mod37_final(state: int) -> str:
    return _MOD37_ALPHABET[(1 - ((state or 36) * 2) % 37) % 36]


def mod37_36_check_char(data: str) -> str:
    """Return the ISO/IEC 7064 MOD 37,36 check character of ``data`` (digits, A-Z)."""
    return _mod37_final(_mod37_state(data))


class CertificateIdPrefix:
    """Checks ids of one type and issuer quickly: the shared prefix is checked once.

    ``matches(text)`` is equivalent to parsing ``text`` with :meth:`CertificateId.parse`
    and comparing its type and issuer codes, for canonical (upper-case) text.
    """

    __slots__ = ("_prefix", "_state")

    def __init__(self, type_code: str, issuer_code: str) -> None:
        CertificateId(type_code, issuer_code, "0")  # validates both codes
        self._prefix = f"{ID_PREFIX}.{type_code}.{issuer_code}."
        self._state = _mod37_state(type_code + issuer_code)

    def id_of(self, serial: str, version: str = "001") -> str:
        """``str(CertificateId(type, issuer, serial, version))``, the prefix's part of the
        check character computed once (batch issuance makes ids by the million)."""
        if not (_SERIAL_RE.fullmatch(serial) and _VERSION_RE.fullmatch(version)):
            raise InvalidCertificateId("the serial of an id is 1 to 32 digits or capitals, "
                                       "its version 3 digits")
        check = _mod37_final(_mod37_state(serial + version, self._state))
        return f"{self._prefix}{serial}.{version}.{check}"

    def matches(self, text: str) -> bool:
        """Whether ``text`` is a well-formed id of this type and issuer with a right check."""
        if not text.startswith(self._prefix):
            return False
        rest = text[len(self._prefix):].split(".")
        if len(rest) != 3:
            return False
        serial, version, check = rest
        if not (_SERIAL_RE.fullmatch(serial) and _VERSION_RE.fullmatch(version)):
            return False
        try:
            return _mod37_final(_mod37_state(serial + version, self._state)) == check
        except InvalidCertificateId:  # pragma: no cover - excluded by the patterns
            return False


@lru_cache(maxsize=4096)
def is_valid_uscc(code: str) -> bool:
    """Whether ``code`` is an 18-character USCC whose GB 32100 check character is right.

    Cached: issuing one row checks its code up to five times (holder id, claim format,
    holder claim, the agency's code in the certificate id), a batch millions of rows."""
    if not isinstance(code, str) or len(code) != 18 or not _USCC_RE.fullmatch(code):
        return False
    total = sum(_USCC_INDEX[c] * w for c, w in zip(code[:17], _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31] == code[17]


def validate_uscc(code: str) -> str:
    """Return ``code`` if it is a valid USCC, else raise :class:`InputError`."""
    if not is_valid_uscc(code):
        raise InputError(
            f"{code!r} is not a valid unified social credit code (GB 32100: 18 characters, "
            "last one a check character)",
            code="invalid_uscc",
        )
    return code


def validate_national_type_code(code: str) -> str:
    """Check a GB/T 36904 licence type code: defining authority's USCC + 3-digit sequence."""
    if len(code) != 21 or not code[18:].isdigit() or not code[18:].isascii():
        raise InputError(
            f"{code!r} is not a GB/T 36904 national type code (21 characters: "
            "the defining authority's USCC followed by 3 digits)",
            code="invalid_national_type_code",
        )
    validate_uscc(code[:18])
    return code


@dataclass(frozen=True, slots=True)
class CertificateId:
    """A parsed GB/T 36904 certificate identifier."""

    type_code: str
    issuer_code: str
    serial: str
    version: str = "001"

    def __post_init__(self) -> None:
        if not _TYPE_CODE_RE.fullmatch(self.type_code):
            raise InvalidCertificateId("the type code of an id is 21 digits or capitals")
        if not _ISSUER_CODE_RE.fullmatch(self.issuer_code):
            raise InvalidCertificateId("the issuer code of an id is 18 digits or capitals")
        # Both codes carry GB 32100 check characters of their own; they also catch the
        # few adjacent transpositions MOD 37,36 lets through.
        if not is_valid_uscc(self.issuer_code) or not is_valid_uscc(self.type_code[:18]):
            raise InvalidCertificateId(
                "issuer or type code has a wrong GB 32100 check character: mistyped"
            )
        if not _SERIAL_RE.fullmatch(self.serial):
            raise InvalidCertificateId("the serial of an id is 1 to 32 digits or capitals")
        if not _VERSION_RE.fullmatch(self.version):
            raise InvalidCertificateId("the version of an id has 3 digits")

    @property
    def check_char(self) -> str:
        """The MOD 37,36 check character."""
        return mod37_36_check_char(self.type_code + self.issuer_code + self.serial + self.version)

    def __str__(self) -> str:
        return ".".join(
            (ID_PREFIX, self.type_code, self.issuer_code, self.serial, self.version,
             self.check_char)
        )

    @classmethod
    def parse(cls, text: str) -> CertificateId:
        """Parse and check an id; raise :class:`InvalidCertificateId` when anything is off."""
        if not isinstance(text, str) or len(text) > 128:
            raise InvalidCertificateId("not a certificate id")
        text = text.strip().upper()
        if not text.startswith(ID_PREFIX + "."):
            raise InvalidCertificateId(f"a certificate id starts with {ID_PREFIX}.")
        parts = text[len(ID_PREFIX) + 1 :].split(".")
        if len(parts) != 5:
            raise InvalidCertificateId(
                "a certificate id has five parts after the prefix: "
                "type code, issuer code, serial, version, check character"
            )
        type_code, issuer_code, serial, version, check = parts
        parsed = cls(type_code, issuer_code, serial, version)
        if len(check) != 1 or parsed.check_char != check:
            raise InvalidCertificateId(
                f"check character of {text!r} is wrong: the id was mistyped"
            )
        return parsed
