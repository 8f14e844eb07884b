"""Experiment definitions: validated with one clear line, every change a new immutable version
with its author, status from the clock, and one experiment running at a time."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics import experiments_store as xs
from analytics.experiments_store import Experiment, Variant
from errors import RecsightError

NOW = datetime(2025, 3, 1, 12, 0, 0)


def _experiment(**changes: object) -> Experiment:
    values: dict[str, object] = dict(
        id="ranker-vs-hybrid", name="Ranker against hybrid", hypothesis="The hybrid lifts click-through by 5 %.",
        metric="click_through", start=NOW + timedelta(hours=1), stop=None,
        variants=(Variant("control", 0.5), Variant("hybrid", 0.5, model_version="v2", rules_version="winter")))
    values.update(changes)
    return Experiment(**values)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "shop.duckdb"


def test_a_saved_experiment_is_stored_beside_the_shop_with_its_author_and_reads_back(db: Path) -> None:
    saved = xs.save(db, _experiment(), "alan", now=NOW)
    assert (saved.version, saved.author, saved.created, saved.change) == (1, "alan", NOW, xs.CREATED)
    folder = db.with_name("shop.duckdb.experiments")
    assert [p.name for p in folder.glob("*.json")] == ["ranker-vs-hybrid.v0001.json"]
    assert stat.S_IMODE(os.stat(folder / "ranker-vs-hybrid.v0001.json").st_mode) == 0o600
    assert xs.get(db, "ranker-vs-hybrid") == saved
    assert saved.control.name == "control" and saved.variant("hybrid").model_version == "v2"
    assert saved.variant("hybrid").rules_version == "winter"


def test_every_change_is_a_new_version_and_the_old_ones_stay_unchanged(db: Path) -> None:
    first = xs.save(db, _experiment(), "alan", now=NOW)
    before = (db.with_name("shop.duckdb.experiments") / "ranker-vs-hybrid.v0001.json").read_bytes()
    second = xs.save(db, replace(first, name="Renamed", variants=(Variant("control", 0.6), Variant("hybrid", 0.4))),
                     "ann", now=NOW + timedelta(minutes=5))
    assert (second.version, second.author, second.change, second.created) == (2, "ann", xs.EDITED, NOW)
    history = xs.history(db, "ranker-vs-hybrid")
    assert [(v.version, v.author, v.name) for v in history] == [(1, "alan", "Ranker against hybrid"),
                                                                 (2, "ann", "Renamed")]
    assert (db.with_name("shop.duckdb.experiments") / "ranker-vs-hybrid.v0001.json").read_bytes() == before
    assert xs.get(db, "ranker-vs-hybrid").variants[0].share == 0.6


def test_status_follows_the_clock(db: Path) -> None:
    e = xs.save(db, _experiment(stop=NOW + timedelta(days=2)), "alan", now=NOW)
    assert e.status(NOW) == xs.DRAFT
    assert e.status(NOW + timedelta(hours=1)) == xs.RUNNING
    assert e.status(NOW + timedelta(days=2)) == xs.STOPPED
    assert xs.running(db, NOW) is None
    assert xs.running(db, NOW + timedelta(days=1)) == e
    aware = datetime(2025, 3, 1, 14, 0, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert e.status(aware) == xs.RUNNING  # an aware time is converted, not read as UTC


@pytest.mark.parametrize(("changes", "message"), [
    ({"variants": (Variant("control", 1.0),)}, "at least two variants"),
    ({"variants": (Variant("a", 0.5), Variant("b", 0.4))}, "add up to 0.9, not 1"),
    ({"variants": (Variant("a", 0.5), Variant("a", 0.5))}, "variant names must differ: a is given twice"),
    ({"variants": (Variant("a", 1.2), Variant("b", -0.2))}, "share must be a fraction above 0"),
    ({"variants": (Variant("a", float("nan")), Variant("b", 0.5))}, "share must be a fraction above 0"),
    ({"variants": (Variant("a/b", 0.5), Variant("b", 0.5))}, "a variant name is"),
    ({"stop": NOW}, "the stop is before the start"),
    ({"metric": "ndcg"}, "unknown primary metric 'ndcg'"),
    ({"id": "Not A Slug"}, "an experiment id is"),
    ({"name": " "}, "name is missing"),
    ({"hypothesis": ""}, "hypothesis is missing"),
    ({"variants": (Variant("a", 0.5, model_version="../x"), Variant("b", 0.5))}, "not a version name"),
])
def test_bad_definitions_are_refused_with_one_line(db: Path, changes: dict, message: str) -> None:
    with pytest.raises(RecsightError, match=message.replace("(", r"\(")) as caught:
        xs.save(db, _experiment(**changes), "alan", now=NOW)
    assert "\n" not in str(caught.value)
    assert not db.with_name("shop.duckdb.experiments").exists() or not xs.load_all(db)


def test_unknown_model_and_rule_set_versions_are_refused_when_the_known_ones_are_given(db: Path) -> None:
    with pytest.raises(RecsightError, match="model version 'v2' is not in the models folder"):
        xs.save(db, _experiment(), "alan", now=NOW, known_models=["v1"])
    with pytest.raises(RecsightError, match="rule-set version 'winter' is not in the rule sets"):
        xs.save(db, _experiment(), "alan", now=NOW, known_models=["v2"], known_rules=["summer"])
    assert xs.save(db, _experiment(), "alan", now=NOW, known_models=["v2"], known_rules=["winter"]).version == 1


def test_only_one_experiment_runs_at_a_time(db: Path) -> None:
    xs.save(db, _experiment(stop=NOW + timedelta(days=7)), "alan", now=NOW)
    with pytest.raises(RecsightError, match="only one experiment may run at a time"):
        xs.save(db, _experiment(id="second", start=NOW + timedelta(days=3)), "alan", now=NOW)
    later = xs.save(db, _experiment(id="second", start=NOW + timedelta(days=7)), "alan", now=NOW)
    assert later.version == 1  # back to back is no overlap
    with pytest.raises(RecsightError, match="only one experiment"):  # an open end blocks every later start
        xs.save(db, _experiment(id="third", start=NOW + timedelta(days=30)), "alan", now=NOW)


def test_a_running_experiment_keeps_its_variants_and_a_stopped_one_keeps_everything(db: Path) -> None:
    e = xs.save(db, _experiment(), "alan", now=NOW)
    during = NOW + timedelta(hours=2)
    with pytest.raises(RecsightError, match="is running: its variants, shares, metric and start cannot change"):
        xs.save(db, replace(e, variants=(Variant("control", 0.7), Variant("hybrid", 0.3))), "ann", now=during)
    renamed = xs.save(db, replace(e, name="Clearer name"), "ann", now=during)
    assert renamed.change == xs.EDITED and renamed.status(during) == xs.RUNNING
    stopped = xs.stop(db, e.id, "ann", now=during + timedelta(hours=1))
    assert (stopped.change, stopped.stop, stopped.version) == (xs.STOPPING, during + timedelta(hours=1), 3)
    assert xs.running(db, during + timedelta(hours=2)) is None
    with pytest.raises(RecsightError, match="has stopped: it is kept as it ran"):
        xs.save(db, replace(stopped, name="again", stop=None), "ann", now=during + timedelta(hours=2))
    with pytest.raises(RecsightError, match="already stopped"):
        xs.stop(db, e.id, "ann", now=during + timedelta(hours=2))


def test_stopping_a_draft_cancels_it_and_frees_its_window(db: Path) -> None:
    draft = xs.save(db, _experiment(start=NOW + timedelta(days=1)), "alan", now=NOW)
    cancelled = xs.stop(db, draft.id, "alan", now=NOW)
    assert cancelled.stop == cancelled.start and cancelled.status(NOW) == xs.DRAFT
    assert cancelled.status(NOW + timedelta(days=2)) == xs.STOPPED
    assert xs.save(db, _experiment(id="other", start=NOW + timedelta(days=1)), "alan", now=NOW).version == 1


def test_a_new_experiment_cannot_start_in_the_past_and_needs_an_author(db: Path) -> None:
    with pytest.raises(RecsightError, match="the start is in the past"):
        xs.save(db, _experiment(start=NOW - timedelta(days=1)), "alan", now=NOW)
    with pytest.raises(RecsightError, match="needs its author"):
        xs.save(db, _experiment(), " ", now=NOW)


def test_a_corrupt_version_file_is_one_clear_line_not_a_traceback(db: Path) -> None:
    xs.save(db, _experiment(), "alan", now=NOW)
    path = db.with_name("shop.duckdb.experiments") / "ranker-vs-hybrid.v0001.json"
    data = json.loads(path.read_text())
    del data["variants"]
    path.write_text(json.dumps(data))
    with pytest.raises(RecsightError, match="unreadable or corrupt"):
        xs.load_all(db)
    other = db.with_name("other.duckdb")
    assert xs.load_all(other) == []
    with pytest.raises(RecsightError, match="no experiment 'nothing-here'"):
        xs.get(other, "nothing-here")
