"""The deferred co-visitation update: done shortly after a request asked, once for many asks, and
at once on settle; in the background it waits for gaps between requests (models/deferred.py)."""

from __future__ import annotations

import threading
import time

from models.deferred import Deferred, ServingLock


def test_work_is_done_in_the_background_once_for_asks_that_came_together():
    done: list[float] = []
    deferred = Deferred(lambda background: done.append(time.monotonic()), delay=0.2)
    asked = time.monotonic()
    for _ in range(5):
        deferred.due()
    assert done == []  # the asking request did not wait for it
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    deferred.close()
    assert len(done) == 1 and done[0] - asked >= 0.2


def test_the_thread_and_settle_never_work_at_once():
    running, overlaps = [0], []

    def slow(background: bool) -> None:
        running[0] += 1
        overlaps.append(running[0])
        time.sleep(0.05)
        running[0] -= 1

    deferred = Deferred(slow, delay=0.0)
    deferred.due()
    time.sleep(0.02)  # the thread is inside its call
    deferred.settle()
    deferred.close()
    assert len(overlaps) >= 2 and max(overlaps) == 1


def test_settle_works_now_and_close_stops_the_thread():
    done: list[float] = []
    deferred = Deferred(lambda background: done.append(1.0), delay=60)
    deferred.due()
    deferred.settle()
    assert done == [1.0]
    deferred.close()  # does not wait the minute out, and does not work again
    assert done == [1.0]
    deferred.due()  # after close: nothing
    assert done == [1.0]


def test_a_failure_is_logged_and_later_work_still_runs(caplog):
    calls: list[int] = []

    def flaky(background: bool) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("damaged weights")

    deferred = Deferred(flaky, delay=0.01)
    deferred.due()
    deadline = time.monotonic() + 10
    while len(calls) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    deferred.due()
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    deferred.close()
    assert len(calls) == 2 and "deferred work failed" in caplog.text


def test_the_thread_works_in_the_background_and_settle_at_once():
    calls: list[bool] = []
    deferred = Deferred(lambda background: calls.append(background), delay=0.01)
    deferred.settle()
    deferred.due()
    deadline = time.monotonic() + 10
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    deferred.close()
    assert calls == [False, True]


def test_background_work_waits_for_a_gap_between_requests_but_not_forever():
    lock = ServingLock()
    released = threading.Event()

    def request() -> None:
        with lock:
            time.sleep(0.2)
        released.set()

    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(0.02)
    started = time.monotonic()
    lock.yield_to_requests(quiet=0.05, at_most=5)
    waited = time.monotonic() - started
    assert released.is_set() and 0.2 <= waited + 0.02 < 2  # after the request, and the quiet time
    thread.join()
    with lock:
        started = time.monotonic()
        lock.yield_to_requests(quiet=0.05, at_most=0.1)  # a request that never ends: gives up
        assert time.monotonic() - started < 1
