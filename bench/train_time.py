"""Benchmark: training time per phase (attention network, rankers, whole pipeline) and peak memory.

    .venv/bin/python bench/train_time.py                                   # Beauty and Online Retail, quick and full
    .venv/bin/python bench/train_time.py --configs quick --repeat 1        # what `run_all.py --quick` runs
    .venv/bin/python bench/train_time.py --datasets beauty --threads 1     # one thread for torch and LightGBM

Each run is ``workflows.training.train_shop`` (what ``cli.py train`` runs) in a fresh child process, so
the peak resident memory is that run's own; the phase times are the ones training records in
the model's ``timings_s``. ``quick`` is ``train --quick`` (the demo), ``full`` the default
configuration. The datasets are read from ../shared/data and ingested once into --workdir
(``bench/train_engine.py``'s ``load``); the models written here are reused by
``bench/recommend_explain.py`` and ``bench/api_load.py``.

The machine is shared: every table is printed with the load average, and wall time is shown
beside the process's CPU time.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import resource
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import Timing, format_table, in_child, load_line, machine_line, progress_bar
from bench.train_engine import load

__all__ = ["CONFIGS", "DATASETS", "engine_config", "trained_models", "train_once"]

DATASETS = ("beauty", "online-retail", "synthetic")
CONFIGS = ("quick", "full")
DEFAULT_WORKDIR = Path("/tmp/recsight-bench")
PHASES = ("split", "attention", "training features", "rankers", "evaluation", "serving tables")


def engine_config(kind: str, threads: int | None = None):
    """The engine configuration ``kind`` ('quick' or 'full'), optionally with another thread count."""
    from models.config import QUICK, EngineConfig

    config = QUICK if kind == "quick" else EngineConfig()
    if threads:
        config = dataclasses.replace(
            config, ranker=dataclasses.replace(config.ranker, threads=threads),
            attention=dataclasses.replace(config.attention, threads=threads))
    return config


def models_dir(workdir: Path, dataset: str, kind: str, threads: int | None = None) -> Path:
    return workdir / (f"{dataset}-models-{kind}" + (f"-t{threads}" if threads else ""))


def train_once(db: str, models: str, kind: str, threads: int | None) -> dict:
    """One training run (in a child process): the pipeline's phase times, wall and CPU seconds."""
    from workflows.training import train_shop

    logging.basicConfig(level=logging.WARNING)
    config = engine_config(kind, threads)
    started, cpu0 = time.perf_counter(), _cpu_seconds()
    with progress_bar(f"train {Path(db).stem} {kind}") as progress:
        summary = train_shop(Path(db), Path(models), config=config, progress=progress)
    return {"timings": summary["timings_s"], "wall": time.perf_counter() - started, "cpu": _cpu_seconds() - cpu0}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def trained_models(dataset: str, workdir: Path, kind: str = "quick", synth_users: int = 5000,
                   threads: int | None = None) -> tuple[Path, Path]:
    """(database, models folder) of ``dataset``, ingesting and training once if not there yet."""
    from models import registry

    db = load(dataset, workdir, synth_users)
    models = models_dir(workdir, dataset, kind, threads)
    if registry.current(models) is None:
        in_child(train_once, str(db), str(models), kind, threads)
    return db, models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["beauty", "online-retail"], choices=DATASETS)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--repeat", type=int, default=3, help="runs per quick configuration (median/min/max)")
    parser.add_argument("--full-repeat", type=int, default=1, help="runs per full configuration (minutes each)")
    parser.add_argument("--threads", type=int, default=None, help="torch and LightGBM threads (default: configured)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--synth-users", type=int, default=5000)
    args = parser.parse_args(argv)

    print(f"machine: {machine_line()}")
    print(f"load average at the start: {load_line()}")
    print(f"threads: {args.threads or 'as configured (2 for torch and LightGBM)'}; one child process per run")
    rows = []
    for dataset in args.datasets:
        started = time.perf_counter()
        db = load(dataset, args.workdir, args.synth_users)
        print(f"\n{dataset}: {db} ready in {time.perf_counter() - started:.1f} s (ingested once, reused)")
        for kind in args.configs:
            repeat = args.repeat if kind == "quick" else args.full_repeat
            runs, peaks = [], []
            for i in range(max(1, repeat)):
                models = models_dir(args.workdir, dataset, kind, args.threads)
                result, peak = in_child(train_once, str(db), str(models), kind, args.threads)
                runs.append(result)
                peaks.append(peak)
                phases = ", ".join(f"{p} {result['timings'].get(p, float('nan')):.1f}" for p in PHASES)
                print(f"  {kind} run {i + 1}: {result['wall']:.1f} s wall, {result['cpu']:.1f} s CPU, "
                      f"peak RSS {peak:,.0f} MiB ({phases}); load {load_line()}", flush=True)

            def timing(key: str, runs: list[dict] = runs) -> Timing:
                return Timing(tuple(r["timings"].get(key, float("nan")) for r in runs))

            whole = Timing(tuple(r["wall"] for r in runs), tuple(r["cpu"] for r in runs))
            rows.append([f"{dataset} {kind}", _cell(timing("attention")), _cell(timing("rankers")),
                         _cell(timing("training features")), _cell(timing("evaluation")), _cell(whole),
                         f"{whole.cpu_median:.1f}", f"{max(peaks):,.0f}", str(len(runs))])
    print()
    print(format_table(["dataset config", "attention s", "rankers s", "features s", "evaluation s",
                        "whole pipeline s", "CPU s", "peak MiB", "runs"], rows))
    print("(median, with [min-max] over the runs; rankers = the ranker and the hybrid; "
          "whole = train_shop wall time incl. split, evaluation and serving tables)")
    print(f"load average at the end: {load_line()}")
    return 0


def _cell(t: Timing) -> str:
    if len(t.runs) == 1:
        return f"{t.runs[0]:.1f}"
    return f"{t.median:.1f} [{t.min:.1f}-{t.max:.1f}]"


if __name__ == "__main__":
    sys.exit(main())
