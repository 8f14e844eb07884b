"""The intake's promise to the shop's backend: a 200 means the events are durable, so a ``kill -9``
of the server one millisecond later loses none of them, and a batch cut by the kill is stored
whole or not at all (never half of it), so re-sending it is always safe.

A real server (``app.create_app`` under waitress, as ``cli.py serve`` runs it) is started in a
process of its own over a small ingested shop, so the test can SIGKILL it as an operator's
``kill -9`` or the kernel's OOM killer would. The backend posts batches with HTTP basic auth, as
curl would. After each kill, with the server dead, the store is read from disk
(``analytics.live_read.open_live``); a fresh server then takes over the same store, and at the
end every batch is sent again to a new server: acknowledged ones must come back as duplicates.

What a kill -9 can and cannot show: the process dies with the segment file written and renamed
(or not), but the kernel's page cache survives it, so this does not test the fsync against a power
cut; it tests that the answer never comes before the write is complete.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pyarrow.parquet as pq
import pytest

from analytics.ingest import ingest_paths
from analytics.live_read import open_live
from analytics.live_segments import live_folder
from analytics.synth import generate_shop
from service.users import INTAKE
from tests.conftest import TEST_SECRET
from tests.service.support import ACCOUNTS, write_users

ROOT = Path(__file__).resolve().parents[2]
EVENTS = "/api/v1/events"
START_TIMEOUT_S = 90.0  # importing the app and building it takes a few seconds; a loaded machine, more
REQUEST_TIMEOUT_S = 60.0
T = TypeVar("T")
_SEGMENT = re.compile(r"^\d{12}\.parquet$")  # a segment renamed into place (live_segments)

# The server process: the real app under waitress on a free loopback port. It says which port by
# writing a file (renamed into place, so the test never reads half of it); its output goes to a
# log file, so a full pipe can never stall it.
_SERVER = """
import os, sys
from pathlib import Path
from waitress.server import create_server
from app import THREADS, create_app
from settings import Settings

db, users, state, port_file = (Path(a) for a in sys.argv[1:5])
settings = Settings(db_path=db, models_dir=state / "models", secret=os.environ["RECSIGHT_SECRET"],
                    users_file=users, audit_db=state / "audit.duckdb")
app = create_app(settings)
server = create_server(app.server, host="127.0.0.1", port=0, threads=THREADS, ident="recsight-kill-test")
tmp = port_file.with_suffix(".tmp")
tmp.write_text(str(server.effective_port))
os.replace(tmp, port_file)
server.run()
"""


@dataclass
class Shop:
    """The shop the servers serve: its database, users file and state folder, its customers' shop
    ids and its item ids (what the backend's events name)."""

    db: Path
    users: Path
    state: Path
    customers: list[str]
    items: list[str]


@dataclass
class Sent:
    """One batch the backend sent, and what it knows about its fate."""

    name: str
    events: list[dict]
    acknowledged: bool  # a 200 came back

    @property
    def ids(self) -> list[str]:
        return [e["event_id"] for e in self.events]


@dataclass
class Server:
    """A server process over ``shop``; ``kill()`` is ``kill -9``."""

    shop: Shop
    folder: Path
    child: subprocess.Popen = field(init=False)
    port: int = field(init=False)
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        port_file = self.folder / "port"
        env = {**os.environ, "RECSIGHT_SECRET": TEST_SECRET,
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.log = self.folder / "server.log"
        with self.log.open("wb") as log:
            self.child = subprocess.Popen([sys.executable, "-c", _SERVER, str(self.shop.db), str(self.shop.users),
                                           str(self.shop.state), str(port_file)],
                                          cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT)
        try:
            self.port = int(self._poll(lambda: port_file.read_text() if port_file.exists() else None))
            self._poll(self._healthy)
        except BaseException:
            self.kill()
            raise

    def _poll(self, probe: Callable[[], T | None]) -> T:
        """``probe()`` once it answers, polled until the start timeout; a dead server fails at once."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = probe()
            if found:
                return found
            if self.child.poll() is not None:
                raise AssertionError(f"the server exited with {self.child.returncode}: {self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"the server was not ready within {START_TIMEOUT_S:.0f} s: {self.output()}")

    def _healthy(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/health")
                return conn.getresponse().status == 200
            finally:
                conn.close()
        except OSError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGKILL)
        self.child.wait(timeout=30)

    def killed(self) -> bool:
        return self.child.returncode == -signal.SIGKILL

    # ----------------------------------------------------------------- the backend's requests

    def post(self, batch: list[dict]) -> dict:
        """Post a batch and read the answer (which must be 200)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            conn.request("POST", EVENTS, body=json.dumps(batch).encode(), headers=_headers())
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        assert response.status == 200, (response.status, body[:500], self.output())
        return json.loads(body)

    def send_then_kill(self, batch: list[dict], cut: str) -> str:
        """Send the batch and kill the server before its answer is read: ``cut`` "body" after half
        the body; "temp" as soon as a new file shows in the live folder (the segment's temp file:
        the write has begun); "segment" as soon as a new numbered segment file shows (renamed into
        place, not yet answered). Either watch also stops when the answer is on its way. Returns
        what the kill followed: "body", "temp", "segment" or "answer"."""
        body = json.dumps(batch).encode()
        head = [f"POST {EVENTS} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}", "Connection: close",
                *(f"{k}: {v}" for k, v in _headers().items())]
        folder = live_folder(self.shop.db)
        before = set(os.listdir(folder)) if folder.is_dir() else set()
        seen = cut
        with socket.create_connection(("127.0.0.1", self.port), timeout=REQUEST_TIMEOUT_S) as sock:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            if cut == "body":
                sock.sendall(body[:len(body) // 2])
            else:
                sock.sendall(body)
                sock.setblocking(False)
                seen = self._watch(sock, folder, before, segments_only=cut == "segment")
            self.kill()
        return seen

    @staticmethod
    def _watch(sock: socket.socket, folder: Path, before: set[str], *, segments_only: bool) -> str:
        """A tight, bounded watch of the live folder and the socket (the write takes milliseconds)."""
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        while time.monotonic() < deadline:
            new = set(os.listdir(folder)) - before if folder.is_dir() else set()
            if any(_SEGMENT.match(name) for name in new):
                return "segment"
            if new and not segments_only:
                return "temp"
            try:
                sock.recv(1, socket.MSG_PEEK)
                return "answer"  # the answer (or a close) is on its way: too late to cut the batch
            except BlockingIOError:
                pass
        raise AssertionError(f"no sign of the batch being taken in within {REQUEST_TIMEOUT_S:.0f} s")


def _headers() -> dict[str, str]:
    name, password = ACCOUNTS[INTAKE]
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Content-Type": "application/json", "Authorization": f"Basic {token}"}


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    """A small ingested shop (a real snapshot for the live segment to sit beside), its customers' shop
    ids and its item ids; users (one per role) and state in their own folder."""
    export = tmp_path / "synth"
    generate_shop(export, n_users=30, n_items=80, n_days=10, seed=5)
    db = tmp_path / "shop.duckdb"
    ingest_paths(db, "generic", [export], secret=TEST_SECRET)
    customers = [str(u) for u in pq.read_table(export / "users.parquet", columns=["user_id"]).column(0).to_pylist()]
    items = [str(i) for i in pq.read_table(export / "items.parquet", columns=["item_id"]).column(0).to_pylist()]
    state = tmp_path / "state"
    return Shop(db=db, users=write_users(state / "users.json"), state=state, customers=customers, items=items)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Every server started by the test, killed at the end whatever happens."""
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()


def _batch(shop: Shop, name: str, size: int) -> list[dict]:
    return [{"event_id": f"{name}-{j}", "user_id": shop.customers[j % len(shop.customers)],
             "item_id": shop.items[(j * 7) % len(shop.items)], "event_type": ("view", "cart", "purchase")[j % 3],
             "ts": f"2024-03-{1 + j % 28:02d}T{j % 24:02d}:{j % 60:02d}:00Z", "session_id": f"{name}-s{j // 10}",
             **({"quantity": 1 + j % 3, "price": 9.5 + j % 7} if j % 3 == 2 else {})} for j in range(size)]


def _stored(db: Path) -> dict[str, int]:
    """How often each event id is in the store (snapshot and live segment), read from disk."""
    con, _ = open_live(db)
    try:
        return dict(con.execute("SELECT event_id, count(*) FROM live_events GROUP BY event_id").fetchall())
    finally:
        con.close()


def _check_store(db: Path, sent: list[Sent]) -> dict[str, bool]:
    """Every acknowledged batch stored once, every cut one whole or absent, nothing else stored;
    for each cut batch, whether it is present."""
    stored = _stored(db)
    present: dict[str, bool] = {}
    for batch in sent:
        counts = [stored.get(event_id, 0) for event_id in batch.ids]
        if batch.acknowledged:
            assert counts == [1] * len(counts), f"acknowledged batch {batch.name} is not stored exactly once"
        else:
            assert set(counts) in ({0}, {1}), f"batch {batch.name}, cut by the kill, is partly stored"
            present[batch.name] = counts[0] == 1
    expected = {event_id for batch in sent for event_id in batch.ids}
    extra = set(stored) - expected
    assert not extra, f"{len(extra)} events stored that no batch sent, e.g. {sorted(extra)[:3]}"
    return present


def test_a_200_survives_kill_9_of_the_server_and_a_cut_batch_is_whole_or_absent(tmp_path, shop, servers):
    """Four kill rounds over one store, each by a new server process taking over from the killed
    one: killed one moment after a 200; while a batch's body was half sent; as its segment was being
    written; right after its segment was renamed into place, before the answer. Then a fifth server
    gets every batch again and must store nothing twice."""
    sent: list[Sent] = []
    rounds = (("after-200", [1, 250, 1000], None), ("half-body", [40, 600], "body"),
              ("in-write", [300, 5], "temp"), ("renamed", [2], "segment"))
    for n, (name, sizes, cut) in enumerate(rounds):
        server = Server(shop, tmp_path / f"server{n}")
        servers.append(server)
        for k, size in enumerate(sizes):
            batch = Sent(f"r{n}{name}-b{k}", _batch(shop, f"r{n}{name}-b{k}", size), acknowledged=False)
            answer = server.post(batch.events)
            batch.acknowledged = True
            sent.append(batch)
            assert answer == {"accepted": size, "duplicates": 0, "rejected": []}
        if cut is None:
            server.kill()  # the very moment the last 200 was read
        else:
            batch = Sent(f"r{n}{name}-cut", _batch(shop, f"r{n}{name}-cut", 1000), acknowledged=False)
            sent.append(batch)
            seen = server.send_then_kill(batch.events, cut)
        assert server.killed(), server.output()
        present = _check_store(shop.db, sent)  # with the server dead: what is on disk
        if cut == "body":
            assert present[batch.name] is False  # the server never had the whole batch
        elif cut is not None and seen in ("segment", "answer"):
            assert present[batch.name] is True  # its segment file was complete and in place

    final = Server(shop, tmp_path / "server-final")
    servers.append(final)
    present = _check_store(shop.db, sent)
    for batch in sent:  # the backend did not know which got through: it sends them all again
        answer = final.post(batch.events)
        size = len(batch.events)
        if batch.acknowledged or present[batch.name]:
            assert answer == {"accepted": 0, "duplicates": size, "rejected": []}, batch.name
        else:
            assert answer == {"accepted": size, "duplicates": 0, "rejected": []}, batch.name
    final.kill()
    for batch in sent:
        batch.acknowledged = True  # by now every batch has had its 200
    _check_store(shop.db, sent)
