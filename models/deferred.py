"""Work a request should not wait for, done shortly after it by one background thread.

Folding a batch of live events into the co-visitation links costs tens of milliseconds (about
twenty small statements per variant, :mod:`models.live_covis`), several times what ranking the
customer who sent it costs once the links are read. The links are shop-wide counts: one
customer's last few events move them by a hair, and nobody can tell whether they were counted a
quarter of a second late. So the request that found the new segment only records that the links
are behind, and :class:`Deferred` applies them after a short delay, for every batch that arrived
meanwhile, in bounded chunks. The work takes the serving lock itself, only for its short reads and
its publishing (:class:`models.live_covis.LiveCovis`): the expensive part runs on its own
connection beside the requests. The updates take at most a fifth of the time (:data:`SHARE`), so
under a heavy stream of batches the links fall behind by seconds instead of taking the machine.

:meth:`Deferred.settle` applies what is due at once, for callers that need the links current
now (tests comparing with a rebuild, the replay benchmark, shutting down).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

__all__ = ["Deferred", "ServingLock", "DELAY_S", "QUIET_S", "MAX_YIELD_S"]

log = logging.getLogger(__name__)

DELAY_S = 0.25  # long enough for the request that found the batch to finish first
SHARE = 0.2  # at most this share of the time is spent on deferred work
QUIET_S = 0.05  # background work waits until requests left the serving lock this long ago...
MAX_YIELD_S = 2.0  # ... but never longer than this per step, so a busy server still gets it done
_RUNNING: weakref.WeakSet[Deferred] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Stop every thread before the interpreter goes: a daemon thread killed inside DuckDB's C++
    aborts the process ("terminate called after throwing ...") on the way out."""
    for deferred in list(_RUNNING):
        deferred.close()


class ServingLock:
    """The serving lock: first come, first served, and it knows when requests last held it.

    First come, first served because a request takes the lock several times (its lookup, its
    live pass, its explanation's reads) and each wait adds to its time: with a plain lock, whoever
    happens to be scheduled first gets it, and under load some requests waited many turns.

    Background work that runs beside the requests (on its own connection) still takes CPU and the
    interpreter from them; :meth:`yield_to_requests` lets it wait for a gap between requests, so a
    request does not share the two cores with it (measured: the explained live list of a changed
    customer took 127 ms median with the update running beside it, 99 ms without).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()  # guards the fields below, held only for a few instructions
        self._held = False
        self._waiting: deque[threading.Lock] = deque()  # one locked lock per waiter, first come first
        self._released = 0.0

    def __enter__(self) -> ServingLock:
        with self._mutex:
            if not self._held:
                self._held = True
                return self
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by the holder before us, which hands the lock over
        return self

    def __exit__(self, *exc: object) -> None:
        with self._mutex:
            self._released = time.monotonic()
            if self._waiting:
                self._waiting.popleft().release()  # still held: now by the next in line
            else:
                self._held = False

    def yield_to_requests(self, quiet: float = QUIET_S, at_most: float = MAX_YIELD_S) -> None:
        """Wait (at most ``at_most`` seconds) until no request has held the lock for ``quiet``
        seconds. Called by background work between its steps, never by a holder of the lock."""
        deadline = time.monotonic() + at_most
        while time.monotonic() < deadline:
            if not self._held and time.monotonic() - self._released >= quiet:
                return
            time.sleep(0.005)


class Deferred:
    """Calls ``work`` in a background thread ``delay`` seconds after :meth:`due`, once for however
    many :meth:`due` calls came meanwhile. ``work(background)`` does one bounded chunk and returns
    whether more is due; it takes whatever locks it needs, and may yield to requests when
    ``background`` (the thread) but not when settling. Never two calls at once (the thread and
    :meth:`settle` take turns)."""

    def __init__(self, work: Callable[[bool], bool | None], delay: float = DELAY_S,
                 name: str = "recsight-deferred", share: float = SHARE) -> None:
        self._work = work
        self._busy = threading.Lock()  # one call of work at a time
        self._delay = delay
        self._share = share
        self._rest = delay  # the wait before the next run: longer after a long one (see _run)
        self._name = name
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def due(self) -> None:
        """Ask for the work to be done soon (starts the thread on first use)."""
        if self._closed.is_set():
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
                _RUNNING.add(self)
        self._wake.set()

    def settle(self) -> None:
        """Do the work now if any is due, all of it (after a chunk the thread is doing)."""
        while True:
            with self._busy:
                if not self._work(False):
                    return

    def close(self, wait: bool = True) -> None:
        """Stop the thread (after the chunk it is doing; ``wait`` for that); no further work is done."""
        self._closed.set()
        self._wake.set()
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _run(self) -> None:
        """Wait for work, then run it after a rest that keeps it under ``share`` of the time: under a
        heavy stream of batches each run covers everything that arrived during the rest, so the
        work falls behind by seconds rather than the requests queueing behind it."""
        while not self._closed.is_set():
            self._wake.wait()
            if self._closed.wait(self._rest):  # closed while waiting: stop without working
                return
            self._wake.clear()
            started = time.monotonic()
            try:
                while not self._closed.is_set():
                    with self._busy:
                        more = self._work(True)
                    if not more:
                        break
            except Exception:
                log.exception("%s: deferred work failed", self._name)
            took = time.monotonic() - started
            self._rest = max(self._delay, took * (1 - self._share) / self._share)
