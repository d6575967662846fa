"""The last verified state of one remote source, refreshed one load at a time, in the
background, under no lock a request needs.

The sharing service reads documents of other hosts while it serves: the trust lists of
the regions it recognizes (their requester keys), its own region's, and the identity
provider's keys for the holder's channel. A host may be slow or hostile. So that no
request waits on a host it does not need, each source is a :class:`Refreshed`:

- its value is the last one that loaded *and verified* (the load function verifies, and
  raises when it cannot: the value held stays). It is immutable and read without a
  lock, so a request that has what it needs never waits for anything;
- at most one load of a source runs at a time (single flight), in a daemon thread of
  its own: a request that finds the value stale starts one (:meth:`Refreshed.refresh_if_due`)
  and goes on with what is held;
- a request that cannot go on without a fresh value (none held, none usable, a key not in
  it) waits for the load in flight (:meth:`Refreshed.wait`) — at most ``timeout`` seconds,
  and at most ``max_waiting`` requests of one source at a time (the others answer at once
  from what is held), so that a host that stalls holds only that many of the service's
  worker threads, and only requests that need that host;
- the load itself is bounded by its source's deadline (:class:`ecert._sources.HttpSource`:
  one deadline over the whole download), and a new one starts only ``start_after``
  seconds after the last began, failed or not, so a failing host is not hammered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from ecert.errors import EcertError

log = logging.getLogger("ecert.sharing")

T = TypeVar("T")

#: Seconds, monotonic (injectable for tests).
Monotonic = Callable[[], float]


class Refreshed(Generic[T]):
    """One source's last verified value, and its loads (see the module's docstring).

    ``load(current)`` fetches and verifies a new value (``current``: the one held, or
    None, so that it can refuse a rollback); it raises to keep the value held.
    """

    def __init__(self, load: Callable[[T | None], T], *, name: str, value: T | None = None,
                 max_waiting: int = 4, monotonic: Monotonic = time.monotonic) -> None:
        if max_waiting < 0:
            raise ValueError("max_waiting >= 0")
        self.name = name
        self._load = load
        self._max_waiting = max_waiting
        self._monotonic = monotonic
        self._lock = threading.Lock()  # guards the fields below; never held across a load
        self._value = value
        #: When the last load started (a value given at the start counts as one).
        self._started: float | None = None if value is None else monotonic()
        self._running: threading.Event | None = None  #: set when the load in flight ends
        self._waiting = 0

    @property
    def value(self) -> T | None:
        """The last value that loaded and verified (None: none yet)."""
        return self._value

    def due(self, interval: float) -> bool:
        """Whether no load runs and none started in the last ``interval`` seconds."""
        with self._lock:
            return self._running is None and self._elapsed(interval)

    def refresh_if_due(self, interval: float) -> None:
        """Start a load in the background if :meth:`due`; never waits for it."""
        if self._running is not None or not self._elapsed(interval):
            return  # the common case, decided without the lock (checked again under it)
        with self._lock:
            if self._running is None and self._elapsed(interval):
                self._start()

    def wait(self, timeout: float, *, start_after: float) -> T | None:
        """The value after the load in flight, or after a new one if the last started
        ``start_after`` seconds ago or more — waiting at most ``timeout`` seconds, and only
        if fewer than ``max_waiting`` requests wait already; else at once. What is held
        then (the old value if the load failed or has not ended)."""
        with self._lock:
            done = self._running
            if done is None and self._elapsed(start_after):
                done = self._start()
            if done is None or self._waiting >= self._max_waiting:
                return self._value
            self._waiting += 1
        try:
            done.wait(timeout)
        finally:
            with self._lock:
                self._waiting -= 1
        return self._value

    def join(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the load in flight; whether none runs."""
        with self._lock:
            done = self._running
        return done is None or done.wait(timeout)

    def _elapsed(self, interval: float) -> bool:
        return self._started is None or self._monotonic() - self._started >= interval

    def _start(self) -> threading.Event:
        """Start a load (the lock held)."""
        done = self._running = threading.Event()
        self._started = self._monotonic()
        threading.Thread(target=self._run, args=(done,), name=f"ecert-refresh {self.name}",
                         daemon=True).start()
        return done

    def _run(self, done: threading.Event) -> None:
        fresh: T | None = None
        try:
            fresh = self._load(self._value)
        except EcertError as e:
            log.warning("keeping the %s held: %s", self.name, e.message)
        except Exception:  # a bug: keep what is held, and say so
            log.exception("keeping the %s held: loading it failed", self.name)
        with self._lock:
            if fresh is not None:
                self._value = fresh
            self._running = None
        done.set()


__all__ = ["Refreshed"]
