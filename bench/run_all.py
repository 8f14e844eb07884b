"""Run every benchmark in bench/, print each one's table, and write them all to BENCHMARKS.md.

    make bench                                   # = .venv/bin/python bench/run_all.py (an hour or more)
    .venv/bin/python bench/run_all.py --quick    # smaller sizes and fewer runs (about 15-25 minutes)
    .venv/bin/python bench/run_all.py --only ingest recommend   # some areas; other sections are kept

Each script runs in its own process (its output streams to the terminal as it goes) with the
arguments of the area below; ``--quick`` swaps in the short arguments. Scripts in bench/ that
this file does not know yet run with their own defaults in the full run, so a new benchmark is
never silently left out. BENCHMARKS.md gets one section per area, with the exact command, the
date, and the script's whole output (tables, machine line and load averages): a section of an
area not run this time is kept as it was.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import load_line, machine_line

__all__ = ["Area", "AREAS", "render_section", "merge_sections"]

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
REPORT = ROOT / "BENCHMARKS.md"


@dataclass(frozen=True)
class Area:
    """One benchmark script with its full and quick arguments (quick None: full run only)."""

    key: str
    title: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...] | None


AREAS: tuple[Area, ...] = (
    Area("ingest", "Ingest and profile build vs pandas", "ingest_profiles.py",
         ("--sizes", "1000000", "10000000", "--repeat", "3"),
         ("--sizes", "1000000", "--repeat", "3", "--pandas-repeat", "2")),
    Area("training", "Training time (Beauty, Online Retail)", "train_time.py",
         ("--datasets", "beauty", "online-retail", "--configs", "quick", "full", "--repeat", "3"),
         ("--datasets", "beauty", "online-retail", "--configs", "quick", "--repeat", "1")),
    Area("recommend", "Recommend + explain for one customer, in process", "recommend_explain.py",
         ("--datasets", "beauty", "online-retail", "--kind", "full", "--customers", "300"),
         ("--datasets", "beauty", "online-retail", "--kind", "quick", "--customers", "100",
          "--full-customers", "20")),
    Area("load", "API and lookup page under load (loopback)", "api_load.py",
         ("--datasets", "beauty", "--kind", "full", "--requests", "200", "--repeat", "3"),
         ("--datasets", "beauty", "--kind", "quick", "--requests", "64", "--repeat", "1")),
    Area("lookup", "Lookup page latency on the demo shop (in process)", "lookup_latency.py", (),
         ("--customers", "20", "--explain", "2")),
    Area("faithfulness", "Explanation faithfulness", "explain_faithfulness.py", (), None),
    Area("engine", "Engine quality and training on every dataset", "train_engine.py", (), None),
    Area("attention", "Attention network on Amazon Beauty", "attention_beauty.py", (), None),
)


def discovered_areas() -> list[Area]:
    """The known areas whose script exists, then any other bench/*.py script (its defaults)."""
    known = {area.script for area in AREAS}
    areas = [area for area in AREAS if (BENCH / area.script).exists()]
    for path in sorted(BENCH.glob("*.py")):
        if path.name not in known and not path.name.startswith("_") and path.name != Path(__file__).name:
            areas.append(Area(path.stem, f"{path.stem} (bench/{path.name})", path.name, (), None))
    return areas


def command(area: Area, quick: bool, workdir: Path | None) -> list[str]:
    args = list(area.quick if quick and area.quick is not None else area.full)
    if workdir is not None and area.script in _TAKES_WORKDIR:
        args += ["--workdir", str(workdir)]
    return [".venv/bin/python", f"bench/{area.script}", *args]


_TAKES_WORKDIR = {"ingest_profiles.py", "train_time.py", "recommend_explain.py", "api_load.py", "train_engine.py"}


def run(area: Area, argv: list[str], timeout: float | None) -> tuple[int, str, float]:
    """Run one script from the project root, echoing its output; (exit code, output, seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, *argv[1:]], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1, env=_environment())
    lines: list[str] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
        if deadline is not None and time.monotonic() > deadline:
            process.kill()
            lines.append(f"(stopped after the {timeout:.0f} s time limit)\n")
            break
    code = process.wait()
    return code, "".join(lines), time.perf_counter() - started


def _environment() -> dict[str, str]:
    """The environment, plus the demo's .env.local (``make run`` writes it) for what it does not set:
    the benchmarks that read the demo shop need its RECSIGHT_SECRET."""
    env = dict(os.environ)
    local = ROOT / ".env.local"
    if local.exists():
        for line in local.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.strip().partition("=")
            if sep and name and not name.startswith("#"):
                env.setdefault(name, value)
    return env


def render_section(area: Area, argv: list[str], code: int, output: str, seconds: float) -> str:
    """The BENCHMARKS.md section of one area: heading, command, date, and the output (or why not)."""
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    head = [f"<!-- bench:{area.key} -->", f"## {area.title}", "",
            f"`{' '.join(argv)}` — run {when}, {seconds / 60:.1f} min", ""]
    # Python warnings and progress bars are not results; tracebacks of a failure are kept.
    kept = [line for line in output.splitlines()
            if not re.match(r"^\s*warnings\.warn|^.*Warning: ", line) and "\u2595" not in line]  # DuckDB progress bars
    if code != 0:
        tail = "\n".join(kept[-15:])
        head += [f"**Not measured** (exit code {code}); the end of its output:", "", "```", tail, "```"]
    else:
        head += ["```", "\n".join(kept).strip(), "```"]
    return "\n".join(head + [f"<!-- /bench:{area.key} -->", ""])


def merge_sections(existing: str, sections: dict[str, str], order: list[str], preamble: str) -> str:
    """The report: ``preamble``, then every area in ``order``, new sections replacing old ones."""
    bodies = {m.group(1): m.group(0) for m in _SECTION.finditer(existing)}
    bodies.update(sections)
    keys = [k for k in order if k in bodies] + [k for k in bodies if k not in order]
    return preamble + "\n" + "\n".join(bodies[k].rstrip("\n") + "\n" for k in keys)


_SECTION = re.compile(r"<!-- bench:([\w-]+) -->.*?<!-- /bench:\1 -->\n?", re.S)


PREAMBLE = """# Benchmarks

Produced by `make bench` (`.venv/bin/python bench/run_all.py`, an hour or more) or, shorter,
`.venv/bin/python bench/run_all.py --quick`; one area: `--only ingest|training|recommend|load|...`.
Each section below is one script's output as it printed it, with the exact command and date.
Every figure is the median of several runs with min and max unless a section says otherwise
(a full training run is one run: minutes each).

The machine is **shared**: 2 cores and about 23 GiB of RAM that several agents and their test
suites use at the same time, so wall times swing with the load average printed beside every
table (a load of 4 on 2 cores means each job gets about half a core). CPU seconds, printed where
the script can measure them, are the steadier figure. Peak memory is each measured process's
own peak resident set (VmHWM), interpreter and imports included.

Targets (issue 7): 10M-event profile build under 10 s and at least 5x faster than pandas;
recommend + explain median under 100 ms in process; the API at 8 concurrent clients with a 99th
percentile under 500 ms and zero errors.
"""


def main(argv: list[str] | None = None) -> int:
    areas = discovered_areas()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short arguments; areas without them are skipped")
    parser.add_argument("--only", nargs="+", metavar="AREA", choices=[a.key for a in areas],
                        help="run these areas only (others' sections in the report are kept)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the benchmarks keep data and models (default: each script's own)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per script before it is stopped")
    parser.add_argument("--report", type=Path, default=REPORT, help="the Markdown file to update")
    parser.add_argument("--no-report", action="store_true", help="print only")
    args = parser.parse_args(argv)

    chosen = [a for a in areas if (args.only is None or a.key in args.only)]
    if args.quick:
        skipped = [a.key for a in chosen if a.quick is None]
        chosen = [a for a in chosen if a.quick is not None]
        if skipped:
            print(f"--quick skips {', '.join(skipped)} (full run only)")
    print(f"machine: {machine_line()}")
    print(f"load average at the start: {load_line()}")
    sections: dict[str, str] = {}
    failed = []
    for area in chosen:
        argv_ = command(area, args.quick, args.workdir)
        print(f"\n=== {area.title}: {' '.join(argv_)}", flush=True)
        code, output, seconds = run(area, argv_, args.timeout)
        if code != 0:
            failed.append(area.key)
        sections[area.key] = render_section(area, argv_, code, output, seconds)
        if not args.no_report:  # after every area, so a long run that is stopped keeps what it measured
            existing = args.report.read_text(encoding="utf-8") if args.report.exists() else ""
            text = merge_sections(existing, sections, [a.key for a in areas], _preamble(existing))
            tmp = args.report.with_name(args.report.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(args.report)
    print(f"\nload average at the end: {load_line()}")
    if failed:
        print(f"failed: {', '.join(failed)} (see their sections)")
    return 1 if failed else 0


def _preamble(existing: str) -> str:
    """The file's text before its first section (hand-written notes are kept), else the default."""
    head = existing.split("<!-- bench:", 1)[0].rstrip()
    return (head if head else PREAMBLE.rstrip()) + "\n"


if __name__ == "__main__":
    sys.exit(main())
