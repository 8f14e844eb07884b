"""Benchmark: the API and the customer-lookup page under load, served as in production.

    .venv/bin/python bench/api_load.py                                    # Beauty, N = 1, 8, 32
    .venv/bin/python bench/api_load.py --datasets synthetic --requests 60 --repeat 1

Starts ``cli.py serve`` (the app under waitress, as ``make run`` does) on a free loopback port
for a trained shop, signs a support user in through the real ``/login`` form, and then, for each
workload and each N in ``--clients``, lets N concurrent clients (threads, one keep-alive
connection each) share ``--requests`` requests over a seeded sample of customers:

- ``api``: ``GET /api/v1/users/<id>/recommendations?k=10`` (JSON list);
- ``api explain``: the same with ``explain=true`` (reasons and attributions per item);
- ``lookup page``: the Dash callback a ``/user/<id>`` lookup runs (``POST /_dash-update-component``
  for the result area: profile, timeline, explained item cards), the page's server-side work.

Per level: throughput (requests/s over the level's wall time), median and 99th percentile latency
per request, and errors (non-200 answers, bad bodies, timeouts), each over ``--repeat`` runs
(median, with min-max of the runs' throughputs). The server's peak resident memory (VmHWM) is
read from /proc when it stops. The clients run on the same 2 cores as the server, as a support
team's browsers would not: the figures are a floor.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import format_table, load_line, machine_line
from bench.recommend_explain import percentile
from bench.train_engine import SECRET
from bench.train_time import DATASETS, DEFAULT_WORKDIR, trained_models

__all__ = ["Server", "Level", "run_level"]

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("api", "api explain", "lookup page")
USER_NAME = "bench-support"


class Server:
    """``cli.py serve`` in a child process, with its own users file and audit log."""

    def __init__(self, db: Path, models: Path, state: Path) -> None:
        from service.users import SUPPORT, add_user

        self.password = secrets.token_urlsafe(16)
        users = state / "users.json"
        add_user(users, USER_NAME, SUPPORT, self.password)
        self.port = _free_port()
        env = dict(os.environ, RECSIGHT_SECRET=SECRET, RECSIGHT_USERS=str(users),
                   RECSIGHT_AUDIT_DB=str(state / "audit.duckdb"), PYTHONPATH=str(ROOT))
        self.log = (state / "server.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "serve", "--db", str(db), "--models", str(models),
             "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=state, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                if _request(self.port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {state / 'server.log'}")
            time.sleep(0.3)

    def sign_in(self) -> str:
        """The session cookie of the support user, signed in through the /login form."""
        status, body, cookies = _request(self.port, "GET", "/login")
        token = re.search(r'name="csrf" value="([^"]+)"', body.decode())
        if status != 200 or not token:
            raise RuntimeError("the sign-in page has no form token")
        form = urllib.parse.urlencode({"name": USER_NAME, "password": self.password, "csrf": token.group(1)})
        status, _, cookies = _request(self.port, "POST", "/login", form.encode(), cookies,
                                      {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 302:
            raise RuntimeError(f"sign-in failed with HTTP {status}")
        return cookies

    def peak_rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.process.pid}/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(port: int, method: str, path: str, body: bytes | None = None, cookies: str = "",
             headers: dict[str, str] | None = None, conn: http.client.HTTPConnection | None = None
             ) -> tuple[int, bytes, str]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        sent = dict(headers or {})
        if cookies:
            sent["Cookie"] = cookies
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        jar = dict(c.split("=", 1) for c in cookies.split("; ") if "=" in c)
        for header in response.headers.get_all("Set-Cookie") or []:
            name, value = header.split(";", 1)[0].split("=", 1)
            jar[name] = value
        return response.status, data, "; ".join(f"{k}={v}" for k, v in jar.items())
    finally:
        if own:
            conn.close()


def _lookup_payload(user: str) -> bytes:
    """The body Dash posts when ``/user/<id>`` triggers the lookup callback of pages/user.py."""
    return json.dumps({
        "output": "..cu-result.children...cu-customer.data..",
        "outputs": [{"id": "cu-result", "property": "children"}, {"id": "cu-customer", "property": "data"}],
        "inputs": [{"id": "cu-go", "property": "n_clicks", "value": 0},
                   {"id": "cu-search", "property": "n_submit", "value": 0},
                   {"id": "cu-initial", "property": "data", "value": user}],
        "changedPropIds": ["cu-initial.data"],
        "state": [{"id": "cu-search", "property": "value", "value": user}],
    }).encode()


def _call(workload: str, port: int, user: str, cookies: str, conn: http.client.HTTPConnection) -> bool:
    """One request; True when the answer is what a client needs."""
    if workload == "lookup page":
        status, body, _ = _request(port, "POST", "/_dash-update-component", _lookup_payload(user), cookies,
                                   {"Content-Type": "application/json"}, conn)
        if status != 200:
            return False
        customer = json.loads(body).get("response", {}).get("cu-customer", {}).get("data") or {}
        return customer.get("user_id") == user and bool(customer.get("items"))
    query = "k=10&explain=true" if workload == "api explain" else "k=10"
    status, body, _ = _request(port, "GET", f"/api/v1/users/{urllib.parse.quote(user)}/recommendations?{query}",
                               None, cookies, None, conn)
    return status == 200 and bool(json.loads(body).get("items"))


@dataclass
class Level:
    """What one run of N clients measured."""

    clients: int
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def throughput(self) -> float:
        return (len(self.latencies) + self.errors) / self.wall_s if self.wall_s else float("nan")


def run_level(workload: str, port: int, cookies: str, users: list[str], clients: int, requests: int) -> Level:
    """``clients`` threads share ``requests`` requests; every request's latency is kept."""
    level = Level(clients)
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            started = time.perf_counter()
            try:
                ok = _call(workload, port, users[i % len(users)], cookies, conn)
            except (OSError, http.client.HTTPException, ValueError):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            elapsed = time.perf_counter() - started
            with lock:
                if ok:
                    level.latencies.append(elapsed)
                else:
                    level.errors += 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    level.wall_s = time.perf_counter() - started
    return level


def _customers(db: Path, n: int, seed: int) -> list[str]:
    from analytics.db import connect_read_only

    with connect_read_only(db) as con:
        return [row[0] for row in con.execute(
            "SELECT user_id FROM (SELECT DISTINCT user_id FROM events) ORDER BY hash(user_id || ?) LIMIT ?",
            [str(seed), n]).fetchall()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["beauty"], choices=DATASETS)
    parser.add_argument("--kind", choices=("quick", "full"), default="full", help="which trained configuration")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=200, help="requests per level and run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per level (median, min-max)")
    parser.add_argument("--customers", type=int, default=500, help="distinct customers the requests cycle through")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--synth-users", type=int, default=5000)
    args = parser.parse_args(argv)

    print(f"machine: {machine_line()}")
    print(f"load average at the start: {load_line()}")
    print(f"server: cli.py serve (waitress, {_threads()} threads, one process); clients: threads on the same "
          f"machine; {args.requests} requests per level and run, {args.repeat} run(s)")
    rows = []
    for dataset in args.datasets:
        db, models = trained_models(dataset, args.workdir, args.kind, args.synth_users)
        users = _customers(db, args.customers, args.seed)
        state = Path(tempfile.mkdtemp(prefix="recsight-load-"))
        server = Server(db, models, state)
        try:
            cookies = server.sign_in()
            for workload in args.workloads:
                warm = run_level(workload, server.port, cookies, users[-4:], 1, 4)  # model load, imports, caches
                print(f"\n{dataset} {workload}: warm-up {warm.wall_s:.1f} s ({warm.errors} errors)", flush=True)
                for clients in args.clients:
                    runs = [run_level(workload, server.port, cookies, users, clients, args.requests)
                            for _ in range(max(1, args.repeat))]
                    ms = [x * 1000 for run in runs for x in run.latencies]
                    rates = [run.throughput for run in runs]
                    errors = sum(run.errors for run in runs)
                    total = sum(len(run.latencies) + run.errors for run in runs)
                    rows.append([f"{dataset} {workload}", str(clients),
                                 f"{statistics.median(rates):.1f} [{min(rates):.1f}-{max(rates):.1f}]",
                                 f"{statistics.median(ms):.0f}" if ms else "-",
                                 f"{percentile(ms, 99):.0f}" if ms else "-", f"{errors}/{total}"])
                    print(f"  N={clients}: {rows[-1][2]} req/s, median {rows[-1][3]} ms, p99 {rows[-1][4]} ms, "
                          f"errors {rows[-1][5]}; load {load_line()}", flush=True)
        finally:
            peak = server.peak_rss_mb()
            server.stop()
            shutil.rmtree(state, ignore_errors=True)
        print(f"{dataset}: server peak RSS {peak:,.0f} MiB")
        rows.append([f"{dataset} server peak RSS", "", f"{peak:,.0f} MiB", "", "", ""])
    print()
    print(format_table(["dataset workload", "N", "req/s [min-max]", "median ms", "p99 ms", "errors"], rows))
    print(f"load average at the end: {load_line()}")
    return 0


def _threads() -> int:
    from app import THREADS

    return THREADS


if __name__ == "__main__":
    sys.exit(main())
