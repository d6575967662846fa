"""Requester keys from the trust lists the service trusts: its own region's, and those of
the regions it recognizes, each refreshed on its own, in the background.

Every request needs a requester key; the keys are in trust lists, some on other regions'
hosts, any of which may be slow or hostile. So no request waits on a region it does not
need: each trust list is a :class:`~ecert.sharing._refresh.Refreshed` source (its last
verified state, read without a lock; at most one download at a time, in a thread of its
own, under the source's deadline). A request uses what is held and, when that is old,
starts a refresh and goes on; only a request that needs a region's list and holds none
usable (or does not find its key in it) waits for that region's download, bounded in time
and in the number of requests waiting. What is held was verified as always: the home
list against the pinned anchor (never older than the one held), a recognized region's
against the root its agreement pins (:meth:`ecert.verify.Verifier.fetch_foreign_trust_list`),
so a hostile host can delay its own region's requests but never make the service use a
key its list does not prove.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ecert._formats.sharing import Problem, split_requester_keyid
from ecert._formats.trustlist import Agreement, TrustedKey, TrustList
from ecert.errors import FormatError, TrustListError
from ecert.sharing._refresh import Monotonic, Refreshed
from ecert.sharing._service import ResolvedKey
from ecert.verify import Verifier

#: Seconds of clock skew tolerated at a key's ``valid_from`` (as for certificates).
DEFAULT_LEEWAY = 300
#: A list past its next update (within grace) is read again at least this often.
PAST_UPDATE_RETRY = 300.0


def requester_key(trust_list: TrustList, agency_code: str, kid: str) -> TrustedKey | None:
    """The requester key ``kid`` that ``trust_list`` publishes for ``agency_code``."""
    agency = next((a for a in trust_list.agencies if a.code == agency_code), None)
    return None if agency is None else next(
        (k for k in agency.requester_keys if k.kid == kid), None)


def judge(trusted: TrustedKey, requester: str, signed_at: int, now: int,
          leeway: int) -> ResolvedKey | Problem:
    """``trusted`` as the key of ``requester``, if valid at ``signed_at`` and at ``now``.

    Judged at the request's own ``created`` and at the service's now: ``created`` is the
    client's word (freshness lets it lie 300 s back), so a key retired or marked
    compromised a moment ago must not keep working for another five minutes.
    """
    why = trusted.refuses(signed_at, leeway) or trusted.refuses(max(signed_at, now), leeway)
    if why is not None:
        return Problem.of("not_authenticated", "the requester key was compromised"
                          if why == "compromised" else
                          "the request was signed outside the requester key's validity")
    _, key = trusted.public_key()
    return ResolvedKey(requester, key, trusted)


@dataclass(frozen=True, slots=True)
class _Foreign:
    """A recognized region's trust list as verified, and what it was verified against."""

    trust_list: TrustList
    root_kid: str  #: the root key the agreement pinned
    url: str  #: where the agreement said the list is

    def pinned_by(self, agreement: Agreement) -> bool:
        """Whether ``agreement`` (as the home list says now) still pins this list."""
        return self.root_kid == agreement.root_jwk["kid"] and self.url == agreement.trust_list_url


class RefreshingRequesterKeys:
    """:class:`~ecert.sharing.RequesterKeys` over the home trust list of a verifier made by
    ``make_verifier`` and the lists of the regions it recognizes (see the module's
    docstring). Thread-safe; requests never wait on a lock held across a download.

    - Each list is refreshed in the background once ``max_age`` seconds old; meanwhile
      requests use the one held. A reload that fails, or would go back to an older home
      list (a rollback), keeps the one held.
    - A keyid not found in its region's list makes that list be read again (a key
      published a moment ago), at most every ``retry_after_miss`` seconds; the request
      waits for it (it needs it).
    - The home list is believed only until its next update plus the verifier's grace:
      past that, its keys (and agreements) are not, and a request waits for a reload.
    - A recognized region's list is used while within its next update plus grace and
      while the home list's agreement still pins it. With none usable, a request from
      that region waits for its download, unless one failed less than
      ``retry_after_failure`` seconds ago (then it is refused at once, as
      ``not_authenticated``).
    - No request waits more than ``wait`` seconds, and at most ``max_waiting`` wait for
      one list at a time (others are answered from what is held at once), so a stalled
      host holds only that many of the service's threads.
    """

    def __init__(self, make_verifier: Callable[[], Verifier], *, max_age: float = 60.0,
                 retry_after_miss: float = 5.0, retry_after_failure: float = 30.0,
                 wait: float = 10.0, max_waiting: int = 4, leeway: int = DEFAULT_LEEWAY,
                 monotonic: Monotonic = time.monotonic) -> None:
        self._make = make_verifier
        self.max_age, self.retry_after_miss = max_age, retry_after_miss
        self.retry_after_failure, self.wait = retry_after_failure, wait
        self._max_waiting = max_waiting
        self._leeway = leeway
        self._monotonic = monotonic
        self._home: Refreshed[Verifier] = Refreshed(
            self._reload_home, name="home trust list", value=make_verifier(),
            max_waiting=max_waiting, monotonic=monotonic)
        self._foreign: dict[str, Refreshed[_Foreign]] = {}
        self._foreign_lock = threading.Lock()  # the dictionary only

    @property
    def verifier(self) -> Verifier:
        """The verifier of the home trust list held now."""
        verifier = self._home.value
        assert verifier is not None  # noqa: S101 - made in __init__, never unset
        return verifier

    @property
    def sequence(self) -> int:
        """The sequence number of the home trust list in use."""
        return self.verifier.trust_list.sequence

    def refresh(self) -> bool:
        """Reload the home trust list now and wait for it (at most ``wait`` seconds);
        whether the one in use was replaced."""
        before = self._home.value
        return self._home.wait(self.wait, start_after=0) is not before

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait for the refreshes in flight (at most ``timeout`` seconds each); whether
        none runs any more. For tests and an orderly shutdown: requests never need it."""
        with self._foreign_lock:
            foreign = list(self._foreign.values())
        return all([self._home.join(timeout), *(s.join(timeout) for s in foreign)])

    def resolve(self, keyid: str, signed_at: int) -> ResolvedKey | Problem:
        """The key ``keyid`` names, valid at ``signed_at``, or the problem."""
        try:
            region, agency_code, kid = split_requester_keyid(keyid)
        except FormatError:
            return Problem.of("not_authenticated", "the keyid is not REGION/agency-code#kid")
        for reread in (False, True):
            found = self._listed(region, reread=reread)
            if isinstance(found, Problem):
                return found
            verifier, trust_list = found
            trusted = requester_key(trust_list, agency_code, kid)
            if trusted is not None:
                return judge(trusted, f"{region}/{agency_code}", signed_at, verifier.now(),
                             self._leeway)
        return Problem.of("not_authenticated", f"no requester key {kid} of "
                          f"{region}/{agency_code}")

    def _listed(self, region: str, *, reread: bool) -> tuple[Verifier, TrustList] | Problem:
        """The home verifier and ``region``'s trust list (``reread``: read again, for a
        key not found in it, if not read a moment ago)."""
        verifier = self._current_home(reread=reread and region == self.verifier.trust_list.region)
        if isinstance(verifier, Problem):
            return verifier
        home = verifier.trust_list
        if region == home.region:
            return verifier, home
        now = verifier.now()
        agreement = home.agreement_with(region)
        if agreement is None or not agreement.in_force(now):
            return Problem.of("region_not_recognized",
                              f"{home.region} does not recognize region {region}")
        listed = self._foreign_list(verifier, region, agreement, now, reread=reread)
        if listed is None:
            # Recognized, but its trust list cannot be used now: its keys are unknown.
            return Problem.of("not_authenticated",
                              f"the trust list of {region} cannot be used now")
        return verifier, listed

    def _current_home(self, *, reread: bool) -> Verifier | Problem:
        home = self._home
        if reread:
            held = home.wait(self.wait, start_after=self.retry_after_miss)
        else:
            home.refresh_if_due(self.max_age)
            held = home.value
        assert held is not None  # noqa: S101 - made in __init__, never unset
        if not self._home_current(held):
            # Every request needs the home list (its keys, its agreements): wait for a
            # reload, unless one was tried a moment ago.
            held = home.wait(self.wait, start_after=self.retry_after_miss)
            assert held is not None  # noqa: S101 - as above
        if not self._home_current(held):
            # Held, not fetched per request: past its next update (and the verifier's
            # grace), a key it lists may have been retired or marked compromised since,
            # so none of its keys is believed (as for tokens).
            return Problem.of("not_authenticated", f"the trust list of "
                              f"{held.trust_list.region} held by this service is out of date")
        return held

    @staticmethod
    def _home_current(verifier: Verifier) -> bool:
        return verifier.now() <= (verifier.trust_list.next_update
                                  + verifier.limits.trust_list_grace_seconds)

    def _foreign_list(self, verifier: Verifier, region: str, agreement: Agreement, now: int,
                      *, reread: bool) -> TrustList | None:
        """``region``'s verified list, if one usable is held or arrives in time."""
        source = self._source(region)
        grace = verifier.limits.trust_list_grace_seconds

        def usable(held: _Foreign | None) -> bool:
            return held is not None and held.pinned_by(agreement) \
                and now <= held.trust_list.next_update + grace

        if reread:
            held = source.wait(self.wait, start_after=self.retry_after_miss)
        else:
            held = source.value
            if usable(held):
                assert held is not None  # noqa: S101 - usable
                # Past its next update (within grace) it is refreshed as a verifier does,
                # even if the service reads lists less often than that.
                stale = now > held.trust_list.next_update
                source.refresh_if_due(min(self.max_age, PAST_UPDATE_RETRY)
                                      if stale else self.max_age)
            else:  # none usable: this request needs the region's list, so it waits
                held = source.wait(self.wait, start_after=self.retry_after_failure)
        return held.trust_list if held is not None and usable(held) else None

    def _source(self, region: str) -> Refreshed[_Foreign]:
        """``region``'s source (one per recognized region: the agreements bound them)."""
        source = self._foreign.get(region)
        if source is not None:
            return source
        with self._foreign_lock:
            source = self._foreign.get(region)
            if source is None:
                source = self._foreign[region] = Refreshed(
                    partial(self._load_foreign, region), name=f"trust list of {region}",
                    max_waiting=self._max_waiting, monotonic=self._monotonic)
            return source

    def _reload_home(self, current: Verifier | None) -> Verifier:
        fresh = self._make()
        if current is not None and fresh.trust_list.sequence < current.trust_list.sequence:
            raise TrustListError(f"refusing trust list #{fresh.trust_list.sequence}, older "
                                 f"than #{current.trust_list.sequence}",
                                 code="trust_list_rollback")
        return fresh

    def _load_foreign(self, region: str, current: _Foreign | None) -> _Foreign:
        # Verified by the home verifier held now, against the root its agreement pins;
        # never older than the list held (a rollback).
        trust_list, agreement = self.verifier.fetch_foreign_trust_list(
            region, min_sequence=None if current is None else current.trust_list.sequence)
        return _Foreign(trust_list, agreement.root_jwk["kid"], agreement.trust_list_url)


class TrustListRequesterKeys(RefreshingRequesterKeys):
    """Resolves ``REGION/agency-code#kid`` in the home region's trust list of one
    :class:`~ecert.verify.Verifier` (never re-read), or in the trust list of a region
    it recognizes (fetched and verified against the root its agreement pins, refreshed
    in the background as :class:`RefreshingRequesterKeys` does).

    Recognizing a region's certificates is not releasing data to it: this only says who
    signed; what a requester may get is the entitlements' business (the backend's).
    """

    def __init__(self, verifier: Verifier, *, leeway: int = DEFAULT_LEEWAY,
                 monotonic: Monotonic = time.monotonic) -> None:
        super().__init__(lambda: verifier, max_age=math.inf, leeway=leeway,
                         monotonic=monotonic)


__all__ = ["DEFAULT_LEEWAY", "RefreshingRequesterKeys", "TrustListRequesterKeys", "judge",
           "requester_key"]
