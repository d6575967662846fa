"""The URLs ecert fetches from: one check, used wherever such a URL is parsed or signed.

A URL that a trust list, an agreement or an anchor names is fetched by every verifier
and mapped to a path in offline mirrors, so it is held to a narrow form that the HTTP
client, the IDNA codec and the mirror layout all accept without surprises:

* scheme ``http`` or ``https`` (lower case), no user information, query or fragment;
* printable ASCII only (an internationalized host is written in its ``xn--`` form);
* the host is an IPv4 address, a bracketed IPv6 address, or a DNS name of labels of
  1 to 63 letters, digits and hyphens (not at either end), at most 253 characters;
* a port, if any, from 1 to 65535;
* path segments without ``.``, ``..`` or backslashes, of RFC 3986 path characters.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

from ecert.errors import FormatError

__all__ = ["MAX_URL_LENGTH", "check_http_url"]

#: Longer URLs are refused (no published URL needs more).
MAX_URL_LENGTH = 2048

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*\Z")
_PRINTABLE = re.compile(r"[\x21-\x7e]+\Z")


def _bad(url: str, why: str) -> FormatError:
    shown = url if len(url) <= 120 else url[:117] + "..."
    return FormatError(f"URL {shown!r} {why}", code="invalid_url")


def check_host(host: str) -> str:
    """``host`` (as :func:`urllib.parse.urlsplit` gives it) if it is a valid host name."""
    if host.startswith("[") or ":" in host:  # urlsplit drops the brackets of IPv6
        try:
            return str(ipaddress.IPv6Address(host.strip("[]")))
        except ValueError as e:
            raise FormatError(f"host {host!r} is not an IPv6 address",
                              code="invalid_url") from e
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)*", host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError as e:
            raise FormatError(f"host {host!r} is not an IPv4 address",
                              code="invalid_url") from e
    labels = host.lower().split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise FormatError(f"host {host[:80]!r} is not a DNS name (labels of 1 to 63 letters, "
                          "digits and hyphens)", code="invalid_url")
    return host.lower()


def check_http_url(url: object, *, base: bool = False) -> str:
    """Return ``url`` unchanged if ecert may fetch it; else raise ``FormatError`` ``invalid_url``.

    ``base`` allows an empty path (a region's base URL, to which paths are appended) and
    refuses a trailing slash.
    """
    if not isinstance(url, str):
        raise FormatError("a URL must be a string", code="invalid_url")
    if len(url) > MAX_URL_LENGTH:
        raise _bad(url, f"is longer than {MAX_URL_LENGTH} characters")
    if not _PRINTABLE.match(url):
        raise _bad(url, "must be printable ASCII without spaces (write an "
                        "internationalized host in its xn-- form)")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as e:  # e.g. a bracketed host that is no IP address
        raise _bad(url, "cannot be parsed") from e
    if parts.scheme not in ("http", "https") or not url.startswith(parts.scheme + "://"):
        raise _bad(url, "is not an http:// or https:// URL")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise _bad(url, "must not have a query or fragment")
    if "@" in parts.netloc:
        raise _bad(url, "must not carry user information")
    if not parts.hostname:
        raise _bad(url, "has no host")
    try:
        port = parts.port
    except ValueError as e:
        raise _bad(url, "has an invalid port") from e
    if port is not None and port == 0:
        raise _bad(url, "has an invalid port")
    netloc = parts.netloc
    if netloc.endswith(":"):
        raise _bad(url, "has an empty port")
    host = netloc[: netloc.index("]") + 1] if netloc.startswith("[") else netloc.split(":")[0]
    try:
        check_host(host)
    except FormatError as e:
        raise _bad(url, f"has an invalid host: {e.message}") from e
    path = parts.path
    if not _PATH.match(path):
        raise _bad(url, "has characters outside RFC 3986 path characters")
    segments = path.split("/")[1:] if path else []
    if base:
        if path.endswith("/"):
            raise _bad(url, "must not end with a slash")
    elif not segments or not segments[-1]:
        raise _bad(url, "names no document")
    if any(s in ("", ".", "..") or "\\" in s for s in segments):
        raise _bad(url, "has an empty, '.' or '..' path segment")
    return url
