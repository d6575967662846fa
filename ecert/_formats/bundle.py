"""Where things live in a published bundle, and the trust anchor file.

A bundle is a directory of static files served under the region's base URL::

    anchor.json              region code and name, root public key, trust list URL
    trustlist.jwt            the region trust list (typ ecert-trustlist+jwt)
    .well-known/jwks.json    every public key: root, status-list and agency keys
    status/<n>.jwt           status list tokens (typ statuslist+jwt)
"""

from __future__ import annotations

from typing import Any

from ecert._formats.jose import canonical_json, jwk_thumbprint, key_from_jwk, strict_json_loads
from ecert._formats.url import check_http_url
from ecert.errors import FormatError

ANCHOR_FILE = "anchor.json"
TRUST_LIST_PATH = "trustlist.jwt"
JWKS_PATH = ".well-known/jwks.json"
STATUS_DIR = "status"


def trust_list_url(base_url: str) -> str:
    """The URL of a region's trust list."""
    return f"{base_url}/{TRUST_LIST_PATH}"


def status_list_uri(base_url: str, list_id: int) -> str:
    """The URI (and ``sub``) of status list ``list_id``."""
    return f"{base_url}/{STATUS_DIR}/{list_id}.jwt"


def relative_path(base_url: str, uri: str) -> str:
    """The bundle path of ``uri``, which must lie under ``base_url``."""
    prefix = base_url.rstrip("/") + "/"
    if not uri.startswith(prefix):
        raise FormatError(f"{uri!r} is not under {base_url!r}", code="foreign_uri")
    rest = uri[len(prefix):]
    parts = rest.split("/")
    if not rest or any(p in ("", ".", "..") or "\\" in p for p in parts) or "?" in rest:
        raise FormatError(f"{uri!r} is not a bundle path", code="foreign_uri")
    return rest


def encode_anchor(region: str, name: str, root_jwk: dict[str, str], base_url: str) -> bytes:
    """The ``anchor.json`` document handed to verifiers and other regions."""
    check_http_url(base_url, base=True)
    return canonical_json(
        {"region": region, "name": name, "root_key": root_jwk,
         "trust_list": trust_list_url(base_url), "version": 1}
    ) + b"\n"


def decode_anchor(data: bytes) -> dict[str, Any]:
    """Parse and check an anchor document."""
    if len(data) > 64 * 1024:
        raise FormatError("anchor file is too large", code="too_large")
    doc = strict_json_loads(data)
    if not isinstance(doc, dict) or type(doc.get("version")) is not int or doc["version"] != 1:
        raise FormatError("not an ecert anchor (version 1)", code="malformed")
    region, name, url, jwk = (doc.get(k) for k in ("region", "name", "trust_list", "root_key"))
    if not (isinstance(region, str) and isinstance(name, str) and isinstance(url, str)
            and isinstance(jwk, dict)):
        raise FormatError("anchor needs region, name, trust_list and root_key", code="malformed")
    check_http_url(url)
    # The anchor names its region's bundle: the trust list is always at base/trustlist.jwt
    # (TrustAnchor.to_bytes rebuilds it so; any other URL would not survive a round trip).
    base, _, name = url.rpartition("/")
    if name != TRUST_LIST_PATH:
        raise FormatError(f"anchor trust_list must be <base URL>/{TRUST_LIST_PATH}",
                          code="malformed")
    check_http_url(base, base=True)
    key_from_jwk(jwk)
    if jwk.get("kid") != jwk_thumbprint(jwk):
        raise FormatError("anchor root key kid is not its thumbprint", code="malformed")
    return doc
