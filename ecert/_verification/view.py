"""What the pipeline sees of trust: the home region, recognized regions, status lists.

The verifier's edge implements :class:`TrustView`: it fetches, verifies and caches trust
lists and status lists; the pipeline only asks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from ecert._formats.statuslist import StatusListToken
from ecert._formats.trustlist import Agreement
from ecert._verification.region import RegionIndex
from ecert._verification.vocabulary import ErrorCode, untrusted


class TrustView(Protocol):
    """The trust a verifier holds now."""

    @property
    def home(self) -> RegionIndex:
        """The home region's verified trust list."""
        ...

    def recognized(self, region: str, now: int) -> tuple[Agreement, RegionIndex]:
        """Our agreement with ``region`` and its verified trust list; raises
        :class:`~ecert._verification.vocabulary.Failure` (``region_not_recognized``,
        ``agreement_not_in_force``, ``foreign_trust_list_invalid``)."""
        ...

    def status_list(self, region: str, uri: str, now: int) -> StatusListToken:
        """The checked status list at ``uri`` of ``region`` (home or one just recognized);
        raises a ``status_list_*`` failure."""
        ...


_K = TypeVar("_K")


def find_key(view: TrustView, kid: str, claimed: Any, now: int,
             keys: Callable[[RegionIndex], Mapping[str, _K]]
             ) -> tuple[Agreement | None, RegionIndex, _K]:
    """The key ``kid`` among ``keys`` of the home region or, if the token names another
    region (``claimed``, read before the signature only to choose the list), of that
    region if we recognize it: with the agreement (None at home) and the region.
    ``keys`` picks the role: ``operator.attrgetter("agency_keys")``, for instance."""
    home = view.home
    found = keys(home).get(kid)
    if found is not None:
        return None, home, found
    if not isinstance(claimed, str) or claimed == home.code:
        raise untrusted(ErrorCode.UNKNOWN_KID,
                        f"key {kid!r} is not a trusted key of region {home.code}")
    agreement, region = view.recognized(claimed, now)
    found = keys(region).get(kid)
    if found is None:
        raise untrusted(ErrorCode.UNKNOWN_KID,
                        f"key {kid!r} is not a trusted key of region {claimed}")
    return agreement, region, found
