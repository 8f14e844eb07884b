"""progress.py and the long commands that report through it.

* the renderer: plain lines (quiet start, phase/count/time-left lines, one per interval, a line
  per finished phase), a bar on a terminal, and the silent default that library code gets;
* the library passes its phases and counts (training with the attention network's batches, the
  rankers' boosting rounds and the precomputed customers), and says nothing unless given a reporter;
* the command line with stderr not a terminal: phase lines on stderr, the summary on stdout as
  before (``--quiet`` or not), a quick failure still one ``error:`` line; for ``ingest``,
  ``ingest --append``, ``compact``, ``train`` and ``evaluate``.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

import cli
import progress
from progress import SILENT, TerminalProgress, duration

LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<label>\w+): (?P<phase>.+): (?P<text>[^:]+)$")  # texts hold no colon


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A Progress that keeps what it heard: [name, total, unit, units advanced] per phase."""

    def __init__(self) -> None:
        self.phases: list[list] = []

    def phase(self, name: str, total: int | None = None, unit: str = "") -> None:
        self.phases.append([name, total, unit, 0])

    def advance(self, n: int = 1) -> None:
        assert self.phases, "advance before any phase"
        self.phases[-1][3] += n

    def names(self) -> list[str]:
        return [name for name, *_ in self.phases]


def _lines_reporter(stream: io.StringIO, clock: FakeClock, delay: float = 0.0) -> TerminalProgress:
    return TerminalProgress("train", stream, bar=False, delay=delay, interval=10.0, tick=None, clock=clock)


def _parsed(text: str) -> list[tuple[str, str]]:
    lines = text.splitlines()
    assert all(LINE.match(line) for line in lines), text
    return [(LINE.match(line)["phase"], LINE.match(line)["text"]) for line in lines]


# --------------------------------------------------------------------------- the renderer


def test_the_silent_default_says_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    SILENT.phase("split")
    SILENT.phase("attention network", total=10, unit="batches")
    SILENT.advance(3)
    assert capsys.readouterr() == ("", "")


def test_plain_lines_name_the_phase_its_count_and_the_time_left() -> None:
    out, clock = io.StringIO(), FakeClock()
    with _lines_reporter(out, clock) as reporter:
        reporter.phase("split")
        clock.now += 0.4
        reporter.phase("attention network, epoch 1 of 2", total=100, unit="batches")
        clock.now += 5
        reporter.advance(10)  # within the interval: no line yet
        assert _parsed(out.getvalue()) == [("split", "done in 0.4 s")]
        clock.now += 7
        reporter.advance(20)
        clock.now += 1
        reporter.advance(5)  # the next line is an interval after the last one
        reporter.phase("rankers")
        clock.now += 2
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert _parsed(out.getvalue()) == [
        ("split", "done in 0.4 s"),
        ("attention network, epoch 1 of 2", "30/100 batches (30%), 12 s elapsed, about 28 s left"),
        ("attention network, epoch 1 of 2", "done in 13 s (35 batches)"),
        ("rankers", "done in 2.0 s"),
    ]


def test_a_phase_that_blocks_gets_a_status_line_per_interval() -> None:
    out, clock = io.StringIO(), FakeClock()
    reporter = _lines_reporter(out, clock)
    reporter.phase("evaluation: features")
    for _ in range(25):  # what the background ticker does while DuckDB works
        clock.now += 1
        reporter.tick()
    reporter.close()
    assert _parsed(out.getvalue()) == [
        ("evaluation: features", "10 s elapsed"),
        ("evaluation: features", "20 s elapsed"),
        ("evaluation: features", "done in 25 s"),
    ]


def test_the_time_left_waits_for_a_few_units() -> None:
    out, clock = io.StringIO(), FakeClock()
    reporter = _lines_reporter(out, clock)
    reporter.phase("precompute", total=1000, unit="customers")
    clock.now += 20
    reporter.advance(2)
    clock.now += 20
    reporter.advance(1)
    reporter.close()
    (_, first), (_, second), _ = _parsed(out.getvalue())
    assert first == "2/1,000 customers (0%), 20 s elapsed"
    assert second == "3/1,000 customers (0%), 40 s elapsed, about 3h41m left"


def test_a_quick_command_writes_nothing_and_a_long_one_catches_up() -> None:
    out, clock = io.StringIO(), FakeClock()
    quick = _lines_reporter(out, clock, delay=10)
    quick.phase("files", total=1, unit="files")
    clock.now += 2
    quick.advance()
    quick.phase("profiles")
    clock.now += 1
    quick.close()
    assert out.getvalue() == ""  # stderr as it was: scripts and tests read its one error line

    failed = _lines_reporter(out, clock, delay=10)
    failed.phase("files", total=1, unit="files")
    failed.close(failed=True)
    assert out.getvalue() == ""

    slow = _lines_reporter(out, clock, delay=10)
    slow.phase("split")
    clock.now += 3
    slow.phase("attention network, epoch 1 of 1", total=50, unit="batches")
    clock.now += 8
    slow.advance(20)  # 11 s in: the held line, then where it is now
    clock.now += 1
    slow.close(failed=True)
    assert _parsed(out.getvalue()) == [
        ("split", "done in 3.0 s"),
        ("attention network, epoch 1 of 1", "20/50 batches (40%), 8.0 s elapsed, about 12 s left"),
        ("attention network, epoch 1 of 1", "stopped after 9.0 s"),
    ]


def test_a_terminal_gets_one_redrawn_bar_line_per_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the bar is cut to the terminal's width
    out, clock = io.StringIO(), FakeClock()
    reporter = TerminalProgress("train", out, bar=True, tick=None, clock=clock)
    assert reporter.bar
    reporter.phase("precompute: ranking every customer", total=10, unit="customers")
    clock.now += 4
    reporter.advance(5)
    drawn = out.getvalue()
    assert "\n" not in drawn  # one line, redrawn in place
    assert drawn.count("\r") == 2 and drawn.endswith("\x1b[K")
    last = drawn.split("\r")[-1]
    assert last.startswith("train: precompute: ranking every customer |##########----------| 5/10 customers (50%)")
    assert "4.0 s elapsed, about 4.0 s left" in last
    clock.now += 1
    reporter.tick()  # elapsed time moves while a phase blocks
    assert "5.0 s elapsed" in out.getvalue().split("\r")[-1]
    reporter.phase("saving")
    clock.now += 1
    reporter.close()
    finished = [part.removesuffix("\x1b[K") for part in out.getvalue().split("\n")]
    assert finished[0].split("\r")[-1] == "train: precompute: ranking every customer: done in 5.0 s (5 customers)"
    assert finished[1].split("\r")[-1] == "train: saving: done in 1.0 s"
    assert finished[2] == "" and not re.search(r"\d\d:\d\d:\d\d", out.getvalue())  # no log lines beside the bar


def test_a_log_record_does_not_land_on_the_bar_line() -> None:
    out, clock = io.StringIO(), FakeClock()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with TerminalProgress("train", out, bar=True, tick=None, clock=clock) as reporter:
            reporter.phase("split")
            logging.getLogger("recsight.test").warning("only 11 users purchase")
        logging.getLogger("recsight.test").warning("after")
    finally:
        root.removeHandler(handler)
    text = out.getvalue()
    assert "\r\x1b[Konly 11 users purchase\n" in text
    assert text.endswith("split: done in 0.0 s\x1b[K\nafter\n") and not handler.filters


def test_the_mode_follows_the_stream() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert TerminalProgress("x", Terminal(), tick=None).bar
    assert not TerminalProgress("x", io.StringIO(), tick=None).bar


@pytest.mark.parametrize(("seconds", "text"), [(0.42, "0.4 s"), (42.4, "42 s"), (187, "3m07s"), (3900, "1h05m")])
def test_durations_are_short(seconds: float, text: str) -> None:
    assert duration(seconds) == text


# --------------------------------------------------------------------------- the library and the CLI


@pytest.mark.slow
def test_training_reports_its_phases_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from models.training import train
    from tests.models.test_splits import build_shop
    from tests.training import FAST

    db = build_shop(tmp_path / "shop.duckdb")
    heard = Recorder()
    train(db, tmp_path / "models", config=FAST, progress=heard)
    names = heard.names()
    assert names[0] == "split" and names[-1] == "precompute: writing the lists"
    for expected in ("attention network, epoch 1 of 1", "ranker: training data", "ranker: boosting rounds",
                     "hybrid ranker: training data", "hybrid ranker: boosting rounds",
                     "evaluation: features", "serving tables", "saving the models",
                     "precompute: ranking every customer"):
        assert expected in names
    for name, total, unit, advanced in heard.phases:
        if unit == "rounds":  # up to max_rounds: early stopping may end them sooner
            assert total == FAST.ranker.max_rounds and 0 < advanced <= total, name
        elif total is not None:
            assert advanced == total > 0 and unit, name  # every counted phase runs to its total
    assert {unit for _, total, unit, _ in heard.phases if total} == {"batches", "rounds", "customers"}
    assert capsys.readouterr() == ("", "")  # a reporter of its own: the library wrote nothing itself


def _shop_files(folder: Path) -> Path:
    from analytics.synth import generate_shop

    generate_shop(folder, n_users=80, n_items=80, n_days=20, seed=3)
    return folder


def test_ingest_on_the_command_line_shows_phases_and_prints_the_same_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    files = _shop_files(tmp_path / "files")
    assert cli.main(["-q", "ingest", "--db", str(tmp_path / "quiet.duckdb"), "--format", "generic", str(files)]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""

    monkeypatch.setattr(progress, "LINE_DELAY_S", 0.0)  # no quiet start: this command is quick
    assert cli.main(["ingest", "--db", str(tmp_path / "shop.duckdb"), "--format", "generic", str(files)]) == 0
    shown = capsys.readouterr()
    phases = _parsed(shown.err)
    assert [phase for phase, _ in phases] == ["working copy of the store", "files", "profiles", "saving the store"]
    assert all(text.startswith("done in ") for _, text in phases)
    assert phases[1][1].endswith("(3 files)")

    def same(text: str) -> str:  # the summary but its seconds and its file name
        return re.sub(r"\(\d+\.\d s\)", "(s)", text).replace("quiet.duckdb", "shop.duckdb")

    assert same(shown.out) == same(quiet.out) and "new users: 80" in shown.out


def test_a_quick_failure_is_still_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "orders.csv"
    wrong.write_text("order,amount\n1,2\n")
    assert cli.main(["ingest", "--db", str(tmp_path / "shop.duckdb"), "--format", "online-retail", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.slow
def test_train_and_evaluate_on_the_command_line_show_phases_and_print_the_same_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import models.config
    from tests.models.test_splits import build_shop
    from tests.training import FAST
    from workflows.training import evaluate_shop, evaluation_text

    monkeypatch.setattr(progress, "LINE_DELAY_S", 0.0)
    monkeypatch.setattr(models.config, "QUICK", FAST)  # `train --quick`, cut down further for a test
    db, models = build_shop(tmp_path / "shop.duckdb"), tmp_path / "models"
    assert cli.main(["train", "--db", str(db), "--models", str(models), "--quick"]) == 0
    shown = capsys.readouterr()
    summary = json.loads(shown.out)  # stdout is the JSON summary alone, as before
    assert set(summary) == {"models", "protocol", "target", "timings_s", "candidates", "ndcg@10", "served"}
    phases = [phase for phase, _ in _parsed(shown.err)]
    for expected in ("split", "attention network, epoch 1 of 1", "ranker: boosting rounds", "evaluation: features",
                     "hybrid ranker: boosting rounds", "extra: global importance", "extra: search",
                     "search: the catalogue's index", "search: training queries",
                     "search ranker (personalised): boosting rounds", "search ranker (query only): boosting rounds",
                     "precompute: ranking every customer"):
        assert expected in phases
    assert any(re.fullmatch(r"done in .+ \(\d+ batches\)", text) for _, text in _parsed(shown.err))
    rounds = [text for phase, text in _parsed(shown.err) if phase.endswith("boosting rounds")]
    assert len(rounds) == 4 and all(re.fullmatch(r"done in .+ \(\d+ rounds\)", text) for text in rounds)

    assert cli.main(["evaluate", "--db", str(db), "--models", str(models)]) == 0
    shown = capsys.readouterr()
    assert shown.out == evaluation_text(evaluate_shop(db, models)) + "\n"
    assert [phase for phase, _ in _parsed(shown.err)][:3] == ["loading the models", "split", "evaluation: features"]


# --------------------------------------------------------------------------- the live intake's commands

EVENTS_CSV = (
    "user_id,item_id,event_type,ts,price\n"
    "alice,i1,view,2024-01-01 10:00:00,3\n"
    "bob,i2,purchase,2024-01-02 10:00:00,-1\n"
    "bob,i2,cart,2024-01-02 10:00:00,\n"
    "carol,i3,view,2024-01-03T09:00:00Z,5.5\n"
)


def _seconds_blind(text: str, *names: str) -> str:
    """A summary without its seconds, and with the other run's file names made one."""
    text = re.sub(r"\(\d+\.\d s\)|in \d+\.\d s", "(s)", text)
    for name in names:
        text = text.replace(name, "shop.duckdb")
    return text


def _append_and_compact(capsys: pytest.CaptureFixture[str], db: Path, files: list[Path],
                        *quiet: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """``ingest --append`` of ``files``, then ``compact``: each one's (stdout, stderr)."""
    assert cli.main([*quiet, "ingest", "--append", "--db", str(db), "--format", "generic", *map(str, files)]) == 0
    appended = capsys.readouterr()
    assert cli.main([*quiet, "compact", "--db", str(db)]) == 0
    return tuple(appended), tuple(capsys.readouterr())


def test_append_and_compact_show_their_phases_and_print_the_same_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import analytics.live_compact

    items, events = tmp_path / "items.csv", tmp_path / "events.csv"
    items.write_text("item_id,title,category\ni1,Mug,Home > Kitchen\n")
    events.write_text(EVENTS_CSV)
    (quiet_out, quiet_err), (quiet_compact, quiet_compact_err) = _append_and_compact(
        capsys, tmp_path / "quiet.duckdb", [items, events], "-q")
    assert quiet_err == quiet_compact_err == ""

    monkeypatch.setattr(progress, "LINE_DELAY_S", 0.0)  # no quiet start: these commands are quick
    monkeypatch.setattr(analytics.live_compact, "_READ_FILES", 1)  # two segments, read one at a time
    (out, err), (compacted, compact_err) = _append_and_compact(capsys, tmp_path / "shop.duckdb", [items, events])
    assert [phase for phase, _ in _parsed(err)] == [
        "items.csv, file 1 of 2: validating", "items.csv, file 1 of 2: writing segments",
        "events.csv, file 2 of 2: validating", "events.csv, file 2 of 2: writing segments",
    ]
    assert all(text.startswith("done in ") for _, text in _parsed(err))
    assert [text.split(" (")[-1] for _, text in _parsed(err)[1::2]] == ["1 rows)", "4 rows)"]
    assert [phase for phase, _ in _parsed(compact_err)] == [
        "working copy of the store", "reading the live segments", "folding the events and the catalogue",
        "profiles", "saving the store", "removing the folded files",
    ]
    texts = dict(_parsed(compact_err))
    assert texts["reading the live segments"].endswith("(2 segments)")
    assert texts["removing the folded files"].endswith("(2 files)")
    assert all(text.startswith("done in ") for text in texts.values())

    assert _seconds_blind(out, "quiet.duckdb") == _seconds_blind(quiet_out, "quiet.duckdb")
    assert _seconds_blind(compacted, "quiet.duckdb") == _seconds_blind(quiet_compact, "quiet.duckdb")
    assert "3 new events, 1 catalogue changes" in compacted  # read a segment at a time, folded whole
    assert cli.main(["compact", "--db", str(tmp_path / "shop.duckdb"), "-q"]) == 0  # nothing left to fold
    nothing = capsys.readouterr()
    assert "nothing to fold" in nothing.out and nothing.err == ""
