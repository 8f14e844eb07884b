"""Coalescing: requests that wait while a pass runs are served together, each gets its own answer,
a bad request fails alone, and a failed pass never leaves a waiter hanging."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from models.coalesce import Coalescer


class _Recorder:
    """A ``serve`` that records its passes; request "bad" fails alone, "boom" fails its pass."""

    def __init__(self) -> None:
        self.passes: list[list[str]] = []

    def __call__(self, requests: list[str]) -> list[str | BaseException]:
        self.passes.append(list(requests))
        if "boom" in requests:
            raise RuntimeError("the pass failed")
        return [ValueError(f"bad request {r}") if r == "bad" else r.upper() for r in requests]


def _submit_while_held(coalescer: Coalescer, guard: threading.Lock, requests: list[str]) -> list:
    """Submit every request while ``guard`` is held, release it once all are waiting, and
    return each request's answer (or the exception it raised)."""
    def one(request: str) -> object:
        try:
            return coalescer.submit(request)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each caller got
            return exc

    with ThreadPoolExecutor(len(requests)) as pool:
        guard.acquire()
        futures = []
        for request in requests:
            futures.append(pool.submit(one, request))
            time.sleep(0.05)  # in submission order: the first leads
        deadline = time.monotonic() + 5
        while len(coalescer._waiting) < len(requests) and time.monotonic() < deadline:
            time.sleep(0.01)
        guard.release()
        return [f.result(timeout=10) for f in futures]


def test_requests_waiting_for_the_lock_are_served_in_one_pass_each_with_its_own_answer() -> None:
    serve, guard = _Recorder(), threading.Lock()
    answers = _submit_while_held(Coalescer(serve, guard), guard, ["a", "b", "c", "d"])
    assert answers == ["A", "B", "C", "D"]
    assert serve.passes == [["a", "b", "c", "d"]]


def test_a_bad_request_fails_alone_and_a_failed_pass_fails_every_request_in_it() -> None:
    serve, guard = _Recorder(), threading.Lock()
    answers = _submit_while_held(Coalescer(serve, guard), guard, ["a", "bad", "c"])
    assert answers[0] == "A" and answers[2] == "C"
    assert isinstance(answers[1], ValueError)

    answers = _submit_while_held(Coalescer(serve, guard), guard, ["a", "boom", "c"])
    assert all(isinstance(a, RuntimeError) for a in answers)


def test_passes_are_bounded_and_the_lead_passes_on_until_nobody_waits() -> None:
    serve, guard = _Recorder(), threading.Lock()
    coalescer = Coalescer(serve, guard, max_batch=2)
    requests = [f"r{n}" for n in range(5)]
    answers = _submit_while_held(coalescer, guard, requests)
    assert answers == [r.upper() for r in requests]
    assert [len(p) for p in serve.passes] == [2, 2, 1]
    assert coalescer.submit("again") == "AGAIN"  # nobody leads any more: the next caller does
    assert serve.passes[-1] == ["again"]


def test_a_lone_request_is_served_at_once_in_its_own_thread() -> None:
    serve = _Recorder()
    assert Coalescer(serve).submit("x") == "X"
    with pytest.raises(ValueError, match="bad request"):
        Coalescer(serve).submit("bad")
