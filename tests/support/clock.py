"""A deterministic clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.support.constants import EPOCH


class FakeClock:
    """A settable UTC clock: ``clock()`` returns now, ``clock.advance(...)`` moves it."""

    def __init__(self, now: datetime = EPOCH) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
