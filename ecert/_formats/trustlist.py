"""The region trust list (``typ: ecert-trustlist+jwt``), signed by the region root key.

It names the region, a strictly increasing sequence number, when it was issued and
when verifiers must refresh it, the region's agencies with their keys and authorized
types, the keys that sign status lists, the type catalog, and recognition agreements.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecert._formats.jose import (
    PublicKey,
    SignerLike,
    b64url_decode,
    jwk_thumbprint,
    key_from_jwk,
    sign_compact,
)
from ecert._formats.url import check_http_url
from ecert.errors import FormatError

TRUST_LIST_TYP = "ecert-trustlist+jwt"
_KEY_STATUSES = frozenset({"active", "retired", "compromised"})


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise FormatError(f"trust list: {what}", code="malformed")


def _opt_int(value: Any) -> int | None:
    _require(value is None or type(value) is int, "times are integers")
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key with its validity window and status."""

    jwk: Mapping[str, str]
    valid_from: int
    valid_until: int | None = None
    status: str = "active"
    compromised_since: int | None = None

    @property
    def kid(self) -> str:
        """RFC 7638 thumbprint."""
        return self.jwk["kid"]

    def public_key(self) -> tuple[str, PublicKey]:
        """``(alg, key)``."""
        return key_from_jwk(self.jwk)

    def refuses(self, signed_at: int, leeway: int) -> str | None:
        """Why a signature made at ``signed_at`` must not be trusted, or None.

        ``"compromised"`` when made at or after the compromise (the leeway that tolerates
        clock skew never opens a window before it); ``"outside"`` when made before the key
        was valid (less the leeway) or after it was retired. The one copy of this rule, for
        certificates, QR codes and status lists alike.
        """
        if self.compromised_since is not None and signed_at >= self.compromised_since - leeway:
            return "compromised"
        if signed_at < self.valid_from - leeway or (
                self.valid_until is not None and signed_at > self.valid_until):
            return "outside"
        return None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"jwk": dict(self.jwk), "valid_from": self.valid_from,
                                 "status": self.status}
        if self.valid_until is not None:
            entry["valid_until"] = self.valid_until
        if self.compromised_since is not None:
            entry["compromised_since"] = self.compromised_since
        return entry

    @classmethod
    def from_json(cls, value: Any) -> TrustedKey:
        _require(isinstance(value, dict), "a key entry is an object")
        jwk = value.get("jwk")
        _require(isinstance(jwk, dict) and all(isinstance(v, str) for v in jwk.values()),
                 "key entry needs a jwk")
        key_from_jwk(jwk)  # refuses private, malformed and unsupported keys
        _require(jwk.get("kid") == jwk_thumbprint(jwk), "kid is not the JWK thumbprint")
        valid_from = value.get("valid_from")
        _require(type(valid_from) is int, "key entry needs valid_from")
        status = value.get("status")
        _require(isinstance(status, str) and status in _KEY_STATUSES,
                 "key status is active, retired or compromised")
        compromised_since = _opt_int(value.get("compromised_since"))
        _require((status == "compromised") == (compromised_since is not None),
                 "compromised keys, and only they, carry compromised_since")
        return cls(jwk, valid_from, _opt_int(value.get("valid_until")), status, compromised_since)


@dataclass(frozen=True, slots=True)
class TypeWindow:
    """A type an agency may issue only for a time: ``[start, end)``, ``None`` open.

    Published in an agency's ``type_windows`` (format 1.1): a verifier judges a
    certificate by the window in force at its ``iat``.
    """

    code: str
    start: int | None = None
    end: int | None = None

    def covers(self, at: int) -> bool:
        """Whether something issued at ``at`` falls inside the window."""
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.code}
        if self.start is not None:
            entry["from"] = self.start
        if self.end is not None:
            entry["until"] = self.end
        return entry

    @classmethod
    def from_json(cls, value: Any) -> TypeWindow:
        _require(isinstance(value, dict), "a type window is an object")
        code, start, end = value.get("code"), value.get("from"), value.get("until")
        _require(isinstance(code, str), "a type window names its type")
        _require((start is None or type(start) is int) and (end is None or type(end) is int),
                 "type window times are integers")
        _require(start is None or end is None or end > start,
                 "a type window ends after it starts")
        _require(start is not None or end is not None, "a type window is limited in time")
        return cls(code, start, end)


@dataclass(frozen=True, slots=True)
class TrustedAgency:
    """An agency as the trust list describes it.

    ``types`` it may issue without limit in time; ``windows`` the types it may issue only
    for a time (a type is in one or the other, never both). Old verifiers, which read only
    ``types``, so refuse every certificate of a type limited in time: they fail closed.
    """

    code: str
    name: str
    uscc: str
    uri: str
    types: tuple[str, ...]
    keys: tuple[TrustedKey, ...]
    windows: tuple[TypeWindow, ...] = ()
    #: Keys that sign the agency's requests to sharing services (format 1.2); they sign
    #: no certificate.
    requester_keys: tuple[TrustedKey, ...] = ()

    @property
    def type_codes(self) -> tuple[str, ...]:
        """Every type the agency may issue at some time."""
        return tuple(dict.fromkeys((*self.types, *(w.code for w in self.windows))))

    def authorizes(self, type_code: str, issued_at: int | None = None) -> bool:
        """Whether the agency may issue ``type_code`` at ``issued_at`` (None: at some time)."""
        if type_code in self.types:
            return True
        return any(w.code == type_code and (issued_at is None or w.covers(issued_at))
                   for w in self.windows)

    def to_json(self) -> dict[str, Any]:
        entry = {"code": self.code, "name": self.name, "uscc": self.uscc, "uri": self.uri,
                 "types": list(self.types), "keys": [k.to_json() for k in self.keys]}
        if self.windows:  # absent otherwise: such lists stay byte for byte as before 1.1
            entry["type_windows"] = [w.to_json() for w in self.windows]
        if self.requester_keys:  # likewise before 1.2
            entry["requester_keys"] = [k.to_json() for k in self.requester_keys]
        return entry

    @classmethod
    def from_json(cls, value: Any) -> TrustedAgency:
        _require(isinstance(value, dict), "an agency is an object")
        code, name, uscc, uri = (value.get(n) for n in ("code", "name", "uscc", "uri"))
        _require(isinstance(code, str) and isinstance(name, str) and isinstance(uscc, str)
                 and isinstance(uri, str), "agency needs code, name, uscc, uri")
        types, keys = value.get("types"), value.get("keys")
        _require(isinstance(types, list) and all(isinstance(t, str) for t in types),
                 "agency types are a list of strings")
        _require(isinstance(keys, list), "agency keys are a list")
        windows = value.get("type_windows", [])
        _require(isinstance(windows, list), "agency type_windows are a list")
        parsed = tuple(TypeWindow.from_json(w) for w in windows)
        _require(not {w.code for w in parsed} & set(types),
                 "a type is either unlimited (types) or limited in time (type_windows)")
        requester_keys = value.get("requester_keys", [])
        _require(isinstance(requester_keys, list), "agency requester_keys are a list")
        signing = tuple(TrustedKey.from_json(k) for k in keys)
        requesting = tuple(TrustedKey.from_json(k) for k in requester_keys)
        # One key, one role: a key that signs certificates must never authenticate requests.
        _require(not {k.kid for k in signing} & {k.kid for k in requesting},
                 "a requester key is not also a signing key")
        return cls(code, name, uscc, uri, tuple(types), signing, parsed, requesting)


@dataclass(frozen=True, slots=True)
class TypeEntry:
    """A catalog type as published: enough to check ids and map types across regions."""

    code: str
    version: int
    name: str
    national_type_code: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "version": self.version, "name": self.name,
                "national_type_code": self.national_type_code}

    @classmethod
    def from_json(cls, value: Any) -> TypeEntry:
        _require(isinstance(value, dict), "a type is an object")
        code, name, ntc = value.get("code"), value.get("name"), value.get("national_type_code")
        version = value.get("version")
        _require(isinstance(code, str) and isinstance(name, str) and isinstance(ntc, str)
                 and type(version) is int, "type needs code, version, name, national_type_code")
        return cls(code, version, name, ntc)


@dataclass(frozen=True, slots=True)
class Agreement:
    """A recognition agreement: which of another region's types we accept, as what.

    ``root_jwk`` pins the other region's root key; ``types`` maps their type codes to ours.
    Recognition is one hop: their own agreements mean nothing to us.
    """

    region: str
    name: str
    root_jwk: Mapping[str, str]
    trust_list_url: str
    valid_from: int
    valid_until: int | None
    types: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "region": self.region, "name": self.name, "root_key": dict(self.root_jwk),
            "trust_list": self.trust_list_url, "valid_from": self.valid_from,
            "types": dict(sorted(self.types.items())),
        }
        if self.valid_until is not None:
            entry["valid_until"] = self.valid_until
        return entry

    @classmethod
    def from_json(cls, value: Any) -> Agreement:
        _require(isinstance(value, dict), "an agreement is an object")
        region, name, url = value.get("region"), value.get("name"), value.get("trust_list")
        jwk, types = value.get("root_key"), value.get("types")
        valid_from, valid_until = value.get("valid_from"), value.get("valid_until")
        _require(isinstance(region, str) and isinstance(name, str) and isinstance(url, str),
                 "agreement needs region, name and trust_list")
        _require(isinstance(jwk, dict) and all(isinstance(v, str) for v in jwk.values()),
                 "agreement needs the other region's root_key")
        key_from_jwk(jwk)
        _require(jwk.get("kid") == jwk_thumbprint(jwk), "root_key kid is not its thumbprint")
        _require(isinstance(types, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in types.items()),
            "agreement types map their type codes to ours")
        _require(type(valid_from) is int, "agreement needs valid_from")
        _require(valid_until is None or (type(valid_until) is int and valid_until > valid_from),
                 "agreement valid_until is an integer after valid_from")
        return cls(region, name, jwk, url, valid_from, valid_until, types)

    def in_force(self, now: int) -> bool:
        """Whether the agreement holds at ``now``."""
        return self.valid_from <= now and (self.valid_until is None or now < self.valid_until)


_ENTITLEMENT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_REQUESTER = re.compile(r"[A-Z]{2,8}(/[a-z0-9][a-z0-9.-]{0,99})?")


def check_requester(value: Any) -> str:
    """A requester name: ``REGION/agency-code`` (one agency) or ``REGION`` (all of it)."""
    _require(isinstance(value, str) and _REQUESTER.fullmatch(value) is not None,
             "a requester is REGION or REGION/agency-code")
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Entitlement:
    """What a requesting agency (or every agency of a region) may fetch (用证清单).

    Published in the trust list (format 1.2) so that everyone sees who may receive what:
    ``types`` it may ask for, ``purposes`` it may state, ``claims`` it may receive (None:
    all of the type's claims), and whether it may fetch without the holder's consent (by
    statute, 依职能用证 — such an entitlement needed four-eyes approval).
    """

    id: str
    requester: str
    types: tuple[str, ...]
    purposes: tuple[str, ...]
    claims: tuple[str, ...] | None
    without_consent: bool
    valid_from: int
    valid_until: int | None = None

    def covers(self, requester: str, type_code: str, purpose: str, at: int) -> bool:
        """Whether this entitlement lets ``requester`` (``REGION/agency``) fetch
        ``type_code`` for ``purpose`` at ``at``."""
        return (self.names(requester) and type_code in self.types
                and purpose in self.purposes and self.in_force(at))

    def names(self, requester: str) -> bool:
        """Whether it is for ``requester`` (``REGION/agency``): by name, or its region's."""
        return self.requester in (requester, requester.split("/", 1)[0])

    def in_force(self, at: int) -> bool:
        """Whether it holds at ``at``."""
        return self.valid_from <= at and (self.valid_until is None or at < self.valid_until)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.id, "requester": self.requester,
                                 "types": list(self.types), "purposes": list(self.purposes),
                                 "without_consent": self.without_consent,
                                 "valid_from": self.valid_from}
        if self.claims is not None:
            entry["claims"] = list(self.claims)
        if self.valid_until is not None:
            entry["valid_until"] = self.valid_until
        return entry

    @classmethod
    def from_json(cls, value: Any) -> Entitlement:
        _require(isinstance(value, dict), "an entitlement is an object")
        ident, types, purposes = value.get("id"), value.get("types"), value.get("purposes")
        claims, without = value.get("claims"), value.get("without_consent")
        valid_from, valid_until = value.get("valid_from"), value.get("valid_until")
        _require(isinstance(ident, str) and _ENTITLEMENT_ID.fullmatch(ident) is not None,
                 "an entitlement has an id")
        requester = check_requester(value.get("requester"))

        def strings(v: Any) -> bool:
            return isinstance(v, list) and bool(v) and all(
                isinstance(x, str) and x for x in v) and len(set(v)) == len(v)

        _require(strings(types) and strings(purposes),
                 "an entitlement names its types and purposes (distinct, non-empty)")
        _require(claims is None or strings(claims), "entitlement claims are distinct names")
        _require(type(without) is bool, "without_consent is true or false")
        _require(type(valid_from) is int, "an entitlement needs valid_from")
        _require(valid_until is None or (type(valid_until) is int and valid_until > valid_from),
                 "entitlement valid_until is an integer after valid_from")
        return cls(ident, requester, tuple(types), tuple(purposes),
                   None if claims is None else tuple(claims), without, valid_from,
                   valid_until)


@dataclass(frozen=True, slots=True)
class LogInfo:
    """The region's public log as a trust list names it.

    ``key`` verifies checkpoints (a C2SP signed-note verifier key, ``origin`` its name);
    ``size`` and ``root`` are the tree this trust list was built from, so a status change
    missing from the log, or a forked log of the same size, shows. ``witness`` is the
    region's own cosigning key (tlog-cosignature/v1) when it witnesses other regions.
    """

    origin: str
    key: str
    size: int
    root: str
    witness: str | None = None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"origin": self.origin, "key": self.key, "size": self.size,
                                 "root": self.root}
        if self.witness is not None:
            entry["witness"] = self.witness
        return entry

    @classmethod
    def from_json(cls, value: Any) -> LogInfo:
        _require(isinstance(value, dict), "log is an object")
        origin, key, size = value.get("origin"), value.get("key"), value.get("size")
        root, witness = value.get("root"), value.get("witness")
        _require(isinstance(origin, str) and isinstance(key, str) and isinstance(root, str)
                 and type(size) is int and size >= 0,
                 "log needs origin, key, size and root")
        _require(witness is None or isinstance(witness, str), "log witness is a key")
        return cls(origin, key, size, root, witness)


_PAGE_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: At most this many files in ``verifier_page``.
MAX_PAGE_FILES = 32


@dataclass(frozen=True, slots=True)
class VerifierPage:
    """The region's verifier page as it published it (format 1.3, ``verifier_page``).

    ``files`` maps each file name under ``{base_url}/verify/`` to the base64url SHA-256 of
    its bytes. The page comes from the same host as the bundle, which nobody has to trust:
    these digests, signed with the trust list, let anyone check a served or kept copy of
    the page against what the region published (docs/verifier-page.md).
    """

    files: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"files": dict(sorted(self.files.items()))}

    @classmethod
    def from_json(cls, value: Any) -> VerifierPage:
        _require(isinstance(value, dict) and set(value) == {"files"}
                 and isinstance(value["files"], dict), 'verifier_page is {"files": {...}}')
        files = value["files"]
        _require(1 <= len(files) <= MAX_PAGE_FILES, "verifier_page names 1 to 32 files")
        for name, digest in files.items():
            _require(_PAGE_FILE.fullmatch(name) is not None, "verifier_page file names are plain")
            try:
                raw = b64url_decode(digest)
            except FormatError:
                raw = b""
            _require(len(raw) == 32, "verifier_page digests are SHA-256")
        return cls(dict(files))


@dataclass(frozen=True, slots=True)
class TrustList:
    """The content of a region's trust list."""

    region: str
    name: str
    base_url: str
    sequence: int
    issued_at: int
    next_update: int
    agencies: tuple[TrustedAgency, ...]
    status_keys: tuple[TrustedKey, ...]
    types: tuple[TypeEntry, ...]
    agreements: tuple[Agreement, ...] = ()
    #: URIs of every status list of the region, so mirrors know what to fetch.
    status_lists: tuple[str, ...] = ()
    #: Root rotation statements (``ecert-root-rotation+jwt``), oldest first.
    root_rotations: tuple[str, ...] = ()
    #: The region's public log and the tree this list was built from.
    log: LogInfo | None = None
    #: Keys that sign purpose-bound copies (``ecert-copy+jwt``) of the region's
    #: certificates (format 1.2).
    sharing_keys: tuple[TrustedKey, ...] = ()
    #: Who may fetch the region's certificates through its sharing service (format 1.2).
    entitlements: tuple[Entitlement, ...] = ()
    #: The digests of the region's verifier page (format 1.3).
    verifier_page: VerifierPage | None = None

    def agreement_with(self, region: str) -> Agreement | None:
        """Our agreement recognizing ``region``, if any."""
        for agreement in self.agreements:
            if agreement.region == region:
                return agreement
        return None

    def to_payload(self) -> dict[str, Any]:
        return {
            "iss": self.base_url,
            "region": {"code": self.region, "name": self.name, "base_url": self.base_url},
            "seq": self.sequence,
            "iat": self.issued_at,
            "next_update": self.next_update,
            "agencies": [a.to_json() for a in self.agencies],
            "status_keys": [k.to_json() for k in self.status_keys],
            "types": [t.to_json() for t in self.types],
            "agreements": [a.to_json() for a in self.agreements],
            "status_lists": list(self.status_lists),
            "root_rotations": list(self.root_rotations),
            **({"log": self.log.to_json()} if self.log is not None else {}),
            # Absent when empty: lists without sharing stay byte for byte as before 1.2.
            **({"sharing_keys": [k.to_json() for k in self.sharing_keys]}
               if self.sharing_keys else {}),
            **({"entitlements": [e.to_json() for e in self.entitlements]}
               if self.entitlements else {}),
            # Absent without a page: such lists stay byte for byte as before 1.3.
            **({"verifier_page": self.verifier_page.to_json()}
               if self.verifier_page is not None else {}),
        }

    def sign(self, signer: SignerLike) -> str:
        """Sign with the region root key; refuse URLs ecert would not fetch."""
        check_http_url(self.base_url, base=True)
        for uri in self.status_lists:
            check_http_url(uri)
        for agreement in self.agreements:
            check_http_url(agreement.trust_list_url)
        return sign_compact(self.to_payload(), signer, TRUST_LIST_TYP)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> TrustList:
        region = payload.get("region")
        if not isinstance(region, dict):
            raise FormatError("trust list: region is an object", code="malformed")
        code, name, base = region.get("code"), region.get("name"), region.get("base_url")
        seq, iat, nxt = payload.get("seq"), payload.get("iat"), payload.get("next_update")
        agencies, status_keys = payload.get("agencies"), payload.get("status_keys")
        types, agreements = payload.get("types"), payload.get("agreements")
        if not (isinstance(code, str) and isinstance(name, str) and isinstance(base, str)):
            raise FormatError("trust list: region needs code, name, base_url", code="malformed")
        if not (type(seq) is int and type(iat) is int and type(nxt) is int and nxt > iat):
            raise FormatError("trust list: seq, iat and next_update are integers, "
                              "next_update after iat", code="malformed")
        if not (isinstance(agencies, list) and isinstance(status_keys, list)
                and isinstance(types, list) and isinstance(agreements, list)):
            raise FormatError("trust list: agencies, status_keys, types and agreements are "
                              "lists", code="malformed")
        status_lists = payload.get("status_lists", [])
        _require(isinstance(status_lists, list) and all(isinstance(u, str) for u in status_lists),
                 "status_lists is a list of URIs")
        # A region's own URLs must be fetchable; a bad one makes this list malformed
        # (and so only this region fails). An agreement's URL is
        # checked when it is fetched: one bad agreement fails only that region.
        check_http_url(base, base=True)
        for uri in status_lists:
            check_http_url(uri)
        rotations = payload.get("root_rotations", [])
        _require(isinstance(rotations, list) and all(isinstance(r, str) for r in rotations),
                 "root_rotations is a list of compact JWS")
        parsed_agreements = tuple(Agreement.from_json(a) for a in agreements)
        _require(len({a.region for a in parsed_agreements}) == len(parsed_agreements),
                 "at most one agreement per region")
        sharing_keys, entitlements = (payload.get("sharing_keys", []),
                                      payload.get("entitlements", []))
        _require(isinstance(sharing_keys, list) and isinstance(entitlements, list),
                 "sharing_keys and entitlements are lists")
        parsed_entitlements = tuple(Entitlement.from_json(e) for e in entitlements)
        _require(len({e.id for e in parsed_entitlements}) == len(parsed_entitlements),
                 "entitlement ids are distinct")
        parsed_agencies = tuple(TrustedAgency.from_json(a) for a in agencies)
        parsed_sharing = tuple(TrustedKey.from_json(k) for k in sharing_keys)
        signing = {k.kid for a in parsed_agencies for k in a.keys}
        _require(not signing & {k.kid for k in parsed_sharing},
                 "a sharing key is not also an agency key")
        return cls(
            region=code, name=name, base_url=base, sequence=seq, issued_at=iat,
            next_update=nxt,
            agencies=parsed_agencies,
            status_keys=tuple(TrustedKey.from_json(k) for k in status_keys),
            types=tuple(TypeEntry.from_json(t) for t in types),
            agreements=parsed_agreements,
            status_lists=tuple(status_lists),
            root_rotations=tuple(rotations),
            log=None if payload.get("log") is None else LogInfo.from_json(payload["log"]),
            sharing_keys=parsed_sharing,
            entitlements=parsed_entitlements,
            verifier_page=None if payload.get("verifier_page") is None
            else VerifierPage.from_json(payload["verifier_page"]),
        )


ROOT_ROTATION_TYP = "ecert-root-rotation+jwt"


def sign_root_rotation(region: str, new_root_jwk: Mapping[str, str], issued_at: int,
                       old_root: SignerLike) -> str:
    """A statement, signed by the old root key, that ``new_root_jwk`` succeeds it."""
    payload = {"region": region, "old_kid": old_root.kid, "new_root_key": dict(new_root_jwk),
               "iat": issued_at}
    return sign_compact(payload, old_root, ROOT_ROTATION_TYP)
