"""Requester keys from the trust lists a verifier already trusts."""

from __future__ import annotations

from ecert._formats.sharing import Problem, split_requester_keyid
from ecert._formats.trustlist import TrustList
from ecert.errors import FormatError, TrustListError
from ecert.sharing._service import ResolvedKey
from ecert.verify import Verifier

#: Seconds of clock skew tolerated at a key's ``valid_from`` (as for certificates).
DEFAULT_LEEWAY = 300


class TrustListRequesterKeys:
    """Resolves ``REGION/agency-code#kid`` in the home region's trust list, or in the
    trust list of a region the home region recognizes (fetched and verified by the
    :class:`~ecert.verify.Verifier` against the root its agreement pins).

    Recognizing a region's certificates is not releasing data to it: this only says who
    signed; what a requester may get is the entitlements' business (the backend's).
    """

    def __init__(self, verifier: Verifier, *, leeway: int = DEFAULT_LEEWAY) -> None:
        self._verifier = verifier
        self._leeway = leeway

    def _trust_list(self, region: str) -> TrustList | Problem:
        home = self._verifier.trust_list
        if region == home.region:
            # The home list is held, not fetched per request: once it is past its next
            # update (and the verifier's grace), a key it lists may have been retired or
            # marked compromised since, so none of its keys is believed (as for tokens).
            if self._verifier.now() > (home.next_update
                                     + self._verifier.limits.trust_list_grace_seconds):
                return Problem.of("not_authenticated", f"the trust list of {region} held by "
                                  "this service is out of date")
            return home
        try:
            return self._verifier.foreign_trust_list(region)
        except TrustListError as e:
            if e.code in ("region_not_recognized", "agreement_not_in_force"):
                return Problem.of("region_not_recognized", f"{home.region} does not "
                                  f"recognize region {region}")
            # Recognized, but its trust list cannot be used now: its keys are unknown.
            return Problem.of("not_authenticated",
                              f"the trust list of {region} cannot be used now")

    def resolve(self, keyid: str, signed_at: int) -> ResolvedKey | Problem:
        """The requester key ``keyid`` names, valid at ``signed_at``, or the problem."""
        try:
            region, agency_code, kid = split_requester_keyid(keyid)
        except FormatError:
            return Problem.of("not_authenticated", "the keyid is not REGION/agency-code#kid")
        trust_list = self._trust_list(region)
        if isinstance(trust_list, Problem):
            return trust_list
        agency = next((a for a in trust_list.agencies if a.code == agency_code), None)
        trusted = None if agency is None else next(
            (k for k in agency.requester_keys if k.kid == kid), None)
        if trusted is None:
            return Problem.of("not_authenticated",
                              f"no requester key {kid} of {region}/{agency_code}")
        # Judged at the request's own ``created`` and at the service's now: ``created`` is
        # the client's word (freshness lets it lie 300 s back), so a key retired or marked
        # compromised a moment ago must not keep working for another five minutes.
        why = trusted.refuses(signed_at, self._leeway) or trusted.refuses(
            max(signed_at, self._verifier.now()), self._leeway)
        if why is not None:
            return Problem.of("not_authenticated", "the requester key was compromised"
                              if why == "compromised" else
                              "the request was signed outside the requester key's validity")
        _, key = trusted.public_key()
        return ResolvedKey(f"{region}/{agency_code}", key, trusted)
