"""The cases: the world they live in, the input of each, and what a verifier must answer.

Three regions (invented, as in ``ecert/_data/regions.json``): GD, the home region of every
case, signs with ES256 (one agency with Ed25519); ZJ, which GD recognizes for two of its
types, signs with Ed25519 (one agency with ES256); SH, which ZJ recognizes and GD does
not, publishes nothing. The clock of most cases is :data:`T0`. Each expectation is
stated here from the specification (docs/format.md), never read back from a verifier:
the test that runs the Python verifier over the vectors then checks the verifier.
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ecert import _samples
from ecert._formats import qr as _qr
from ecert._formats.certificate import CERTIFICATE_TYP, MAX_TOKEN_BYTES
from ecert._formats.copy import COPY_TYP, CopyClaims, OriginalRef
from ecert._formats.jose import ED25519, ES256, b64url_encode, canonical_json, sign_compact
from ecert._formats.statuslist import INVALID, MIN_LIST_SIZE, SUSPENDED, VALID
from ecert._formats.trustlist import Entitlement, TypeEntry, TypeWindow, sign_root_rotation
from ecert._vectors import hostile
from ecert._vectors.keys import SeededSigner, derive
from ecert._vectors.world import DAY, HOUR, AgencySpec, Key, Publication, Region, StatusListSpec
from ecert.identifiers import CertificateId

#: The seed every key derives from. The keys are therefore public: vectors only.
SEED = b"ecert conformance vectors, set 1"
#: 2026-03-01T00:00:00Z, the clock of most cases.
T0 = 1_772_323_200
#: What ``index.json`` says it is.
INDEX_FORMAT = "ecert-conformance-vectors"
INDEX_VERSION = 1
#: The verifier parameters every case assumes (the reference defaults).
LIMITS = {"max_token_bytes": MAX_TOKEN_BYTES, "leeway_seconds": 60,
          "trust_list_grace_seconds": DAY}
LEEWAY = LIMITS["leeway_seconds"]
GRACE = LIMITS["trust_list_grace_seconds"]

BUNDLES_DIR = "bundles"
IMAGES_DIR = "images"


def utc(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Cert:
    """A certificate token of the world, and what a verifier accepting it reports."""

    region: Region
    agency: str
    key: Key
    token: str
    id: str
    type_code: str
    #: The type it counts as in GD (None: a foreign type the agreement does not map).
    local_type: str | None
    #: The agreement GD accepts it under (None: a GD certificate).
    agreement: str | None
    #: Its ``certificate.issue`` entry in its region's log (None: not logged).
    leaf: int | None = None

    @property
    def payload(self) -> dict[str, Any]:
        """A fresh copy of its claims set."""
        return _copy.deepcopy(hostile.parts(self.token)[1])

    @property
    def header(self) -> dict[str, Any]:
        """A fresh copy of its header."""
        return dict(hostile.parts(self.token)[0])


# -- expectations ------------------------------------------------------------------------------


def refused(status: str, code: str, kind: str | None) -> dict[str, Any]:
    """The result of a token refused by one check before the lifecycle."""
    return {"valid": False, "status": status, "errors": [code], "kind": kind,
            "issuer": None, "certificate_id": None, "local_type": None, "agreement": None,
            "qr": None, "copy": None, "inclusion": None}


def trust_refused(code: str) -> dict[str, Any]:
    """The home trust list itself was refused: no token is verified (section 10.1)."""
    return refused("untrusted", code, None)


_UNSET: Any = object()


def accepted(cert: Cert, status: str = "valid", errors: Sequence[str] = (), *,
             kind: str = "certificate", kid: str | None = None,
             qr: Mapping[str, Any] | None = None, copy: Mapping[str, Any] | None = None,
             inclusion: Mapping[str, Any] | None = None,
             local_type: Any = _UNSET) -> dict[str, Any]:
    """The result of a token that passed every check before the lifecycle."""
    valid = status == "valid" and not errors and (inclusion is None or inclusion["included"])
    return {
        "valid": valid, "status": status, "errors": list(errors), "kind": kind,
        "issuer": {"region": cert.region.code, "agency": cert.agency,
                   "kid": kid or cert.key.kid},
        "certificate_id": cert.id,
        "local_type": cert.local_type if local_type is _UNSET else local_type,
        "agreement": cert.agreement,
        "qr": None if qr is None else dict(qr),
        "copy": None if copy is None else dict(copy),
        "inclusion": None if inclusion is None else dict(inclusion),
    }


def included(ok: bool, *errors: str) -> dict[str, Any]:
    """An expected ``inclusion`` member."""
    return {"included": ok, "errors": list(errors)}


# -- the catalogue -----------------------------------------------------------------------------


@dataclass
class Catalogue:
    """The cases, the bundles they use and the images they need, in order."""

    publications: dict[str, Publication] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    #: Image path → the QR text it holds.
    images: dict[str, str] = field(default_factory=dict)

    def publish(self, publication: Publication) -> None:
        """Add a bundle."""
        self.publications[publication.bundle_id] = publication

    def add(self, case_id: str, about: str, text: str, expected: dict[str, Any], *,
            form: str = "token", bundles: Sequence[str] = ("gd-2", "zj-3"),
            anchor: str = "gd-2", prior: Mapping[str, int] | None = None, now: int = T0,
            audience: str | None = None, purpose: str | None = None,
            leaf_index: int | None = None, image: str | None = None,
            full_token: str | None = None) -> None:
        """Add a case (``leaf_index`` given: ``require_inclusion``)."""
        assert all(c["id"] != case_id for c in self.cases), case_id  # noqa: S101
        entry: dict[str, Any] = {"form": form, "text": text}
        if image is not None:
            path = f"{IMAGES_DIR}/{image}.png"
            self.images[path] = text
            entry = {"form": "image", "text": text, "image": path}
        if full_token is not None:
            entry["full_token"] = full_token
        self.cases.append({
            "id": case_id, "about": about, "input": entry,
            "anchor": f"{BUNDLES_DIR}/{anchor}/anchor.json", "bundles": list(bundles),
            "prior_state": {"trust_list_sequences": dict(prior or {})},
            "now": now, "now_utc": utc(now),
            "options": {"audience": audience, "purpose": purpose,
                        "require_inclusion": leaf_index is not None,
                        "leaf_index": leaf_index},
            "expected": expected,
        })

    def index(self) -> dict[str, Any]:
        """The ``index.json`` document."""
        return {
            "$schema": "index.schema.json",
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "about": "Conformance vectors for ecert verifiers, generated by 'ecert vectors'. "
                     "Every path is relative to this file. See docs/conformance.md.",
            "limits": dict(LIMITS),
            "bundles": {
                p.bundle_id: {"region": p.region.code, "base_url": p.region.base_url,
                              "path": f"{BUNDLES_DIR}/{p.bundle_id}",
                              "sequence": p.sequence, "about": p.about}
                for p in self.publications.values()},
            "cases": self.cases,
        }

    def documents(self) -> dict[str, bytes]:
        """Every bundle file, by its path under the vectors directory."""
        out: dict[str, bytes] = {}
        for publication in self.publications.values():
            for path, data in publication.documents().items():
                out[f"{BUNDLES_DIR}/{publication.bundle_id}/{path}"] = data
        return out


# -- the world ---------------------------------------------------------------------------------


def _type(code: str) -> TypeEntry:
    (entry,) = (t for t in _samples.catalog() if t["code"] == code)
    return TypeEntry(code, 1, entry["name"], entry["national_type_code"])


def _qr_claims(code: str) -> list[str]:
    (entry,) = (t for t in _samples.catalog() if t["code"] == code)
    return list(entry["qr_claims"])


_FOOD_GD: dict[str, Any] = {
    "operator_name": "广州越秀食府餐饮有限公司", "uscc": "91440104MA59C3UX0G",
    "legal_representative": "梁振华", "licence_number": "JY14401040234567",
    "premises_address": "广州市越秀区中山五路219号", "main_business": "餐饮服务经营者",
    "business_items": ["热食类食品制售"]}
_FOOD_ZJ: dict[str, Any] = {
    "operator_name": "杭州西子湖畔餐饮管理有限公司", "uscc": "91330106MA2H2Y7K3D",
    "legal_representative": "周建平", "licence_number": "JY13301060345678",
    "premises_address": "杭州市西湖区北山街84号", "main_business": "餐饮服务经营者",
    "business_items": ["热食类食品制售", "冷食类食品制售"]}
_HOLDER_NAMES = {"cn.business-licence": "name", "cn.professional-qualification": "name",
                 "cn.driving-licence": "name"}


class World:
    """The regions, their certificates and their publications."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed

        def signer(label: str, alg: str) -> SeededSigner:
            return SeededSigner(seed, label, alg)

        def key(label: str, alg: str, valid_from: int, **times: int) -> Key:
            return Key(signer(label, alg), valid_from, **times)

        # GD: ES256, but gd-hrss signs with Ed25519 (notes and copies always do).
        self.gd_root_2 = signer("GD/root/2", ES256)
        self.gd_a0 = key("GD/gd-amr/0", ES256, T0 - 800 * DAY, valid_until=T0 - 300 * DAY)
        self.gd_a1 = key("GD/gd-amr/1", ES256, T0 - 300 * DAY)
        self.gd_a2 = key("GD/gd-amr/2", ES256, T0 - 200 * DAY, compromised_since=T0 - 10 * DAY)
        self.gd_h1 = key("GD/gd-hrss/1", ED25519, T0 - 300 * DAY)
        self.gd_operator = signer("GD/operator/li.ming", ED25519)
        self.gd = Region(
            "GD", "广东省", "https://ecert.gd.example", signer("GD/root/1", ES256),
            key("GD/status/1", ES256, T0 - 400 * DAY), signer("GD/log/1", ED25519),
            {"gd-amr": AgencySpec("gd-amr", "广东省市场监督管理局", "11440000MB2C01234R",
                                  ("cn.business-licence",),
                                  (self.gd_a0, self.gd_a1, self.gd_a2),
                                  # food licences only until 60 days ago: denied since
                                  (TypeWindow("cn.food-business-licence", None,
                                              T0 - 60 * DAY),)),
             "gd-hrss": AgencySpec("gd-hrss", "广东省人力资源和社会保障厅",
                                   "11440000MB2D05678G", ("cn.professional-qualification",),
                                   (self.gd_h1,))},
            tuple(_type(c) for c in ("cn.business-licence", "cn.food-business-licence",
                                     "cn.professional-qualification")),
            seed,
            sharing_keys=(key("GD/sharing/1", ED25519, T0 - 400 * DAY),),
            entitlements=(Entitlement("zj-amr-migration", "ZJ/zj-amr",
                                      ("cn.business-licence",), ("跨省迁移登记",),
                                      ("name", "uscc"), False, T0 - 100 * DAY),))
        # ZJ: Ed25519, but its traffic police sign with ES256.
        self.zj_z1 = key("ZJ/zj-amr/1", ED25519, T0 - 300 * DAY)
        self.zj_z2 = key("ZJ/zj-psb-traffic/1", ES256, T0 - 300 * DAY)
        self.zj_operator = signer("ZJ/operator/zhou.min", ED25519)
        self.zj = Region(
            "ZJ", "浙江省", "https://ecert.zj.example", signer("ZJ/root/1", ED25519),
            key("ZJ/status/1", ED25519, T0 - 400 * DAY), signer("ZJ/log/1", ED25519),
            {"zj-psb-traffic": AgencySpec("zj-psb-traffic", "浙江省公安厅交通管理局",
                                          "11330000MB1F06789M", ("cn.driving-licence",),
                                          (self.zj_z2,)),
             "zj-amr": AgencySpec("zj-amr", "浙江省市场监督管理局", "11330000MB1E02345Y",
                                  ("cn.business-licence", "zj.spjyxkz"), (self.zj_z1,))},
            tuple(_type(c) for c in ("cn.business-licence", "zj.spjyxkz",
                                     "cn.driving-licence")),
            seed, sharing_keys=(key("ZJ/sharing/1", ED25519, T0 - 400 * DAY),))
        # SH: recognized by ZJ only; it publishes nothing the vectors serve.
        self.sh_s1 = key("SH/sh-amr/1", ES256, T0 - 300 * DAY)
        self.sh = Region(
            "SH", "上海市", "https://ecert.sh.example", signer("SH/root/1", ES256),
            key("SH/status/1", ES256, T0 - 400 * DAY), signer("SH/log/1", ED25519),
            {"sh-amr": AgencySpec("sh-amr", "上海市市场监督管理局", "11310000MB3G04567A",
                                  ("cn.food-business-licence",), (self.sh_s1,))},
            (_type("cn.food-business-licence"),), seed)
        # The attacker: keys nobody trusts.
        self.mallory_es256 = signer("mallory/ES256", ES256)
        self.mallory_ed25519 = signer("mallory/Ed25519", ED25519)
        self.mallory_root = signer("mallory/root", ES256)

    # -- issuing -------------------------------------------------------------------------------

    def issue(self, region: Region, agency: str, key: Key, type_code: str, serial: int, *,
              iat: int, claims: Mapping[str, Any], holder_id: str, valid_days: int | None,
              nbf: int | None = None, status: int = VALID, number: int = 1,
              index: int | None = None, log: bool = True,
              changes: Mapping[str, Any] | None = None) -> Cert:
        """Sign a certificate token; allocate its status entry and log its issue."""
        spec = region.agencies[agency]
        type_entry = region.type_entry(type_code)
        cert_id = str(CertificateId(type_entry.national_type_code, spec.uscc, f"{serial:08d}"))
        if index is None:
            index = region.allocate(number, status)
        start = iat if nbf is None else nbf
        payload: dict[str, Any] = {
            "iss": region.agency_uri(agency), "sub": region.holder(holder_id), "jti": cert_id,
            "iat": iat, "nbf": start, "vct": type_code, "vct_version": type_entry.version,
            "region": region.code,
            "holder_name": claims[_HOLDER_NAMES.get(type_code, "operator_name")],
            "claims": dict(claims),
            "status": {"status_list": {"idx": index, "uri": region.status_uri(number)}},
        }
        if valid_days is not None:
            payload["exp"] = start + valid_days * DAY
        payload.update(changes or {})
        token = sign_compact(payload, key.signer, CERTIFICATE_TYP)
        leaf = None
        if log:
            operator = self.gd_operator if region is self.gd else self.zj_operator
            leaf = region.log_issue(token, cert_id, agency, type_code, key.kid, number, index,
                                    iat, operator)
        local_type, agreement = self._at_home(region, type_code)
        return Cert(region, agency, key, token, cert_id, type_code, local_type, agreement,
                    leaf)

    def _at_home(self, region: Region, type_code: str) -> tuple[str | None, str | None]:
        if region is self.gd:
            return type_code, None
        return self.gd_zj_types.get(type_code), region.code

    #: GD's agreement with ZJ: ZJ's food licence counts as GD's, business licences as
    #: business licences; ZJ's driving licence is not recognized.
    gd_zj_types: ClassVar[dict[str, str]] = {"zj.spjyxkz": "cn.food-business-licence",
                   "cn.business-licence": "cn.business-licence"}

    def resign(self, cert: Cert, changes: Mapping[str, Any], signer: SeededSigner | None = None,
               *, header: Mapping[str, Any] | None = None) -> str:
        """``cert``'s claims changed and signed again (by its key unless ``signer``)."""
        payload = cert.payload
        for name, value in changes.items():
            if value is _DELETE:
                del payload[name]
            else:
                payload[name] = value
        signing = signer or cert.key.signer
        if header is None:
            return sign_compact(payload, signing, CERTIFICATE_TYP)
        return hostile.signed({**cert.header, "kid": signing.kid, **header}, payload, signing)

    def qr(self, cert: Cert, *, signed_at: int, full: bool = False,
           signer: SeededSigner | None = None) -> str:
        """The QR text of ``cert`` (``ecert qr``; ``--full`` for every claim)."""
        payload = _qr.qr_payload(cert.payload, cert.token, _qr_claims(cert.type_code),
                                 cert.region.base_url, signed_at, full=full)
        return _qr.wrap(_qr.sign_qr_token(payload, signer or cert.key.signer))

    def copy(self, cert: Cert, *, audience: str, purpose: str, case: str, iat: int,
             claims: Sequence[str], ttl: int = DAY, signer: SeededSigner | None = None) -> str:
        """A purpose-bound copy of ``cert`` signed by its region's sharing key."""
        payload = cert.payload
        region = cert.region
        copy = CopyClaims(
            iss=region.base_url,
            jti=b64url_encode(derive(self.seed, f"copy/{cert.id}/{audience}/{iat}")[:16]),
            iat=iat, exp=iat + ttl, region=region.code, aud=audience, purpose=purpose,
            case=case, copy_of=cert.id,
            original=OriginalRef(payload["iss"], payload["vct"], payload["vct_version"],
                                 payload["iat"], payload["nbf"], payload.get("exp")),
            claims={n: payload["claims"][n] for n in claims},
            status_list_uri=payload["status"]["status_list"]["uri"],
            status_index=payload["status"]["status_list"]["idx"])
        return sign_compact(copy.to_payload(), signer or region.sharing_keys[0].signer,
                            COPY_TYP)


#: In ``World.resign`` changes: remove the claim.
_DELETE: Any = object()


def build(seed: bytes = SEED) -> Catalogue:
    """Every case of the set, with its bundles."""
    w = World(seed)
    gd, zj = w.gd, w.zj
    out = Catalogue()
    bl = _samples.claims("business-licence-gd")
    pq = _samples.claims("professional-qualification-gd")
    dl = _samples.claims("driving-licence-zj")
    sh_food = _samples.claims("food-business-licence-sh")

    def licence(serial: int, **kw: Any) -> Cert:
        return w.issue(gd, "gd-amr", kw.pop("key", w.gd_a1), "cn.business-licence", serial,
                       claims=bl, holder_id=bl["uscc"], valid_days=kw.pop("valid_days", 3650),
                       **kw)

    # -- what GD issued (logged) -----------------------------------------------------------
    valid = licence(1, iat=T0 - 30 * DAY)
    revoked = licence(2, iat=T0 - 29 * DAY, status=INVALID)
    suspended = licence(3, iat=T0 - 28 * DAY, status=SUSPENDED)
    expired = licence(4, iat=T0 - 250 * DAY, valid_days=249)
    not_yet = licence(5, iat=T0 - 5 * DAY, nbf=T0 + 30 * DAY)
    revoked_expired = licence(6, iat=T0 - 240 * DAY, valid_days=238, status=INVALID)
    retired_key = licence(7, iat=T0 - 400 * DAY, key=w.gd_a0)
    before_compromise = licence(8, iat=T0 - 20 * DAY, key=w.gd_a2)
    unknown_value = licence(9, iat=T0 - 27 * DAY, status=3)
    qualification = w.issue(gd, "gd-hrss", w.gd_h1, "cn.professional-qualification", 1,
                            iat=T0 - 20 * DAY, claims=pq, holder_id=pq["id_number"],
                            valid_days=None)
    food = w.issue(gd, "gd-amr", w.gd_a1, "cn.food-business-licence", 1, iat=T0 - 90 * DAY,
                   claims=_FOOD_GD, holder_id=_FOOD_GD["uscc"], valid_days=1825)
    on_list_2 = licence(10, iat=T0 - 26 * DAY, number=2)
    on_list_3 = licence(11, iat=T0 - 26 * DAY, number=3)
    on_list_4 = licence(12, iat=T0 - 26 * DAY, number=4)
    on_list_9 = licence(13, iat=T0 - 26 * DAY, number=9, index=4242, log=False)
    # -- what ZJ issued (logged in ZJ's log) -------------------------------------------------
    zj_food = w.issue(zj, "zj-amr", w.zj_z1, "zj.spjyxkz", 1, iat=T0 - 60 * DAY,
                      claims=_FOOD_ZJ, holder_id=_FOOD_ZJ["uscc"], valid_days=1825)
    zj_food_revoked = w.issue(zj, "zj-amr", w.zj_z1, "zj.spjyxkz", 2, iat=T0 - 59 * DAY,
                              claims=_FOOD_ZJ, holder_id=_FOOD_ZJ["uscc"], valid_days=1825,
                              status=INVALID)
    zj_licence = w.issue(zj, "zj-amr", w.zj_z1, "cn.business-licence", 1, iat=T0 - 58 * DAY,
                         claims=bl, holder_id=bl["uscc"], valid_days=3650)
    zj_driving = w.issue(zj, "zj-psb-traffic", w.zj_z2, "cn.driving-licence", 1,
                         iat=T0 - 100 * DAY, claims=dl, holder_id=dl["licence_number"],
                         valid_days=2190)
    sh_food_cert = w.issue(w.sh, "sh-amr", w.sh_s1, "cn.food-business-licence", 1,
                           iat=T0 - 40 * DAY, claims=sh_food, holder_id=sh_food["uscc"],
                           valid_days=1825, log=False)

    # -- the bundles -------------------------------------------------------------------------
    zj_agreement = zj.agreement(valid_from=T0 - 100 * DAY, types=w.gd_zj_types)
    gd_lists = {2: StatusListSpec(signer=w.gd_a1.signer),  # not a status key
                3: StatusListSpec(issued_at=T0 - 3 * DAY, expires_at=T0 - 2 * DAY),
                4: StatusListSpec(sub=gd.status_uri(1))}  # says it is list 1
    out.publish(Publication("gd-1", gd, 1, T0 - 2 * DAY,
                            "GD two days ago (sequence 1): older than gd-2",
                            (zj_agreement,), status_lists=gd_lists))
    out.publish(Publication("gd-2", gd, 2, T0 - HOUR,
                            "GD now (sequence 2): the home bundle of most cases",
                            (zj_agreement,), status_lists=gd_lists))
    out.publish(Publication(
        "gd-3", gd, 3, T0 - 30 * 60, "GD (sequence 3): its agreement with ZJ ended "
        "ten minutes before T0", (zj.agreement(valid_from=T0 - 100 * DAY,
                                              valid_until=T0 - 10 * 60,
                                              types=w.gd_zj_types),),
        status_lists=gd_lists))
    out.publish(Publication("gd-4", gd, 4, T0 - 20 * 60,
                            "GD (sequence 4): the agreement with ZJ withdrawn (absent)",
                            status_lists=gd_lists))
    rotation = sign_root_rotation("GD", w.gd_root_2.public_jwk, T0 - 15 * 60, gd.root)
    out.publish(Publication("gd-5", gd, 5, T0 - 10 * 60,
                            "GD (sequence 5): signed by a new root, reached from the first "
                            "by the rotation statement it carries",
                            (zj_agreement,), root=w.gd_root_2, root_rotations=(rotation,),
                            status_lists=gd_lists))
    forged_amr = gd.agencies["gd-amr"]
    forged_agencies = {**gd.agencies, "gd-amr": AgencySpec(
        forged_amr.code, forged_amr.name, forged_amr.uscc, forged_amr.types,
        (*forged_amr.keys, Key(w.mallory_es256, T0 - 300 * DAY)), forged_amr.windows)}
    out.publish(Publication("gd-forged", gd, 6, T0 - 5 * 60,
                            "a GD trust list (sequence 6) adding an attacker's key to gd-amr, "
                            "signed by the attacker's root, not GD's",
                            (zj_agreement,), root=w.mallory_root, agencies=forged_agencies,
                            status_lists=gd_lists))
    sh_agreement = w.sh.agreement(valid_from=T0 - 100 * DAY,
                                  types={"cn.food-business-licence": "zj.spjyxkz"})
    out.publish(Publication("zj-1", zj, 1, T0 - 20 * DAY,
                            "ZJ twenty days ago (sequence 1): past next_update and grace",
                            (sh_agreement,)))
    out.publish(Publication("zj-2", zj, 2, T0 - 3 * DAY,
                            "ZJ three days ago (sequence 2): older than zj-3",
                            (sh_agreement,)))
    out.publish(Publication("zj-3", zj, 3, T0 - 2 * HOUR,
                            "ZJ now (sequence 3): recognized by GD; recognizes SH itself",
                            (sh_agreement,)))
    gd_now = out.publications["gd-2"]

    certificate_cases(out, w, valid, revoked, suspended, expired, not_yet, revoked_expired,
                      retired_key, before_compromise, unknown_value, qualification, food)
    status_list_cases(out, w, valid, on_list_2, on_list_3, on_list_4, on_list_9)
    header_cases(out, w, valid, gd_now)
    structure_cases(out, w, valid)
    qr_cases(out, w, valid, revoked, before_compromise, zj_food)
    copy_cases(out, w, valid, revoked, zj_food, zj_driving)
    foreign_cases(out, w, zj_food, zj_food_revoked, zj_licence, zj_driving, sh_food_cert)
    trust_list_cases(out, w, valid, gd_now)
    inclusion_cases(out, w, valid, revoked, zj_food)
    return out


# -- the cases, by group -----------------------------------------------------------------------


def certificate_cases(out: Catalogue, w: World, valid: Cert, revoked: Cert, suspended: Cert,
                      expired: Cert, not_yet: Cert, revoked_expired: Cert, retired_key: Cert,
                      before_compromise: Cert, unknown_value: Cert, qualification: Cert,
                      food: Cert) -> None:
    """Lifecycle, keys and claims of GD certificates."""
    add = out.add
    add("lifecycle/valid", "A GD business licence (ES256), valid.", valid.token,
        accepted(valid))
    add("lifecycle/valid-no-expiry", "A professional qualification (Ed25519 key), which has "
        "no exp: valid.", qualification.token, accepted(qualification))
    add("lifecycle/revoked", "Its status list entry is 1: revoked.", revoked.token,
        accepted(revoked, "revoked", ["revoked"]))
    add("lifecycle/suspended", "Its status list entry is 2: suspended.", suspended.token,
        accepted(suspended, "suspended", ["suspended"]))
    add("lifecycle/expired", "Its exp passed a day ago.", expired.token,
        accepted(expired, "expired", ["expired"]))
    add("lifecycle/not-yet-valid", "Its nbf is 30 days ahead.", not_yet.token,
        accepted(not_yet, "not_yet_valid", ["not_yet_valid"]))
    add("lifecycle/revoked-and-expired", "Revoked and expired: every finding is reported, "
        "the gravest is the status.", revoked_expired.token,
        accepted(revoked_expired, "revoked", ["revoked", "expired"]))
    # A day earlier the current bundle was not published yet: gd-1 was.
    add("lifecycle/expiry-within-leeway", "The clock is 59 s past exp: within the leeway.",
        expired.token, accepted(expired), now=T0 - DAY + LEEWAY - 1, bundles=("gd-1", "zj-3"))
    add("lifecycle/expired-at-leeway", "The clock is exactly exp + leeway: expired.",
        expired.token, accepted(expired, "expired", ["expired"]), now=T0 - DAY + LEEWAY,
        bundles=("gd-1", "zj-3"))
    add("status/unknown-value", "Its status list entry is 3, which ecert never writes.",
        unknown_value.token, refused("invalid", "status_unknown_value", "certificate"))
    add("keys/retired-key-before-retirement", "Signed by a key retired since, while it was "
        "valid: valid.", retired_key.token, accepted(retired_key))
    add("keys/retired-key-after-retirement", "Signed by the retired key after its "
        "valid_until.", w.resign(valid, {}, w.gd_a0.signer),
        refused("untrusted", "key_not_valid_at_iat", "certificate"))
    add("keys/key-not-yet-valid", "Its iat is before the key's valid_from (less the "
        "leeway).", w.resign(valid, {"iat": T0 - 400 * DAY, "nbf": T0 - 400 * DAY}),
        refused("untrusted", "key_not_valid_at_iat", "certificate"))
    add("keys/compromised-key-before-compromise", "Signed by a key declared compromised, "
        "with an iat before compromised_since: valid.", before_compromise.token,
        accepted(before_compromise))
    add("keys/compromised-key", "Signed by the compromised key, with an iat after "
        "compromised_since.", w.resign(before_compromise, {"iat": T0 - 5 * DAY,
                                                          "nbf": T0 - 5 * DAY}),
        refused("untrusted", "key_compromised", "certificate"))
    add("keys/compromised-key-within-leeway", "Signed by the compromised key 30 s before "
        "compromised_since: the leeway never opens a window before a compromise.",
        w.resign(before_compromise, {"iat": T0 - 10 * DAY - 30, "nbf": T0 - 10 * DAY - 30}),
        refused("untrusted", "key_compromised", "certificate"))
    add("claims/type-window", "A food licence of gd-amr, issued while its window was open: "
        "valid.", food.token, accepted(food))
    add("claims/type-window-closed", "A food licence of gd-amr dated after its window "
        "closed.", w.resign(food, {"iat": T0 - 30 * DAY, "nbf": T0 - 30 * DAY}),
        refused("untrusted", "type_not_authorized_at_iat", "certificate"))
    pq_id = str(CertificateId(w.gd.type_entry("cn.professional-qualification")
                              .national_type_code, "11440000MB2C01234R", "00000001"))
    add("claims/type-not-authorized", "gd-amr signs a professional qualification, a type it "
        "may not issue.", w.resign(valid, {"vct": "cn.professional-qualification",
                                           "jti": pq_id}),
        refused("untrusted", "type_not_authorized", "certificate"))
    add("claims/issuer-mismatch", "iss names gd-hrss; the key is gd-amr's.",
        w.resign(valid, {"iss": w.gd.agency_uri("gd-hrss")}),
        refused("untrusted", "issuer_mismatch", "certificate"))
    add("claims/region-mismatch", "region says ZJ; the key is GD's.",
        w.resign(valid, {"region": "ZJ"}),
        refused("untrusted", "region_mismatch", "certificate"))
    wrong_check = valid.id[:-1] + ("A" if valid.id[-1] != "A" else "B")
    add("claims/bad-check-character", "jti with a wrong MOD 37,36 check character.",
        w.resign(valid, {"jti": wrong_check}),
        refused("invalid", "bad_certificate_id", "certificate"))
    other_id = str(CertificateId(w.gd.type_entry("cn.business-licence").national_type_code,
                                 "11440000MB2D05678G", "00000001"))
    add("claims/id-of-another-agency", "A well-formed jti naming gd-hrss's USCC.",
        w.resign(valid, {"jti": other_id}),
        refused("invalid", "bad_certificate_id", "certificate"))
    add("claims/type-version-unknown", "vct_version 2; the trust list knows version 1.",
        w.resign(valid, {"vct_version": 2}), refused("invalid", "bad_claims", "certificate"))
    add("claims/iat-not-integer", "iat is a string.",
        w.resign(valid, {"iat": str(T0 - 30 * DAY)}),
        refused("invalid", "bad_claims", "certificate"))
    add("claims/iat-fraction", "iat is written with a fraction (1.0 style).",
        hostile.signed(valid.header, canonical_json(valid.payload).decode().replace(
            f'"iat":{T0 - 30 * DAY}', f'"iat":{T0 - 30 * DAY}.0'), valid.key.signer),
        refused("invalid", "bad_claims", "certificate"))
    add("claims/time-beyond-9999", "exp after 9999-12-31T23:59:59Z.",
        w.resign(valid, {"exp": 253_402_300_800}),
        refused("invalid", "bad_claims", "certificate"))
    add("claims/missing-status", "No status claim.", w.resign(valid, {"status": _DELETE}),
        refused("invalid", "bad_claims", "certificate"))
    add("claims/issued-in-future", "iat two hours after the clock.",
        w.resign(valid, {"iat": T0 + 2 * HOUR, "nbf": T0 + 2 * HOUR}),
        refused("invalid", "issued_in_future", "certificate"))


def status_list_cases(out: Catalogue, w: World, valid: Cert, on_list_2: Cert,
                      on_list_3: Cert, on_list_4: Cert, on_list_9: Cert) -> None:
    """The certificate's status list (format section 10.3)."""
    add = out.add
    status = valid.payload["status"]["status_list"]
    unallocated = next(i for i in range(MIN_LIST_SIZE)
                       if i not in w.gd.statuses[1] and i % 7919 == 1)
    add("status/unallocated-index", "Signed with the agency key, pointing at an index the "
        "log never allocated, which the list holds as 1: revoked.",
        w.resign(valid, {"status": {"status_list": {**status, "idx": unallocated}}}),
        accepted(valid, "revoked", ["revoked"]))
    add("status/index-out-of-range", "idx is the list's size.",
        w.resign(valid, {"status": {"status_list": {**status, "idx": MIN_LIST_SIZE}}}),
        refused("invalid", "status_index_out_of_range", "certificate"))
    add("status/list-unavailable", "Its status list (status/9.jwt) is not published.",
        on_list_9.token, refused("invalid", "status_list_unavailable", "certificate"))
    add("status/list-outside-bundle", "Its status URI lies outside the region's base URL.",
        w.resign(valid, {"status": {"status_list": {
            **status, "uri": "https://ecert.zj.example/status/1.jwt"}}}),
        refused("invalid", "status_list_unavailable", "certificate"))
    add("status/list-not-signed-by-status-key", "status/2.jwt is signed by an agency key.",
        on_list_2.token, refused("invalid", "status_list_invalid", "certificate"))
    add("status/list-expired", "status/3.jwt expired two days ago.", on_list_3.token,
        refused("invalid", "status_list_expired", "certificate"))
    add("status/list-for-another-uri", "status/4.jwt says it is status/1.jwt (sub).",
        on_list_4.token, refused("invalid", "status_list_invalid", "certificate"))


def header_cases(out: Catalogue, w: World, valid: Cert, gd_now: Publication) -> None:
    """Header policy (format section 2.5) and keys named by the token."""
    add = out.add
    a1 = w.gd_a1.signer
    header, payload = valid.header, valid.payload
    body = valid.token.split(".")[1]
    add("header/alg-none-unsigned", "alg none with an empty signature part.",
        f"{hostile.encode({**header, 'alg': 'none'})}.{body}.",
        refused("invalid", "malformed", None))
    add("header/alg-none", "alg none, signed all the same.",
        hostile.signed({**header, "alg": "none"}, payload, a1),
        refused("invalid", "unsupported_alg", None))
    public_pem = a1.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    add("header/alg-hs256-public-key", "HS256 keyed with the agency's public key (PEM): "
        "the algorithm confusion attack.",
        hostile.signed({**header, "alg": "HS256"}, payload, hostile.hs256(public_pem)),
        refused("invalid", "unsupported_alg", None))
    add("header/alg-eddsa", "The polymorphic EdDSA name (ecert allows only Ed25519).",
        hostile.signed({**header, "alg": "EdDSA"}, payload, a1),
        refused("invalid", "unsupported_alg", None))
    add("header/alg-rs256", "alg RS256.", hostile.signed({**header, "alg": "RS256"}, payload,
                                                         a1),
        refused("invalid", "unsupported_alg", None))
    add("header/alg-missing", "No alg.", hostile.signed(
        {k: v for k, v in header.items() if k != "alg"}, payload, a1),
        refused("invalid", "unsupported_alg", None))
    add("header/alg-key-mismatch", "alg Ed25519 with the kid of an ES256 key.",
        hostile.signed({**header, "alg": "Ed25519"}, payload, a1),
        refused("invalid", "alg_key_mismatch", "certificate"))
    mallory = w.mallory_es256
    add("header/embedded-jwk", "The attacker's key in a jwk header, signed with it.",
        hostile.signed({**header, "kid": mallory.kid, "jwk": mallory.public_jwk}, payload,
                       mallory), refused("invalid", "embedded_key", None))
    add("header/embedded-jku", "A jku header pointing at the attacker's keys.",
        hostile.signed({**header, "jku": "https://mallory.example/jwks.json"}, payload, a1),
        refused("invalid", "embedded_key", None))
    add("header/embedded-x5c", "An x5c header.",
        hostile.signed({**header, "x5c": ["MIIB"]}, payload, a1),
        refused("invalid", "embedded_key", None))
    add("header/crit", "A crit header naming an extension.",
        hostile.signed({**header, "crit": ["exp"]}, payload, a1),
        refused("invalid", "unsupported_crit", None))
    add("header/typ-jwt", "typ JWT.", hostile.signed({**header, "typ": "JWT"}, payload, a1),
        refused("invalid", "wrong_typ", None))
    add("header/typ-case", "typ in capitals (typ is case-sensitive).",
        hostile.signed({**header, "typ": "ECERT+JWT"}, payload, a1),
        refused("invalid", "wrong_typ", None))
    add("header/typ-missing", "No typ.", hostile.signed(
        {k: v for k, v in header.items() if k != "typ"}, payload, a1),
        refused("invalid", "wrong_typ", None))
    documents = gd_now.documents()
    add("header/status-list-as-certificate", "GD's status list token presented as a "
        "certificate.", documents["status/1.jwt"].decode("ascii"),
        refused("invalid", "wrong_typ", None))
    add("header/trust-list-as-certificate", "GD's trust list presented as a certificate.",
        documents["trustlist.jwt"].decode("ascii"), refused("invalid", "wrong_typ", None))
    add("header/kid-missing", "No kid.", hostile.signed(
        {k: v for k, v in header.items() if k != "kid"}, payload, a1),
        refused("invalid", "malformed", None))
    add("header/kid-too-long", "A kid of 129 characters.",
        hostile.signed({**header, "kid": "k" * 129}, payload, a1),
        refused("invalid", "malformed", None))
    add("header/kid-unknown", "Signed by the attacker's key, under its own kid.",
        sign_compact(payload, mallory, CERTIFICATE_TYP),
        refused("untrusted", "unknown_kid", "certificate"))
    add("header/kid-of-status-key", "Signed by GD's status key: not an agency key.",
        sign_compact(payload, w.gd.status_key.signer, CERTIFICATE_TYP),
        refused("untrusted", "unknown_kid", "certificate"))
    add("header/kid-of-root-key", "Signed by GD's root key: not an agency key.",
        sign_compact(payload, w.gd.root, CERTIFICATE_TYP),
        refused("untrusted", "unknown_kid", "certificate"))
    add("header/kid-of-sharing-key", "A certificate signed by GD's sharing key (which signs "
        "only copies).", sign_compact(payload, w.gd.sharing_keys[0].signer, CERTIFICATE_TYP),
        refused("untrusted", "unknown_kid", "certificate"))
    add("signature/attacker-key-under-agency-kid", "The attacker signs under gd-amr's kid.",
        hostile.signed(header, payload, mallory),
        refused("invalid", "bad_signature", "certificate"))
    tampered = {**payload, "holder_name": "冒名顶替有限公司"}
    add("signature/tampered-payload", "holder_name changed after signing.",
        hostile.with_payload_text(valid.token, canonical_json(tampered).decode()),
        refused("invalid", "bad_signature", "certificate"))
    add("signature/payload-respelled", "The same claims written with other white space: the "
        "signature covers the bytes.",
        hostile.with_payload_text(valid.token, canonical_json(payload).decode().replace(
            ",", ", ", 1)), refused("invalid", "bad_signature", "certificate"))
    order = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
    add("signature/psychic-zero", "r = s = 0 (CVE-2022-21449).",
        hostile.with_signature(valid.token, bytes(64)),
        refused("invalid", "bad_signature", "certificate"))
    add("signature/r-equals-order", "r = s = n, the order of P-256.",
        hostile.with_signature(valid.token, order.to_bytes(32, "big") * 2),
        refused("invalid", "bad_signature", "certificate"))
    signature = hostile.parts(valid.token)[2]
    add("signature/truncated", "The signature's last byte removed.",
        hostile.with_signature(valid.token, signature[:63]),
        refused("invalid", "bad_signature", "certificate"))
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    add("signature/der-encoded", "The right signature, DER-encoded instead of R‖S.",
        hostile.with_signature(valid.token, der),
        refused("invalid", "bad_signature", "certificate"))


def structure_cases(out: Catalogue, w: World, valid: Cert) -> None:
    """Size, base64url and strict JSON (format sections 2.1-2.4)."""
    add = out.add
    a1 = w.gd_a1.signer
    token, header, payload = valid.token, valid.header, valid.payload
    h, p, s = token.split(".")

    def malformed(case_id: str, about: str, text: str) -> None:
        add(f"structure/{case_id}", about, text, refused("invalid", "malformed", None))

    # Just over the limit, and validly signed: refused before anything is decoded.
    filler = (MAX_TOKEN_BYTES - len(token)) * 3 // 4
    while True:
        big = hostile.signed(header, {**payload, "claims": {**payload["claims"],
                                                            "filler": "x" * filler}}, a1)
        if len(big) > MAX_TOKEN_BYTES:
            break
        filler += 1
    add("structure/oversized", f"A validly signed token of {len(big)} characters, above "
        f"the limit of {MAX_TOKEN_BYTES}.", big, refused("invalid", "too_large", None))
    malformed("empty", "The empty string.", "")
    malformed("two-parts", "Header and payload only.", f"{h}.{p}")
    malformed("four-parts", "A fourth part.", f"{token}.{s}")
    assert len(s) % 4 == 2  # noqa: S101 - 64 bytes: two characters of padding
    malformed("base64-padding", "The signature with its = padding.", f"{token}==")
    standard = p.replace("-", "+").replace("_", "/")
    assert standard != p  # noqa: S101 - the payload has both in practice
    malformed("base64-standard-alphabet", "+ and / instead of - and _.",
              f"{h}.{standard}.{s}")
    malformed("base64-non-canonical", "The signature's last character changed only in its "
              "unused bits.", f"{h}.{p}.{hostile.non_canonical_tail(s)}")
    malformed("non-ascii", "A non-ASCII character inside the payload part.",
              f"{h}.{p[:10]}é{p[10:]}.{s}")
    malformed("white-space-inside", "A space inside the payload part.",
              f"{h}.{p[:10]} {p[10:]}.{s}")
    malformed("header-not-json", "The header is not JSON.",
              f"{b64url_encode(b'{alg:ES256}')}.{p}.{s}")
    malformed("payload-array", "The payload is a JSON array, signed.",
              hostile.signed(header, "[1,2]", a1))
    text = canonical_json(payload).decode()
    malformed("duplicate-header-member", "alg twice in the header (first none), signed.",
              hostile.signed('{"alg":"none","alg":"ES256","kid":"' + a1.kid
                             + '","typ":"ecert+jwt"}', payload, a1))
    malformed("duplicate-payload-member", "iss twice in the payload, signed.",
              hostile.signed(header, '{"iss":"https://mallory.example",' + text[1:], a1))
    malformed("duplicate-nested-member", "A duplicate member inside claims, signed.",
              hostile.signed(header, text.replace('"claims":{', '"claims":{"name":"x",', 1),
                             a1))
    malformed("json-nan", "NaN in the payload, signed.",
              hostile.signed(header, text.replace('"vct_version":1', '"vct_version":NaN'), a1))
    malformed("json-overflow", "A number overflowing a double (1e999), signed.",
              hostile.signed(header, text.replace('"vct_version":1', '"vct_version":1e999'),
                             a1))
    malformed("json-trailing-data", "JSON followed by more text, signed.",
              hostile.signed(header, text + "{}", a1))


def qr_cases(out: Catalogue, w: World, valid: Cert, revoked: Cert, before_compromise: Cert,
             zj_food: Cert) -> None:
    """QR codes: short and full forms, the digest binding, hostile containers."""
    add = out.add
    claims = valid.payload["claims"]
    short_claims = sorted(n for n in _qr_claims(valid.type_code) if n in claims)
    short = w.qr(valid, signed_at=T0 - 29 * DAY)
    full = w.qr(valid, signed_at=T0 - 29 * DAY, full=True)

    def qr_result(cert: Cert, present: Sequence[str], bound: bool,
                  matches: bool | None = None, status: str = "valid",
                  errors: Sequence[str] = ()) -> dict[str, Any]:
        return accepted(cert, status, errors, kind="qr",
                        qr={"claims_present": sorted(present), "digest_bound": bound,
                            "matches_full_token": matches})

    add("qr/short", "The short form: the type's qr_claims, the others bound by the digest.",
        short, qr_result(valid, short_claims, True), form="qr")
    add("qr/full", "The full form (every claim).", full,
        qr_result(valid, sorted(claims), False), form="qr")
    add("qr/short-image", "The short form as a PNG image.", short,
        qr_result(valid, short_claims, True), image="qr-short")
    add("qr/full-image", "The full form as a PNG image.", full,
        qr_result(valid, sorted(claims), False), image="qr-full")
    # The agency signs a second token for the same id, with an address the QR does not
    # carry: every field the QR asserts agrees, only the digest tells them apart.
    other = w.resign(valid, {"claims": {**claims, "address": "深圳市南山区科技园南区1号"}})
    add("qr/short-binds-token", "The short form beside its full token: the digest "
        "binding holds.", short, qr_result(valid, short_claims, True, True), form="qr",
        full_token=valid.token)
    add("qr/short-binding-broken", "The short form beside another token of the same id "
        "whose address differs (signed by the agency): the binding does not hold.", short,
        qr_result(valid, short_claims, True, False), form="qr", full_token=other)
    add("qr/full-binds-token", "The full form beside its full token.", full,
        qr_result(valid, sorted(claims), False, True), form="qr", full_token=valid.token)
    add("qr/full-binding-broken", "The full form beside the other token.", full,
        qr_result(valid, sorted(claims), False, False), form="qr", full_token=other)
    revoked_claims = sorted(n for n in _qr_claims(revoked.type_code)
                            if n in revoked.payload["claims"])
    add("qr/revoked", "The QR of a revoked licence.", w.qr(revoked, signed_at=T0 - 28 * DAY),
        qr_result(revoked, revoked_claims, True, status="revoked", errors=["revoked"]),
        form="qr")
    add("qr/compromised-key", "A QR signed by the compromised key after compromised_since "
        "(its a claim): the key is judged at the QR's signing time.",
        w.qr(before_compromise, signed_at=T0 - 5 * DAY),
        refused("untrusted", "key_compromised", "qr"), form="qr")
    food_claims = sorted(n for n in _qr_claims("zj.spjyxkz") if n in zj_food.payload["claims"])
    add("qr/foreign", "The short QR of a ZJ food licence, recognized as GD's food licence.",
        w.qr(zj_food, signed_at=T0 - 59 * DAY),
        qr_result(zj_food, food_claims, True), form="qr")
    data = hostile.container(short)
    add("qr/unknown-container-version", "EC2: instead of EC1:.", "EC2:" + short[4:],
        refused("invalid", "qr_unknown_version", None), form="qr")
    add("qr/not-base45", "A lower-case letter, outside base45.", short[:20] + "a" + short[21:],
        refused("invalid", "qr_malformed", None), form="qr")
    add("qr/truncated", "Only the first 40 characters.", short[:40],
        refused("invalid", "qr_malformed", None), form="qr")
    add("qr/deflate-bomb", "A body inflating past 4096 bytes.",
        hostile.deflate_bomb(data[0] & 0b11, data[1:5], 64 * 1024),
        refused("invalid", "qr_too_large", None), form="qr")
    flipped = bytearray(data)
    flipped[5 + 10] ^= 0x01  # a bit of the signature's R
    add("qr/bad-signature", "One bit of the signature flipped.",
        hostile.qr_text(bytes(flipped)), refused("invalid", "bad_signature", "qr"), form="qr")
    unknown = bytearray(data)
    unknown[1:5] = b"\x00\x00\x00\x00"
    add("qr/unknown-key-reference", "A key reference matching no agency key.",
        hostile.qr_text(bytes(unknown)), refused("untrusted", "unknown_kid", None), form="qr")


def copy_cases(out: Catalogue, w: World, valid: Cert, revoked: Cert, zj_food: Cert,
               zj_driving: Cert) -> None:
    """Purpose-bound copies (format section 17)."""
    add = out.add
    purpose, case_no, audience = "跨省迁移登记", "ZJ2026030100001", "ZJ/zj-amr"
    sharing = w.gd.sharing_keys[0].kid

    def made(cert: Cert, **kw: Any) -> str:
        return w.copy(cert, audience=kw.pop("audience", audience), purpose=purpose,
                      case=case_no, iat=kw.pop("iat", T0 - HOUR), claims=("name", "uscc"),
                      **kw)

    def copy_result(cert: Cert, status: str = "valid", errors: Sequence[str] = (),
                    kid: str = sharing, local_type: Any = _UNSET,
                    qr: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return accepted(cert, status, errors, kind="copy", kid=kid, local_type=local_type,
                        copy={"audience": audience, "purpose": purpose, "case": case_no},
                        qr=qr)

    good = made(valid)
    add("copy/for-audience-and-purpose", "A copy verified for its audience and purpose.",
        good, copy_result(valid), form="copy", audience=audience, purpose=purpose)
    add("copy/for-audience", "The copy verified for its audience, no purpose stated.", good,
        copy_result(valid), form="copy", audience=audience)
    # The copy's QR form (format 17.4, a copy card's code): the container of the copy token
    # itself, flag bit 3; its key reference resolved among sharing keys only.
    good_qr = _qr.wrap(good)
    add("copy/qr-form", "The copy's QR form (container flag bit 3), verified for its audience "
        "and purpose: the copy's verdict, every claim of the copy carried.", good_qr,
        copy_result(valid, qr={"claims_present": ["name", "uscc"], "digest_bound": False,
                               "matches_full_token": None}),
        form="qr", audience=audience, purpose=purpose)
    add("copy/qr-form-no-audience", "The copy's QR form verified without an audience.",
        good_qr, refused("untrusted", "audience_required", "copy"), form="qr")
    add("copy/qr-form-wrong-purpose", "The copy's QR form verified for another purpose.",
        good_qr, refused("untrusted", "wrong_purpose", "copy"), form="qr", audience=audience,
        purpose="贷款审批")
    add("copy/no-audience", "The copy verified without an audience.", good,
        refused("untrusted", "audience_required", "copy"), form="copy")
    add("copy/wrong-audience", "The copy verified for another agency of the same region.",
        good, refused("untrusted", "wrong_audience", "copy"), form="copy",
        audience="ZJ/zj-psb-traffic", purpose=purpose)
    add("copy/region-as-audience", "The copy verified for the requester's region (a region "
        "is not one of its agencies).", good,
        refused("untrusted", "wrong_audience", "copy"), form="copy", audience="ZJ")
    add("copy/wrong-purpose", "The copy verified for another purpose.", good,
        refused("untrusted", "wrong_purpose", "copy"), form="copy", audience=audience,
        purpose="贷款审批")
    add("copy/expired", "A copy made three days ago for one day; its original is valid.",
        made(valid, iat=T0 - 3 * DAY), copy_result(valid, "expired", ["copy_expired"]),
        form="copy", audience=audience, purpose=purpose)
    add("copy/of-revoked-original", "A copy of a licence revoked since.", made(revoked),
        copy_result(revoked, "revoked", ["revoked"]), form="copy", audience=audience,
        purpose=purpose)
    add("copy/signed-by-agency-key", "A copy signed by the agency's key (only sharing keys "
        "sign copies).", made(valid, signer=w.gd_a1.signer),
        refused("untrusted", "unknown_kid", "copy"), form="copy", audience=audience,
        purpose=purpose)
    add("copy/bearing-vct", "A copy with a top-level vct (the certificate's shape), signed "
        "by the sharing key.", hostile.signed(
            hostile.parts(good)[0], {**hostile.parts(good)[1], "vct": "cn.business-licence"},
            w.gd.sharing_keys[0].signer),
        refused("invalid", "bad_claims", "copy"), form="copy", audience=audience)
    zj_sharing = w.zj.sharing_keys[0].kid
    zj_copy = w.copy(zj_food, audience="GD/gd-amr", purpose="食品经营许可核查",
                     case="GD2026030100007", iat=T0 - HOUR,
                     claims=("operator_name", "licence_number"))
    add("copy/foreign", "A ZJ copy of a ZJ food licence for gd-amr: recognized, counted as "
        "GD's food licence.", zj_copy,
        accepted(zj_food, kind="copy", kid=zj_sharing,
                 copy={"audience": "GD/gd-amr", "purpose": "食品经营许可核查",
                       "case": "GD2026030100007"}),
        form="copy", audience="GD/gd-amr")
    driving_copy = w.copy(zj_driving, audience="GD/gd-amr", purpose="驾驶资格核验",
                          case="GD2026030100008", iat=T0 - HOUR, claims=("name",))
    add("copy/foreign-unmapped-type", "A ZJ copy of a driving licence, a type GD's agreement "
        "does not map: accepted (what is released is ZJ's entitlements' decision), with no "
        "local type.", driving_copy,
        accepted(zj_driving, kind="copy", kid=zj_sharing, local_type=None,
                 copy={"audience": "GD/gd-amr", "purpose": "驾驶资格核验",
                       "case": "GD2026030100008"}),
        form="copy", audience="GD/gd-amr")


def foreign_cases(out: Catalogue, w: World, zj_food: Cert, zj_food_revoked: Cert,
                  zj_licence: Cert, zj_driving: Cert, sh_food: Cert) -> None:
    """Certificates of other regions (format section 10.5)."""
    add = out.add
    add("foreign/recognized", "A ZJ food licence (Ed25519), counted as GD's food licence.",
        zj_food.token, accepted(zj_food))
    add("foreign/recognized-same-type", "A ZJ business licence, counted as a business "
        "licence.", zj_licence.token, accepted(zj_licence))
    add("foreign/revoked", "A revoked ZJ food licence: ZJ's status list says 1.",
        zj_food_revoked.token, accepted(zj_food_revoked, "revoked", ["revoked"]))
    add("foreign/unmapped-type", "A ZJ driving licence (ES256): the agreement does not map "
        "the type.", zj_driving.token,
        refused("untrusted", "type_not_recognized", "certificate"))
    add("foreign/one-hop", "An SH licence: ZJ recognizes SH, GD does not (one hop).",
        sh_food.token, refused("untrusted", "region_not_recognized", "certificate"))
    add("foreign/unknown-kid", "Claims region ZJ, signed by a key ZJ's list does not have.",
        sign_compact(zj_food.payload, w.mallory_ed25519, CERTIFICATE_TYP),
        refused("untrusted", "unknown_kid", "certificate"))
    add("foreign/agreement-ended", "GD's list (gd-3) still has the agreement, which ended "
        "ten minutes ago.", zj_food.token,
        refused("untrusted", "agreement_not_in_force", "certificate"),
        bundles=("gd-3", "zj-3"))
    add("foreign/withdrawn", "GD withdrew the agreement (gd-4 has none).", zj_food.token,
        refused("untrusted", "region_not_recognized", "certificate"),
        bundles=("gd-4", "zj-3"))
    add("foreign/rolled-back", "ZJ's list of sequence 2 served to a verifier that has "
        "accepted sequence 3.", zj_food.token,
        refused("untrusted", "foreign_trust_list_invalid", "certificate"),
        bundles=("gd-2", "zj-2"), prior={"ZJ": 3})
    add("foreign/older-list-without-state", "The same older ZJ list to a fresh verifier: "
        "accepted.", zj_food.token, accepted(zj_food), bundles=("gd-2", "zj-2"))
    add("foreign/frozen", "ZJ's list of twenty days ago, past next_update and the grace.",
        zj_food.token, refused("untrusted", "foreign_trust_list_invalid", "certificate"),
        bundles=("gd-2", "zj-1"))
    add("foreign/trust-list-unavailable", "ZJ's bundle is not served.", zj_food.token,
        refused("untrusted", "foreign_trust_list_invalid", "certificate"),
        bundles=("gd-2",))


def trust_list_cases(out: Catalogue, w: World, valid: Cert, gd_now: Publication) -> None:
    """The home trust list (format section 10.1)."""
    add = out.add
    add("trust-list/rolled-back", "GD's list of sequence 1 served to a verifier that has "
        "accepted sequence 2.", valid.token, trust_refused("trust_list_rollback"),
        bundles=("gd-1", "zj-3"), prior={"GD": 2})
    add("trust-list/older-list-without-state", "The same older list to a fresh verifier: "
        "accepted (only what a verifier remembers catches a rollback).", valid.token,
        accepted(valid), bundles=("gd-1", "zj-3"))
    add("trust-list/same-sequence-again", "The list of the sequence already accepted: "
        "accepted.", valid.token, accepted(valid), prior={"GD": 2})
    end = gd_now.next_update + GRACE
    add("trust-list/within-grace", "The clock at next_update plus the grace: still used.",
        valid.token, accepted(valid), now=end)
    add("trust-list/frozen", "The clock one second past next_update plus the grace: the "
        "list is refused (a host replaying an old list cannot freeze the verifier).",
        valid.token, trust_refused("trust_list_expired"), now=end + 1)
    add("trust-list/root-rotated", "A list signed by GD's new root, which the rotation "
        "statement in it hands over to from the pinned root.", valid.token, accepted(valid),
        bundles=("gd-5", "zj-3"))
    forged = sign_compact(valid.payload, w.mallory_es256, CERTIFICATE_TYP)
    add("trust-list/forged", "A list adding the attacker's key, signed by the attacker's "
        "root; the token is signed by that key.", forged,
        trust_refused("trust_list_bad_signature"), bundles=("gd-forged", "zj-3"))


def inclusion_cases(out: Catalogue, w: World, valid: Cert, revoked: Cert,
                    zj_food: Cert) -> None:
    """``require_inclusion``: the issue in the region's log (format section 15.13)."""
    add = out.add
    assert valid.leaf is not None and revoked.leaf is not None  # noqa: S101
    assert zj_food.leaf is not None  # noqa: S101
    size = len(w.gd.leaves)
    add("inclusion/included", "The licence's issue entry, in GD's checkpoint.", valid.token,
        accepted(valid, inclusion=included(True)), leaf_index=valid.leaf)
    add("inclusion/other-entry", "The leaf index of another certificate's issue.",
        valid.token, accepted(valid, inclusion=included(False, "not_logged")),
        leaf_index=revoked.leaf)
    add("inclusion/beyond-checkpoint", "A leaf index past the checkpoint's size.",
        valid.token, accepted(valid, inclusion=included(False, "not_included")),
        leaf_index=size + 3)
    add("inclusion/revoked", "A revoked licence whose issue is logged: included, and "
        "revoked.", revoked.token,
        accepted(revoked, "revoked", ["revoked"], inclusion=included(True)),
        leaf_index=revoked.leaf)
    add("inclusion/foreign", "A ZJ food licence, in ZJ's log.", zj_food.token,
        accepted(zj_food, inclusion=included(True)), leaf_index=zj_food.leaf)
    add("inclusion/qr-form", "Inclusion is proven for the full token, not its QR.",
        w.qr(valid, signed_at=T0 - 29 * DAY),
        accepted(valid, kind="qr", qr={
            "claims_present": sorted(n for n in _qr_claims(valid.type_code)
                                     if n in valid.payload["claims"]),
            "digest_bound": True, "matches_full_token": None},
            inclusion=included(False, "qr_form")),
        form="qr", leaf_index=valid.leaf)
