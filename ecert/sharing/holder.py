"""The holder's channel: a holder, authenticated by the deployment's identity hook, grants
and revokes consent codes (用证码) and reads who used their certificates.

The sharing service does not know how a deployment logs its citizens in (a national
identity app, a province's OIDC provider, a bank's …). It asks a :class:`HolderIdentity`
to turn a request's header fields into the authenticated holder id, or to refuse; the
registry then trusts that id (:meth:`ecert.Registry.consent_grant_by_holder`, logged as
``channel: holder`` by the ``service`` operator). Whoever controls the hook can act as any
holder: it is part of the deployment's trusted base (docs/threat-model.md).

:class:`OidcHolderIdentity` is the documented example: the request carries an OpenID
Connect ID token (or any JWT access token the IdP signs) as ``Authorization: Bearer``;
its signature is checked against the IdP's JWKS (fetched within a deadline and a size
limit, cached, refreshed in the background once stale and at most once a minute for an
unknown ``kid``: a slow IdP delays only the requests whose key is not held), its issuer,
audience, expiry and not-before against the configuration and the service's clock, and
the holder's id is read from one claim (a national id number claim, not ``sub``, unless
the IdP's ``sub`` is that id). PyJWT (a core dependency) does the JWS work.

This module imports no web framework: the routes are :func:`ecert.sharing.app.create_app`'s
(``holder=``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import jwt

from ecert._clock import Clock, now_seconds, system_clock
from ecert._formats.sharing import Problem
from ecert._sources import HttpSource
from ecert.errors import FormatError
from ecert.sharing._refresh import Refreshed

#: JWS algorithms an ID token may use by default (no ``none``, no HMAC: the IdP's public
#: keys verify, no secret is shared with it).
DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
#: The largest JWKS document read, and a token.
MAX_JWKS_BYTES = 64 * 1024
MAX_TOKEN_BYTES = 8 * 1024


class HolderIdentity(Protocol):
    """The deployment's identity hook: who is asking, as a holder id, or why not.

    ``headers`` are the request's header fields (lower-case names; a repeated field's
    values joined by ``", "``). Return the authenticated holder id (as on their
    certificates), or a :class:`~ecert._formats.sharing.Problem` (``not_authenticated``).
    Called in a worker thread: it may block (fetching keys, asking a session store).
    """

    def identify(self, headers: Mapping[str, str]) -> str | Problem:
        """The holder id the request authenticates, or the problem to answer."""
        ...


class HolderRegistry(Protocol):
    """What the holder's channel asks of the registry — :class:`ecert.Registry` itself,
    opened as the ``service`` operator, has these methods."""

    def consent_grant_by_holder(self, authenticated_holder_id: str, to: str,
                                types: Sequence[str], purpose: str,
                                ttl: timedelta | int = ...) -> Any:
        """Make a consent code for the holder (a :class:`ecert.registry.ConsentCode`)."""
        ...

    def consents(self, holder_id: str) -> Sequence[Any]:
        """The holder's consents, newest first (:class:`ecert.registry.Consent`)."""
        ...

    def consent_revoke(self, consent_id: str, *, holder_id: str | None = None) -> None:
        """Revoke one of the holder's open consents."""
        ...

    def uses(self, holder_id: str, *, limit: int = ..., after: str | None = ...) -> Any:
        """One page of the holder's use records (an :class:`ecert.Page`)."""
        ...


@dataclass(frozen=True, slots=True)
class HolderChannel:
    """The holder's channel of a sharing service: who the holder is, and the registry
    (opened as the ``service`` operator) to act on."""

    identity: HolderIdentity
    registry: HolderRegistry
    #: The most use records one page lists.
    max_page: int = 100


def _refused(detail: str) -> Problem:
    return Problem.of("not_authenticated", detail)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer`` field (RFC 6750), or None."""
    value = headers.get("authorization", "")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token or "," in token:
        return None
    return token


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """What an :class:`OidcHolderIdentity` accepts."""

    issuer: str  #: the IdP's issuer identifier, exactly as in ``iss``
    audience: str  #: this service's client id, which ``aud`` must contain
    #: The claim carrying the holder's id (as on their certificates).
    holder_claim: str = "sub"
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    #: Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    leeway: int = 60
    #: The longest lifetime accepted (``exp`` − ``iat``): a token lives minutes, not days.
    max_lifetime: int = 3600
    #: Seconds a fetched JWKS is used before it is fetched again.
    jwks_cache_seconds: int = 300
    #: At least this many seconds between fetches forced by an unknown ``kid``.
    jwks_min_refresh: int = 60
    #: The deadline on one whole JWKS download, and the longest a request waits for one.
    jwks_timeout: float = 5.0


class OidcHolderIdentity:
    """A :class:`HolderIdentity` for OpenID Connect: a bearer JWT the IdP signed.

    ``jwks_uri`` is where the IdP publishes its keys (its discovery document's
    ``jwks_uri``); or give ``jwks`` (a JWKS as a dict) to pin the keys and fetch nothing.
    """

    def __init__(self, settings: OidcSettings, *, jwks_uri: str | None = None,
                 jwks: Mapping[str, Any] | None = None, clock: Clock = system_clock,
                 source: HttpSource | None = None) -> None:
        if (jwks_uri is None) == (jwks is None):
            raise ValueError("give the IdP's jwks_uri or a pinned jwks, one of them")
        self.settings = settings
        self._uri = jwks_uri
        self._clock = clock
        self._source = source or HttpSource(timeout=settings.jwks_timeout,
                                            user_agent="ecert-sharing")
        self._pinned = None if jwks is None else _keys_of(jwks)
        # On the service's clock (injectable), in seconds, like the token times.
        self._jwks: Refreshed[dict[str, jwt.PyJWK]] = Refreshed(
            self._fetch, name="identity provider's keys",
            monotonic=lambda: float(now_seconds(clock)))

    def identify(self, headers: Mapping[str, str]) -> str | Problem:
        """Verify the bearer token; the holder id it carries, or ``not_authenticated``."""
        token = bearer_token(headers)
        if token is None:
            return _refused("no bearer token (Authorization: Bearer …)")
        if len(token) > MAX_TOKEN_BYTES:
            return _refused("the token is too large")
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
            alg, kid = header.get("alg"), header.get("kid")
            if alg not in s.algorithms:
                return _refused("the token's algorithm is not accepted")
            key = self._key(kid if isinstance(kid, str) else None)
            if key is None:
                return _refused("the token's key is not among the IdP's")
            # Times are checked below against the service's clock (injectable), not here.
            claims = jwt.decode(token, key=key.key, algorithms=[alg], audience=s.audience,
                                issuer=s.issuer,
                                options={"require": ["iss", "aud", "exp", "iat"],
                                         "verify_exp": False, "verify_nbf": False,
                                         "verify_iat": False})
        except (jwt.PyJWTError, ValueError, OSError, FormatError) as e:
            return _refused(f"the token does not verify: {type(e).__name__}")
        now = now_seconds(self._clock)
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf", 0)
        if type(exp) is not int or type(iat) is not int or type(nbf) is not int:
            return _refused("the token's times are not whole seconds")
        if now >= exp + s.leeway or now + s.leeway < max(iat, nbf) \
                or exp - iat > s.max_lifetime:
            return _refused("the token is expired, not yet valid or too long-lived")
        holder = claims.get(s.holder_claim)
        if not isinstance(holder, str) or not holder.strip() or len(holder) > 100:
            return _refused(f"the token has no {s.holder_claim!r} claim")
        return holder

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait for a JWKS download in flight (at most ``timeout`` seconds); whether none
        runs any more. For tests and an orderly shutdown: requests never need it."""
        return self._jwks.join(timeout)

    def _key(self, kid: str | None) -> jwt.PyJWK | None:
        """The IdP's key ``kid`` (the only one, if the token names none).

        The keys held are used without waiting; once ``jwks_cache_seconds`` old they are
        fetched again in the background. Only a request whose key is not held (none yet,
        or an unknown ``kid``) waits for a download — one at a time, at most
        ``jwks_min_refresh`` seconds apart (also after a failure: no retry storm against
        a failing IdP, and a flood of made-up ``kid``s costs it one request a minute)."""
        if self._pinned is not None:
            return _pick(self._pinned, kid)
        s, jwks = self.settings, self._jwks
        keys = jwks.value
        if keys is not None:
            jwks.refresh_if_due(s.jwks_cache_seconds)
        if keys is None or _pick(keys, kid) is None:
            keys = jwks.wait(s.jwks_timeout, start_after=s.jwks_min_refresh)
        return None if keys is None else _pick(keys, kid)

    def _fetch(self, current: dict[str, jwt.PyJWK] | None) -> dict[str, jwt.PyJWK]:
        """The IdP's keys, downloaded (a failure keeps the keys held: a token they do
        not verify is refused)."""
        assert self._uri is not None  # noqa: S101 - not pinned
        try:
            data = self._source.fetch(self._uri, max_bytes=MAX_JWKS_BYTES)
            keys = _keys_of(json.loads(data))
        except (OSError, ValueError, jwt.PyJWTError) as e:
            raise FormatError(f"the JWKS at {self._uri[:200]} cannot be used: "
                              f"{type(e).__name__}") from e
        self._source.verified(self._uri, data)
        return keys


def _pick(keys: Mapping[str, jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
    """Key ``kid`` of ``keys`` (the only one, if the token names none)."""
    if kid is None:
        return next(iter(keys.values())) if len(keys) == 1 else None
    return keys.get(kid)


def _keys_of(jwks: Any) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS by ``kid`` (keys for encryption or without kid left out,
    unless there is exactly one key)."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise ValueError("a JWKS is an object with a list of keys")
    entries = [k for k in jwks["keys"] if isinstance(k, Mapping)
               and k.get("use", "sig") == "sig"][:50]
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        kid = entry.get("kid")
        if not isinstance(kid, str) and len(entries) > 1:
            continue
        try:
            keys[kid if isinstance(kid, str) else ""] = jwt.PyJWK(dict(entry))
        except jwt.PyJWTError:
            continue  # a key type or curve PyJWT does not know: not one of ours
    return keys


__all__ = ["DEFAULT_ALGORITHMS", "HolderChannel", "HolderIdentity", "HolderRegistry",
           "OidcHolderIdentity", "OidcSettings", "bearer_token"]
