"""The ranker's boosting rounds as a counted phase of a progress reporter (issue 17).

``cli.py train`` spends minutes in LightGBM on a large shop; its rounds are reported through a
LightGBM callback, as ``<name>: boosting rounds`` counted in rounds up to ``max_rounds`` (early
stopping ends it sooner). Reporting must not change the trees, and the silent default adds no
callback at all.
"""

from __future__ import annotations

import io
import re

from models.ranker import boosting_progress, train_ranker
from progress import SILENT, TerminalProgress
from tests.models.test_ranker import CONFIG, FEATURES, _frame
from tests.test_progress import FakeClock, Recorder


def test_the_rounds_are_a_counted_phase_and_the_trees_stay_the_same() -> None:
    frame = _frame()
    heard = Recorder()
    reported = train_ranker(frame, FEATURES, CONFIG, progress=heard, name="hybrid ranker")
    assert heard.names() == ["hybrid ranker: training data", "hybrid ranker: boosting rounds"]
    name, total, unit, rounds = heard.phases[-1]
    assert (total, unit) == (CONFIG.max_rounds, "rounds")
    # every round run is counted: the kept trees, and the early-stopping patience after the best one
    trees = reported.booster.num_trees()
    assert trees <= rounds <= min(CONFIG.max_rounds, trees + CONFIG.early_stopping)
    silent = train_ranker(frame, FEATURES, CONFIG)
    assert reported.booster.model_to_string() == silent.booster.model_to_string()


def test_the_silent_reporter_adds_no_callback() -> None:
    assert boosting_progress(SILENT, "ranker") == []
    assert len(boosting_progress(Recorder(), "ranker")) == 2


def test_the_rounds_read_as_a_finished_line_with_their_count() -> None:
    out, clock = io.StringIO(), FakeClock()
    with TerminalProgress("train", out, bar=False, delay=0, tick=None, clock=clock) as reporter:
        train_ranker(_frame(), FEATURES, CONFIG, progress=reporter)
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d train: ranker: training data: done in 0\.0 s", lines[0])
    assert re.fullmatch(r"\d\d:\d\d:\d\d train: ranker: boosting rounds: done in 0\.0 s \(\d+ rounds\)", lines[1])
    assert len(lines) == 2
