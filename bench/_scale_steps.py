"""The steps of ``bench/scale.py`` that run Python of their own: the children (profiles,
candidates, ranker), the server step, and the paths of one size's shop.

The children run as ``bench/scale.py --child STEP DB`` so that each is a process of its own (its
peak memory is its own) and print one JSON line of their timings on stdout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from bench._common import load_line

__all__ = ["ROOT", "SECRET", "SIZES", "MEMORY_ENV", "Shop", "kill_group", "py", "serve_step", "CHILDREN"]

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"
# size -> (users, items): about 78 events per user with the generator's default mix (90 days).
SIZES = {"smoke": (1_000, 300), "1m": (13_000, 4_000), "10m": (130_000, 20_000), "50m": (650_000, 60_000)}
CANDIDATE_USERS = 4000  # one precompute batch (models.precompute._PRECOMPUTE_CHUNK)


def kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)  # the step's own process group (start_new_session)


class Shop:
    """The paths of one size's shop inside the workdir."""

    def __init__(self, workdir: Path, size: str) -> None:
        self.size = size
        self.folder = workdir / size
        self.data = self.folder / "shop"
        self.db = self.folder / "shop.duckdb"
        self.state = self.folder / "state"

    def models(self, kind: str) -> Path:
        return self.folder / f"models-{kind}"

    def counts(self) -> dict[str, int]:
        """Events, users and items as the Parquet files hold them (read from their footers)."""
        import pyarrow.parquet as pq

        return {name: pq.read_metadata(self.data / f"{name}.parquet").num_rows
                for name in ("events", "users", "items") if (self.data / f"{name}.parquet").exists()}


def py(*args: str) -> list[str]:
    return [sys.executable, *args]


def serve_step(shop: Shop, kind: str, timeout_s: float) -> dict[str, Any]:
    """``cli.py serve`` for the ``kind`` models: time to healthy, one API request, then its memory."""
    import duckdb

    from bench.api_load import _free_port, _request
    from service.users import SUPPORT, add_user

    shop.state.mkdir(parents=True, exist_ok=True)
    users_file = shop.state / f"users-{kind}.json"
    users_file.unlink(missing_ok=True)
    password = "bench-" + os.urandom(8).hex()
    add_user(users_file, "bench-support", SUPPORT, password)
    con = duckdb.connect(str(shop.db), read_only=True)
    user = con.execute("SELECT user_id FROM events ORDER BY user_id LIMIT 1").fetchone()[0]
    con.close()
    port = _free_port()
    env = dict(os.environ, RECSIGHT_SECRET=SECRET, RECSIGHT_USERS=str(users_file), PYTHONPATH=str(ROOT),
               RECSIGHT_AUDIT_DB=str(shop.state / f"audit-{kind}.duckdb"))
    log = (shop.folder / f"serve-{kind}.err").open("w")
    started = time.perf_counter()
    proc = subprocess.Popen(py(str(ROOT / "cli.py"), "serve", "--db", str(shop.db), "--models",
                                str(shop.models(kind)), "--host", "127.0.0.1", "--port", str(port)),
                            cwd=shop.state, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    result: dict[str, Any] = {"status": "ok"}
    try:
        result["start_s"] = _wait_healthy(proc, port, timeout_s, _request)
        result["after_start_mib"] = _status_mib(proc.pid, "VmRSS")
        cookies = _sign_in(port, password, _request)
        t0 = time.perf_counter()
        status, body, _ = _request(port, "GET", f"/api/v1/users/{user}/recommendations?k=10", None, cookies)
        result["request_s"] = round(time.perf_counter() - t0, 2)
        if status != 200 or not json.loads(body).get("items"):
            result["status"] = f"request answered HTTP {status}"
        result["rss_mib"], result["peak_mib"] = _status_mib(proc.pid, "VmRSS"), _status_mib(proc.pid, "VmHWM")
    except RuntimeError as exc:
        result["status"] = str(exc)
        result["peak_mib"] = _status_mib(proc.pid, "VmHWM")
    finally:
        kill_group(proc.pid)
        proc.wait()
        log.close()
    result.update(wall_s=round(time.perf_counter() - started, 2), load=load_line())
    return result


def _wait_healthy(proc: subprocess.Popen, port: int, timeout_s: float, request) -> float:
    started = time.perf_counter()
    while True:
        try:
            if request(port, "GET", "/health")[0] == 200:
                return round(time.perf_counter() - started, 2)
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before answering")
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"the server did not answer /health in {timeout_s:.0f} s")
        time.sleep(0.5)


def _sign_in(port: int, password: str, request) -> str:
    import urllib.parse

    status, body, cookies = request(port, "GET", "/login")
    token = re.search(r'name="csrf" value="([^"]+)"', body.decode())
    if status != 200 or not token:
        raise RuntimeError("the sign-in page has no form token")
    form = urllib.parse.urlencode({"name": "bench-support", "password": password, "csrf": token.group(1)})
    status, _, cookies = request(port, "POST", "/login", form.encode(), cookies,
                                 {"Content-Type": "application/x-www-form-urlencoded"})
    if status != 302:
        raise RuntimeError(f"sign-in failed with HTTP {status}")
    return cookies


def _status_mib(pid: int, key: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- child steps (--child)


MEMORY_ENV = "SCALE_DUCKDB_MEMORY_LIMIT"  # bench/scale.py --duckdb-memory-limit, for the children


def _limited(con):
    """``con`` with DuckDB's memory_limit (and a temp_directory beside the working folder, where it
    spills) when the bench was given one; DuckDB's default is 80 % of the machine's RAM."""
    limit = os.environ.get(MEMORY_ENV)
    if limit:
        con.execute(f"SET memory_limit = '{limit}'")
        con.execute(f"SET temp_directory = '{Path.cwd() / 'duckdb-spill'}'")
    return con


def child_profiles(db: str) -> dict[str, Any]:
    """Rebuild the profile tables of ``db`` as ingest does (one transaction, then a checkpoint)."""
    import duckdb

    from analytics.profile_build import build_profiles

    con = _limited(duckdb.connect(db))
    con.execute("SET TimeZone = 'UTC'")
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    build_profiles(con)
    con.execute("COMMIT")
    built = time.perf_counter() - started
    con.execute("CHECKPOINT")
    con.close()
    return {"build_s": round(built, 2), "with_checkpoint_s": round(time.perf_counter() - started, 2)}


def child_candidates(db: str) -> dict[str, Any]:
    """The candidate index over every event, then the candidates of one precompute batch."""
    from analytics import schema as s
    from analytics.db import connect_read_only
    from models.candidates import build_index, generate
    from models.config import EngineConfig

    con = _limited(connect_read_only(db))
    config = EngineConfig().candidates
    started = time.perf_counter()
    index = build_index(con, s.EVENTS, config, "bx")
    built = time.perf_counter()
    con.execute(f"CREATE TEMP TABLE bu AS SELECT DISTINCT {s.USER_ID} FROM {s.EVENTS} "
                f"ORDER BY {s.USER_ID} LIMIT {CANDIDATE_USERS}")
    out = generate(con, index, s.EVENTS, "bu", "bc")
    rows = con.execute(f"SELECT count(*) FROM {out}").fetchone()[0]
    users = con.execute("SELECT count(*) FROM bu").fetchone()[0]
    done = time.perf_counter()
    con.close()
    return {"index_s": round(built - started, 2), "generate_s": round(done - built, 2),
            "users": users, "rows": rows}




def child_ranker(db: str) -> dict[str, Any]:
    """The ranker alone, as ``train --quick`` fits it (split, candidate and feature tables of the
    training window, LambdaRank without the attention feature): the part of training that does
    not depend on the attention network, which dominates training time."""
    from analytics import schema as s
    from analytics.db import connect_read_only
    from models.batch import feature_frame, prepare_history
    from models.config import QUICK
    from models.features import feature_names
    from models.ranker import train_ranker
    from models.splits import TEMPORAL, detect_protocol, make_split

    con = _limited(connect_read_only(db))
    t0 = time.perf_counter()
    split = make_split(con, detect_protocol(con))
    t1 = time.perf_counter()
    tables = prepare_history(con, split.train.history, split.train.as_of, QUICK, "tr")
    con.execute(f"CREATE OR REPLACE TEMP TABLE tr_users AS SELECT DISTINCT {s.USER_ID} FROM {split.train.labels}")
    frame = feature_frame(con, tables, "tr_users", "tr", labels=split.train.labels)
    t2 = time.perf_counter()
    ranker = train_ranker(frame, feature_names(split.protocol == TEMPORAL, with_attention=False), QUICK.ranker)
    t3 = time.perf_counter()
    con.close()
    return {"split_s": round(t1 - t0, 2), "features_s": round(t2 - t1, 2), "fit_s": round(t3 - t2, 2),
            "rows": len(frame), "users": int(frame[s.USER_ID].nunique()), "trees": ranker.booster.num_trees(),
            "validation_ndcg": ranker.validation}


CHILDREN = {"profiles": child_profiles, "candidates": child_candidates, "ranker": child_ranker}
