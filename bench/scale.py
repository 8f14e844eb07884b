"""Benchmark: the scale curve on this machine (issue 19): every batch step and serving, 1M to 50M events.

    .venv/bin/python bench/scale.py --workdir /tmp/scale                           # 1M, 10M, 50M, every step
    .venv/bin/python bench/scale.py --workdir /tmp/scale --sizes 1m 10m --skip-full
    .venv/bin/python bench/scale.py --workdir /tmp/scale --sizes 50m --steps synth ingest profiles candidates quick
    .venv/bin/python bench/scale.py --workdir /tmp/scale --sizes 10m --steps candidates --duckdb-memory-limit 8GB
    .venv/bin/python bench/scale.py --workdir /tmp/scale --report                 # the tables of what is stored

Two hours on the shared 2-core machine cover 1M (training included: ~45 minutes) and the batch
steps of 10M and 50M; ``--step-timeout`` stops a training that would take hours and records how
far it got (its last progress line).

For each size a synthetic shop (users and items growing with the events: ``SIZES``) goes through
the commands a shop runs, each one a separate child process, so its wall time, CPU seconds and
peak resident memory (``wait4``'s ``ru_maxrss``: the process and the children it waited for) are
its own:

- ``synth``: ``cli.py synth`` (the Parquet files);
- ``ingest``: ``cli.py ingest --format generic`` into a fresh DuckDB file (profiles included: ingest
  rebuilds them in its transaction);
- ``profiles``: ``analytics.profile_build.build_profiles`` again on the ingested file, alone (the
  share of ingest they take);
- ``candidates``: ``models.candidates.build_index`` over every event (co-visitation, popularity,
  attributes) and ``generate`` for one precompute batch of customers (4,000), full configuration;
- ``ranker``: the ranker alone as ``train --quick`` fits it (split, the training window's candidate
  and feature tables, LambdaRank without the attention feature), so that its cost is known where
  the attention network makes whole training runs too long to wait for;
- ``quick`` / ``full``: ``cli.py train --quick`` / ``cli.py train``; the phase times are the ones
  training stores (``timings_s``), the precompute of every customer's list read from the version's
  metadata (it runs inside training, so its peak memory is training's);
- ``serve-quick`` / ``serve-full``: ``cli.py serve`` on a free loopback port, a support user signed
  in, one ``GET /api/v1/users/<id>/recommendations`` answered, then the server's RSS and peak.

A step that fails (non-zero exit, killed, ``--step-timeout``, or the process tree's RSS above
``--max-rss-gb``, a guard so that one step cannot push the shared machine into the kernel's OOM
killer) is recorded with its reason, and the steps that need its output are skipped. Results go
to ``<workdir>/results.json`` after every step, so runs of different sizes add up and ``--report``
prints the tables again. Every child's output is in ``<workdir>/<size>/<step>.out|.err``.
The machine is shared: the load average is recorded beside each step. The table ends with a
PROJECTION to 1 billion events: per step, a line fitted in log-log through the sizes where it
succeeded (a projection, not a measurement). ``--duckdb-memory-limit`` sets DuckDB's memory_limit
(and a temp_directory to spill to) in the profiles/candidates/ranker children, stored as
``step@SIZE``; the ``cli.py`` steps keep the product's own settings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import format_table, load_line, machine_line
from bench._scale_steps import CHILDREN, MEMORY_ENV, ROOT, SECRET, SIZES, Shop, kill_group, py, serve_step

__all__ = ["STEPS", "run_step", "main"]

STEPS = ("synth", "ingest", "profiles", "candidates", "ranker", "quick", "serve-quick", "full", "serve-full")
NEEDS = {"ingest": "synth", "profiles": "ingest", "candidates": "ingest", "ranker": "ingest", "quick": "ingest",
         "full": "ingest", "serve-quick": "quick", "serve-full": "full"}
PHASES = ("split", "attention", "training features", "rankers", "evaluation", "serving tables",
          "serving precompute", "total")
_PAGE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- running one child


def _tree_rss_mib(root: int) -> float:
    """Resident memory of ``root`` and all its descendants now, in MiB (from /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        pid = int(entry.name)
        children[int(fields[1])].append(pid)
        rss[pid] = int(fields[21])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total * _PAGE / 2**20


def run_step(cmd: list[str], log_base: Path, timeout_s: float, max_rss_mib: float,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` as a child (its own process group), watching time and memory; never raises for
    the child's failure. Returns wall_s, cpu_s, peak_mib, status ("ok" or why not) and the paths
    of its stdout/stderr."""
    out_path, err_path = log_base.with_suffix(".out"), log_base.with_suffix(".err")
    with out_path.open("w") as out, err_path.open("w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=log_base.parent, start_new_session=True,
                                env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))
        reason, seen = None, 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            rss = _tree_rss_mib(proc.pid)
            seen = max(seen, rss)
            if reason is None and timeout_s and time.perf_counter() - started > timeout_s:
                reason = f"timeout after {timeout_s:.0f} s (--step-timeout)"
            elif reason is None and max_rss_mib and rss > max_rss_mib:
                reason = f"stopped at {rss / 1024:.1f} GiB RSS (--max-rss-gb {max_rss_mib / 1024:.0f})"
            if reason is not None:
                kill_group(proc.pid)
            time.sleep(0.5)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if reason is None and proc.returncode != 0:
        reason = _failure(proc.returncode, err_path)
    elif reason is not None and reason.startswith("timeout"):
        reason += f"; last progress: {_last_line(err_path)}"
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_mib": round(max(usage.ru_maxrss / 1024, seen), 1), "status": reason or "ok",
            "stdout": str(out_path), "stderr": str(err_path), "load": load_line()}


def _failure(code: int, err_path: Path) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the kernel's OOM killer?)" if code == -signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit {code}: {_last_line(err_path)}"


def _last_line(path: Path) -> str:
    """The error's own line when the child died of an exception, else its last line."""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b", ln)]
    return (errors or lines or ["no message"])[-1][:240]


# --------------------------------------------------------------------------- the steps


def step_command(step: str, shop: Shop, seed: int) -> list[str]:
    """The command line of a batch step (the serve steps are :func:`serve_step`)."""
    users, items = SIZES[shop.size]
    cli = str(ROOT / "cli.py")
    if step == "synth":
        return py(cli, "synth", "--out", str(shop.data), "--users", str(users), "--items", str(items),
                   "--days", "90", "--seed", str(seed))
    if step == "ingest":
        return py(cli, "-v", "ingest", "--db", str(shop.db), "--format", "generic", str(shop.data))
    if step in CHILDREN:
        return py(str(Path(__file__).resolve()), "--child", step, str(shop.db))
    if step in ("quick", "full"):
        return py(cli, "-v", "train", "--db", str(shop.db), "--models", str(shop.models(step)),
                   *(["--quick"] if step == "quick" else []))
    raise ValueError(step)


def prepare(step: str, shop: Shop) -> None:
    """Remove what a step writes, so that it runs from scratch (a fresh store, a fresh models folder)."""
    import shutil

    if step == "synth":
        shutil.rmtree(shop.data, ignore_errors=True)
    elif step == "ingest":
        for path in (shop.db, Path(f"{shop.db}.wal")):
            path.unlink(missing_ok=True)
    elif step in ("quick", "full"):
        shutil.rmtree(shop.models(step), ignore_errors=True)


def details(step: str, shop: Shop, result: dict[str, Any]) -> dict[str, Any]:
    """What a finished step printed that the tables show: training phases, candidate timings."""
    text = Path(result["stdout"]).read_text(errors="replace")
    if step in CHILDREN and text.strip():
        return json.loads(text.strip().splitlines()[-1])
    if step in ("quick", "full"):
        from models import registry

        meta = registry.metadata(shop.models(step))
        return {"timings_s": meta.get("timings_s", {}), "top_items": meta.get("top_items", {}),
                "served": meta.get("served", {}).get("model"),
                "ndcg@10": json.loads(text).get("ndcg@10") if text.strip().startswith("{") else None}
    return {}


# --------------------------------------------------------------------------- tables


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def step_note(step: str, r: dict[str, Any]) -> str:
    if r["status"] != "ok":
        return r["status"]
    d = r.get("details", {})
    if step == "profiles":
        return f"build {d.get('build_s')} s (+ checkpoint: {d.get('with_checkpoint_s')} s)"
    if step == "candidates":
        return (f"index {d.get('index_s')} s; {d.get('users'):,} customers' candidates "
                f"{d.get('generate_s')} s ({d.get('rows', 0):,} rows)")
    if step == "ranker":
        return (f"split {d.get('split_s')} s, features {d.get('features_s')} s ({d.get('rows', 0):,} rows, "
                f"{d.get('users', 0):,} customers), fit {d.get('fit_s')} s ({d.get('trees')} trees)")
    if step in ("quick", "full"):
        t = d.get("timings_s", {})
        return (f"precompute {t.get('serving precompute', '-')} s for "
                f"{d.get('top_items', {}).get('customers', 0):,} customers (from the metadata)")
    if step.startswith("serve"):
        return (f"healthy after {r.get('start_s')} s, RSS {_mib(r.get('after_start_mib'))} MiB; 1st request "
                f"{r.get('request_s')} s, RSS after it {_mib(r.get('rss_mib'))} MiB")
    return ""


def report(results: dict[str, Any]) -> str:
    """The step table and the training-phase table of every stored result."""
    rows, phases = [], []
    for size in SIZES:
        if size not in results:
            continue
        entry = results[size]
        c = entry.get("counts", {})
        for key, r in entry.get("steps", {}).items():
            step = key.split("@")[0]
            rows.append([size, f"{c.get('events', 0):,}", f"{c.get('users', 0):,}", f"{c.get('items', 0):,}", key,
                         _secs(r.get("wall_s")), _secs(r.get("cpu_s")), _mib(r.get("peak_mib")), r.get("load", ""),
                         step_note(step, r)])
            if step in ("quick", "full") and r["status"] == "ok":
                t = r["details"]["timings_s"]
                other = t.get("total", 0) - sum(t.get(p, 0) for p in PHASES if p != "total")
                phases.append([f"{size} {step}", *(_secs(t.get(p)) for p in PHASES), _secs(other)])
    text = format_table(["size", "events", "users", "items", "step", "wall s", "CPU s", "peak MiB", "load after",
                         "notes"], rows)
    if phases:
        text += "\n\ntraining phases (s, from timings_s):\n" + format_table(
            ["size config", *PHASES, "other"], phases)
        text += "\n(other = total minus the phases: saving the models, global importance, search index)"
    return text + "\n\n" + projection(results)


def _fit(points: list[tuple[float, float]], at: float) -> tuple[float, float] | None:
    """Least-squares line through (log events, log value); returns (slope, value at ``at``)."""
    import numpy as np

    if len({x for x, _ in points}) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(np.exp(intercept + slope * np.log(at)))


def projection(results: dict[str, Any], at: float = 1e9) -> str:
    """PROJECTED wall time and peak memory per step at ``at`` events: a line fitted in log-log
    through the sizes where the step succeeded (an exponent near 1 is linear growth)."""
    rows = []
    for step in STEPS:
        walls, peaks = [], []
        for size in SIZES:
            r = results.get(size, {}).get("steps", {}).get(step)
            events = results.get(size, {}).get("counts", {}).get("events")
            if r and r.get("status") == "ok" and events and r.get("wall_s") and r.get("peak_mib"):
                walls.append((events, r["wall_s"]))
                peaks.append((events, r["peak_mib"]))
        wall, peak = _fit(walls, at), _fit(peaks, at)
        if wall and peak:
            rows.append([step, str(len(walls)), f"{wall[0]:.2f}", f"{wall[1] / 3600:,.1f}", f"{peak[0]:.2f}",
                         f"{peak[1] / 1024:,.0f}"])
    if not rows:
        return "(no step succeeded at two sizes: nothing to project)"
    return (f"PROJECTED to {at:,.0f} events (log-log line through the measured sizes, per step):\n"
            + format_table(["step", "points", "time exponent", "wall h", "memory exponent", "peak GiB"], rows))


# --------------------------------------------------------------------------- driver


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(path: Path, results: dict[str, Any], size: str) -> None:
    """Store ``size``'s entry, keeping what other runs stored meanwhile for other sizes."""
    merged = _load(path)
    merged.setdefault("_machine", results.get("_machine"))
    merged[size] = results[size]
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(merged, indent=2, default=str))
    os.replace(tmp, path)


def run_size(size: str, steps: list[str], args: argparse.Namespace, results: dict[str, Any], store: Path) -> None:
    """Every chosen step of one size, in order, each result stored as soon as it is known."""
    shop = Shop(args.workdir, size)
    shop.folder.mkdir(parents=True, exist_ok=True)
    entry = results.setdefault(size, {"steps": {}})
    limit = args.max_rss_gb * 1024
    for step in steps:
        need = NEEDS.get(step)
        prior = entry["steps"].get(need) if need else None
        if need and (prior is None or prior["status"] != "ok"):
            why = "did not run" if prior is None else "failed"
            print(f"[{size}] {step}: skipped ({need} {why})", flush=True)
            entry["steps"][step] = {"status": f"not run: {need} {why}"}
            continue
        print(f"[{size}] {step}: started {time.strftime('%H:%M:%S')}, load {load_line()}", flush=True)
        if step.startswith("serve"):
            result = serve_step(shop, step.removeprefix("serve-"), args.step_timeout)
        else:
            prepare(step, shop)
            result = run_step(step_command(step, shop, args.seed), shop.folder / step, args.step_timeout, limit,
                              env_of(step, args))
            if result["status"] == "ok":
                try:
                    result["details"] = details(step, shop, result)
                except (OSError, ValueError, KeyError) as exc:
                    result["details"] = {"error": f"{type(exc).__name__}: {exc}"}
        if step == "synth" or "counts" not in entry:
            entry["counts"] = shop.counts()
        key = f"{step}@{args.duckdb_memory_limit}" if MEMORY_ENV in env_of(step, args) else step
        entry["steps"][key] = result
        _save(store, results, size)
        print(f"[{size}] {step}: {result['status']}, {_secs(result.get('wall_s'))} s wall, "
              f"{_secs(result.get('cpu_s'))} s CPU, peak {_mib(result.get('peak_mib'))} MiB; {step_note(step, result)}",
              flush=True)


def env_of(step: str, args: argparse.Namespace) -> dict[str, str]:
    """What a step's child gets besides the environment: the secret, and the DuckDB memory limit
    (children only: the commands of cli.py keep the product's own settings)."""
    env = {"RECSIGHT_SECRET": SECRET}
    if args.duckdb_memory_limit and step in CHILDREN:
        env[MEMORY_ENV] = args.duckdb_memory_limit
    return env


def _child(step: str, db: str) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    print(json.dumps(CHILDREN[step](db)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1m", "10m", "50m"], choices=list(SIZES))
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--skip-full", action="store_true", help="leave out full training and its server")
    parser.add_argument("--step-timeout", type=float, default=3 * 3600, help="seconds per step before it is stopped")
    parser.add_argument("--max-rss-gb", type=float, default=18.0,
                        help="stop a step whose process tree holds more (GiB); 0: no guard")
    parser.add_argument("--duckdb-memory-limit", default=None, metavar="SIZE",
                        help="DuckDB memory_limit for the profiles/candidates/ranker children, e.g. 8GB "
                             "(stored as step@SIZE); default: DuckDB's own (80%% of RAM)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recsight-scale"))
    parser.add_argument("--report", action="store_true", help="print the tables of the stored results and exit")
    parser.add_argument("--child", nargs=2, metavar=("STEP", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(*args.child)

    args.workdir.mkdir(parents=True, exist_ok=True)
    store = args.workdir / "results.json"
    results = _load(store)
    if not args.report:
        steps = [s for s in args.steps if not (args.skip_full and s in ("full", "serve-full"))]
        print(f"machine: {machine_line()}")
        print(f"load average at the start: {load_line()}; sizes {' '.join(args.sizes)}; steps {' '.join(steps)}")
        print(f"guards: {args.step_timeout:.0f} s per step, {args.max_rss_gb:g} GiB RSS per step tree", flush=True)
        results.setdefault("_machine", machine_line())
        for size in args.sizes:
            run_size(size, steps, args, results, store)
        print(f"load average at the end: {load_line()}\n")
    print(f"machine: {results.get('_machine', machine_line())}")
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
