"""Benchmark: reads and intake writes at once on one served shop (issue 14, item 6).

    .venv/bin/python bench/live_mixed_load.py                          # 60 s mixed, 30 s intake, 3 runs
    .venv/bin/python bench/live_mixed_load.py --mixed-s 30 --intake-s 20 --runs 1

Targets: with 8 clients (1 writer posting batches of 100 events, 7 readers asking for explained
lists) reads p99 < 500 ms, zero errors, zero lost or duplicated events; intake sustained at
5,000 events/s or more in batches of 500 while serving.

Starts ``cli.py serve`` (``bench/api_load.py``'s :class:`~bench.api_load.Server`) on a free
loopback port over a private copy of the synthetic shop and its quick models (trained once by
``bench/train_time.py`` into --workdir). The users file holds the intake service account and
``--logins`` support logins: the API allows each login 30 customer lookups a minute
(``service/throttle.py``), so the readers spread their requests over the logins, each used at
most 28 times in any 60 s (a reader waits when none is free; the wait is reported and is not in
the latency). Every client signs in once through ``/login`` and sends its session cookie, so no
request pays the password hash.

Per run, on the same server:

- ``mixed``: 7 readers ``GET /api/v1/users/<id>/recommendations?k=10&explain=true`` for random
  customers, half of them among those the writer sent events for in the last seconds (ranked
  live), while 1 writer posts batches of 100 events (``POST /api/v1/events``) back to back;
- ``intake``: ``--writers`` writers post batches of 500 as fast as they can while 2 readers read.

A refused batch (429, timeout) is sent again with the same event ids, as a shop's backend would.
After each phase the store is opened (:func:`analytics.live_read.open_live`) and every event id
sent is counted: acknowledged ones must be stored exactly once, none may be stored twice.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics import schema as S
from bench._common import format_table, load_line, machine_line
from bench.api_load import Server
from bench.recommend_explain import percentile
from bench.train_time import DEFAULT_WORKDIR, trained_models

PER_LOGIN_MINUTE = 28  # under the API's 30 lookups a minute per login
INTAKE_NAME = "bench-intake"


@dataclass
class Phase:
    """What one phase measured."""

    name: str
    seconds: float = 0.0
    reads: list[float] = field(default_factory=list)  # seconds per successful read
    read_errors: dict[str, int] = field(default_factory=dict)  # status -> count
    login_waits: float = 0.0  # seconds readers waited for a login under its quota
    batches: int = 0
    accepted: int = 0
    retries: int = 0
    sent_ids: set[str] = field(default_factory=set)
    acked_ids: set[str] = field(default_factory=set)
    stored: dict[str, int] = field(default_factory=dict)


class Logins:
    """Session cookies of the support logins, handed out so none goes over its lookup quota."""

    def __init__(self, cookies: list[str]) -> None:
        self._uses = {c: deque() for c in cookies}
        self._lock = threading.Lock()

    def take(self) -> tuple[str, float]:
        """(a cookie free to use now, seconds waited for it)."""
        waited = 0.0
        while True:
            now = time.monotonic()
            with self._lock:
                for cookie, uses in self._uses.items():
                    while uses and now - uses[0] > 60:
                        uses.popleft()
                    if len(uses) < PER_LOGIN_MINUTE:
                        uses.append(now)
                        return cookie, waited
            time.sleep(0.05)
            waited += 0.05


def _request(port: int, method: str, path: str, *, body: bytes | None = None, cookie: str = "",
             headers: dict[str, str] | None = None, conn: http.client.HTTPConnection | None = None
             ) -> tuple[int, bytes, list[str]]:
    """One request (on ``conn`` when given): status, body, Set-Cookie headers."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        sent = dict(headers or {}, **({"Cookie": cookie} if cookie else {}))
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return response.status, response.read(), response.headers.get_all("Set-Cookie") or []
    finally:
        if own:
            conn.close()


def sign_in(port: int, name: str, password: str) -> str:
    """The session cookie of ``name``, signed in through the ``/login`` form."""
    status, body, set_cookies = _request(port, "GET", "/login")
    token = re.search(r'name="csrf" value="([^"]+)"', body.decode())
    if status != 200 or not token:
        raise RuntimeError("the sign-in page has no form token")
    jar = "; ".join(c.split(";", 1)[0] for c in set_cookies)
    form = urllib.parse.urlencode({"name": name, "password": password, "csrf": token.group(1)}).encode()
    status, _, set_cookies = _request(port, "POST", "/login", body=form, cookie=jar,
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    if status != 302:
        raise RuntimeError(f"sign-in of {name} failed with HTTP {status}")
    return "; ".join(c.split(";", 1)[0] for c in set_cookies)


def _reader(port: int, logins: Logins, customers: list[str], recent: deque, phase: Phase, lock: threading.Lock,
            stop: threading.Event, seed: int) -> None:
    """Explained lists until ``stop``: half for customers just written for, half at random."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        user = rng.choice(recent) if recent and rng.random() < 0.5 else rng.choice(customers)
        cookie, waited = logins.take()
        started = time.perf_counter()
        try:
            status, body, _ = _request(port, "GET", f"/api/v1/users/{urllib.parse.quote(user)}/recommendations"
                                       "?k=10&explain=true", cookie=cookie, conn=conn)
            ok = status == 200 and bool(json.loads(body).get("items"))
            why = str(status) if status != 200 else "empty list"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            ok, why = False, type(exc).__name__
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        elapsed = time.perf_counter() - started
        with lock:
            phase.login_waits += waited
            if ok:
                phase.reads.append(elapsed)
            else:
                phase.read_errors[why] = phase.read_errors.get(why, 0) + 1
    conn.close()


def _writer(port: int, cookie: str, make_batch, phase: Phase, lock: threading.Lock, stop: threading.Event,
            rate: float = 0.0) -> None:
    """Post batches until ``stop``, back to back or at ``rate`` events per second; a refused batch is
    re-sent unchanged until acknowledged."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    next_at = time.perf_counter()
    while not stop.is_set():
        if rate > 0:
            stop.wait(max(0.0, next_at - time.perf_counter()))
            next_at += make_batch.size / rate
        batch = make_batch()
        ids = [e["event_id"] for e in batch]
        with lock:
            phase.sent_ids.update(ids)
        body = json.dumps(batch).encode()
        while True:
            try:
                status, answer, _ = _request(port, "POST", "/api/v1/events", body=body, cookie=cookie,
                                             headers=headers, conn=conn)
            except (OSError, http.client.HTTPException):
                status, answer = 0, b""
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if status == 200:
                result = json.loads(answer)
                if result.get("rejected"):
                    raise RuntimeError(f"the intake refused bench events: {result['rejected'][:2]}")
                with lock:
                    phase.batches += 1
                    phase.accepted += result["accepted"]
                    phase.acked_ids.update(ids)
                break
            with lock:
                phase.retries += 1
            time.sleep(0.2)
    conn.close()


class Batches:
    """Batches of views and carts by random customers on popular items, ids unique per bench run."""

    def __init__(self, tag: str, customers: list[str], items: list[str], start, size: int, recent: deque,
                 seed: int) -> None:
        self.tag, self.customers, self.items, self.size, self.recent = tag, customers, items, size, recent
        self.rng = random.Random(seed)
        self.next_ts, self.n = start, 0
        self._lock = threading.Lock()

    def __call__(self) -> list[dict]:
        with self._lock:
            batch = []
            for _ in range(self.size):
                self.n += 1
                self.next_ts += timedelta(milliseconds=10)
                user = self.rng.choice(self.customers)
                batch.append({"event_id": f"{self.tag}-{self.n}", "user_id": user,
                              "item_id": self.rng.choice(self.items),
                              "event_type": S.CART if self.rng.random() < 0.1 else S.VIEW,
                              "ts": self.next_ts.isoformat()})
                self.recent.append(user)
            return batch


def run_phase(name: str, port: int, logins: Logins, intake_cookie: str, customers: list[str], batches: Batches,
              readers: int, writers: int, seconds: float, seed: int, rate: float = 0.0) -> Phase:
    """``readers`` and ``writers`` threads for ``seconds`` (writers at ``rate`` events/s each; 0: flat out)."""
    phase, lock, stop = Phase(name), threading.Lock(), threading.Event()
    threads = [threading.Thread(target=_reader, args=(port, logins, customers, batches.recent, phase, lock, stop,
                                                     seed + i)) for i in range(readers)]
    threads += [threading.Thread(target=_writer, args=(port, intake_cookie, batches, phase, lock, stop, rate))
                for _ in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - started
    return phase


def count_stored(db: Path, prefix: str) -> dict[str, int]:
    """{event_id: times stored} for the bench's ids, over the live segment (and folded ids, if any)."""
    from analytics.live_read import open_live

    con, _ = open_live(db)
    try:
        sources = ["SELECT event_id FROM live_events"]
        if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'live_event_ids' "
                       "AND NOT temporary").fetchone()[0]:
            sources.append("SELECT event_id FROM live_event_ids")  # folded by a compaction meanwhile
        rows = con.execute(f"SELECT event_id, count(*) FROM ({' UNION ALL '.join(sources)}) "
                           "WHERE starts_with(event_id, ?) GROUP BY ALL", [prefix]).fetchall()
    finally:
        con.close()
    return dict(rows)


def _check(phase: Phase, db: Path, prefix: str) -> str:
    phase.stored = count_stored(db, prefix)
    lost = sum(1 for i in phase.acked_ids if phase.stored.get(i, 0) == 0)
    doubled = sum(1 for i in phase.sent_ids if phase.stored.get(i, 0) > 1)
    unknown = sum(1 for i in phase.stored if i not in phase.sent_ids)
    return f"{lost} lost, {doubled} duplicated, {unknown} never sent"


def _setup(workdir: Path, synth_users: int, tmp: Path, n_logins: int) -> tuple[Server, Path, list[str], list[str],
                                                                                   object, dict[str, str]]:
    """A private copy of the trained shop served by ``cli.py serve``, with the bench's logins in its users file."""
    import pyarrow.parquet as pq

    from analytics.db import connect_read_only
    from service.users import INTAKE, SUPPORT, add_user

    db, models = trained_models("synthetic", workdir, "quick", synth_users)
    shutil.copy2(db, tmp / db.name)
    shutil.copytree(models, tmp / models.name)
    db = tmp / db.name
    users = db.parent / "state"
    users.mkdir()
    passwords = {f"bench-reader-{i}": secrets.token_urlsafe(16) for i in range(n_logins)}
    passwords[INTAKE_NAME] = secrets.token_urlsafe(16)
    for name, password in passwords.items():
        add_user(users / "users.json", name, INTAKE if name == INTAKE_NAME else SUPPORT, password)
    customers = sorted(str(u) for u in pq.read_table(
        workdir / f"synthetic-{synth_users}" / "users.parquet", columns=[S.USER_ID]).column(0).to_pylist())
    with connect_read_only(db) as con:
        last = con.execute(f"SELECT max({S.TS}) FROM {S.EVENTS}").fetchone()[0]
        items = [r[0] for r in con.execute(f"SELECT {S.ITEM_ID} FROM {S.EVENTS} GROUP BY ALL "
                                           "ORDER BY count(*) DESC, 1 LIMIT 300").fetchall()]
    server = Server(db, tmp / models.name, users)
    return server, db, customers, items, last, passwords


def _row(run: int, phase: Phase, verdict: str) -> list[str]:
    ms = [x * 1000 for x in phase.reads]
    errors = sum(phase.read_errors.values())
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(phase.read_errors.items()))
    return [f"run {run} {phase.name}", f"{len(ms):,}",
            *(f"{percentile(ms, q):.0f}" if ms else "-" for q in (50, 95, 99)),
            f"{errors}" + (f" ({detail})" if detail else ""), f"{len(ms) / phase.seconds:.1f}",
            f"{phase.accepted / phase.seconds:,.0f}", f"{phase.batches:,}", f"{phase.retries}",
            f"{phase.login_waits:.1f}", verdict]


HEADERS = ["run phase", "reads", "p50 ms", "p95 ms", "p99 ms", "read errors", "reads/s", "events/s",
           "batches", "retries", "login wait s", "events stored (acknowledged: once each)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixed-s", type=float, default=60.0, help="seconds of the mixed phase")
    parser.add_argument("--intake-s", type=float, default=30.0, help="seconds of the intake phase")
    parser.add_argument("--runs", type=int, default=3, help="runs of both phases (median over runs)")
    parser.add_argument("--writers", type=int, default=1, help="writers in the intake phase")
    parser.add_argument("--write-rate", type=float, default=0.0,
                        help="events/s of the mixed phase's writer (0: batches back to back, as fast as acknowledged)")
    parser.add_argument("--logins", type=int, default=80, help="support logins the readers share")
    parser.add_argument("--synth-users", type=int, default=5000)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"machine: {machine_line()}")
    print(f"load average at the start: {load_line()}")
    with tempfile.TemporaryDirectory(prefix="recsight-mixed-") as tmp:
        server, db, customers, items, last, passwords = _setup(args.workdir, args.synth_users, Path(tmp),
                                                                args.logins)
        try:
            t0 = time.perf_counter()
            logins = Logins([sign_in(server.port, n, p) for n, p in passwords.items() if n != INTAKE_NAME])
            intake_cookie = sign_in(server.port, INTAKE_NAME, passwords[INTAKE_NAME])
            print(f"server on port {server.port}; {args.logins} support logins and the intake account signed in "
                  f"in {time.perf_counter() - t0:.1f} s", flush=True)
            print(f"warm-up (model load, first explanations): {_warm_up(server.port, logins, customers):.1f} s",
                  flush=True)
            rows, phases = _runs(args, server, db, logins, intake_cookie, customers, items, last)
        finally:
            peak = server.peak_rss_mb()
            server.stop()
    print(f"\nsynthetic shop, {args.synth_users:,} customers, quick models; server: cli.py serve (one process); "
          f"clients: threads on the same machine; server peak RSS {peak:,.0f} MiB")
    print(format_table(HEADERS, rows))
    _medians(phases)
    print(f"wall time {time.perf_counter() - started:.0f} s; load average at the end: {load_line()}")
    return 0


def _warm_up(port: int, logins: Logins, customers: list[str], n: int = 4) -> float:
    """A few explained lists one after another, so the first phase does not time the model load."""
    started = time.perf_counter()
    for user in customers[:n]:
        cookie, _ = logins.take()
        status, _, _ = _request(port, "GET", f"/api/v1/users/{user}/recommendations?k=10&explain=true", cookie=cookie)
        if status != 200:
            raise RuntimeError(f"warm-up request answered HTTP {status}")
    return time.perf_counter() - started


def _runs(args: argparse.Namespace, server: Server, db: Path, logins: Logins, intake_cookie: str,
          customers: list[str], items: list[str], last: object) -> tuple[list[list[str]], dict[str, list[Phase]]]:
    rows: list[list[str]] = []
    phases: dict[str, list[Phase]] = {"mixed": [], "intake": []}
    start = last + timedelta(minutes=1)
    plan = (("mixed", 7, 1, 100, args.mixed_s), ("intake", 2, args.writers, 500, args.intake_s))
    for run in range(1, args.runs + 1):
        for name, readers, writers, size, seconds in plan:
            tag = f"bench{run}{name}"
            batches = Batches(tag, customers, items, start, size, deque(maxlen=200), args.seed + run)
            phase = run_phase(name, server.port, logins, intake_cookie, customers, batches, readers, writers,
                              seconds, args.seed + 100 * run, args.write_rate if name == "mixed" else 0.0)
            start = batches.next_ts + timedelta(seconds=1)
            rows.append(_row(run, phase, _check(phase, db, tag + "-")))
            phases[name].append(phase)
            print(format_table(HEADERS, rows[-1:]) + f"\nload {load_line()}", flush=True)
    return rows, phases


def _medians(phases: dict[str, list[Phase]]) -> None:
    for name, runs in phases.items():
        if not runs:
            continue
        p99 = [percentile([x * 1000 for x in r.reads], 99) for r in runs if r.reads]
        rate = [r.accepted / r.seconds for r in runs]
        errors = sum(sum(r.read_errors.values()) for r in runs)
        print(f"{name}: median over {len(runs)} run(s): reads p99 {statistics.median(p99):.0f} ms, "
              f"intake {statistics.median(rate):,.0f} events/s (min {min(rate):,.0f}); read errors {errors}")


if __name__ == "__main__":
    sys.exit(main())
