"""Rule sets on disk (analytics/rules_store.py, analytics/rule_set.py): numbered immutable versions,
atomic writes, a current pointer, and one clear line per problem of an invalid set."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path

import pytest

from analytics import rules_store as store
from analytics.rule_set import BOOST, BRAND, BURY, CATEGORY, EXCLUDE, ITEM, PIN, Rule, RuleProblems, RuleSet, Scope
from errors import RecsightError

WHEN = datetime(2025, 12, 1, 9, 0)


def rule(name: str = "Winter tents", kind: str = PIN, target_type: str = ITEM, target: str = "T1", *,
         rule_id: str = "r1", position: int | None = 2, shift: int | None = None, **extra) -> Rule:
    return Rule(rule_id, name, kind, target_type, target, "ana", WHEN, position, shift, **extra)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return store.rules_folder(tmp_path / "shop.duckdb")


def test_folder_sits_beside_the_shop(tmp_path: Path) -> None:
    assert store.rules_folder(tmp_path / "shop.duckdb") == tmp_path / "shop.duckdb.rules"


def test_nothing_saved_is_an_empty_set_version_0(folder: Path) -> None:
    rules = store.load_rules(folder)
    assert (rules.version, len(rules)) == (0, 0)
    assert store.versions(folder) == [] and store.current_stamp(folder) is None


def test_every_save_is_a_new_immutable_version_and_becomes_current(folder: Path) -> None:
    v1 = store.save_rules(folder, [rule()], "ana", "winter campaign")
    v2 = store.save_rules(folder, [rule(), rule("Recall", EXCLUDE, BRAND, "Acme", rule_id="r2", position=None)],
                          "bo", "recall Acme", expected=1)
    assert (v1.version, v2.version) == (1, 2)
    first = (folder / "v000001.json").read_bytes()
    store.save_rules(folder, [], "ana", "clear", expected=2)
    assert (folder / "v000001.json").read_bytes() == first  # old versions are never rewritten
    assert store.current_version(folder) == 3 and len(store.load_rules(folder)) == 0
    named = store.load_rules(folder, 2)  # an experiment names a version: it stays what it was
    assert [r.name for r in named.rules] == ["Winter tents", "Recall"] and named.author == "bo"
    history = store.versions(folder)
    assert [(h.version, h.author, h.comment, h.n_rules, h.current) for h in history] == [
        (3, "ana", "clear", 0, True), (2, "bo", "recall Acme", 2, False), (1, "ana", "winter campaign", 1, False)]


def test_a_save_built_on_an_old_version_is_refused(folder: Path) -> None:
    store.save_rules(folder, [rule()], "ana")
    store.save_rules(folder, [], "bo", expected=1)
    with pytest.raises(RecsightError, match="changed since you opened them"):
        store.save_rules(folder, [rule()], "ana", expected=1)
    assert store.current_version(folder) == 2


def test_the_round_trip_keeps_every_field(folder: Path) -> None:
    full = rule("Boost tents", BOOST, CATEGORY, "Outdoor > Tents", position=None, shift=3,
                scope=Scope(("DE", "FR"), ("champions",)), start=WHEN, end=datetime(2025, 12, 24), note="campaign")
    store.save_rules(folder, [full], "ana")
    assert store.load_rules(folder).rules == (full,)


def test_writes_are_atomic_and_leave_no_temporary_files(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store.save_rules(folder, [rule()], "ana")

    def broken_replace(src, dst):  # the disk fails at the rename of the new version
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(RecsightError, match="No space left"):
        store.save_rules(folder, [], "bo")
    monkeypatch.undo()
    assert store.current_version(folder) == 1 and len(store.load_rules(folder)) == 1
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "CURRENT", "v000001.json"]


def test_an_orphan_of_an_interrupted_save_is_skipped(folder: Path) -> None:
    store.save_rules(folder, [rule()], "ana")
    orphan = RuleSet((), 2, "bo", WHEN, "killed before CURRENT moved")
    (folder / "v000002.json").write_text(json.dumps(orphan.to_dict()))
    assert store.current_version(folder) == 1 and [h.version for h in store.versions(folder)] == [1]
    assert store.save_rules(folder, [], "ana").version == 3


def test_a_failing_before_commit_saves_nothing(folder: Path) -> None:
    def audit(number: int) -> None:
        raise RecsightError("the audit log cannot be written")

    with pytest.raises(RecsightError, match="audit log"):
        store.save_rules(folder, [rule()], "ana", before_commit=audit)
    assert store.current_version(folder) == 0 and not list(folder.glob("v*.json"))


def test_concurrent_saves_get_distinct_versions(folder: Path) -> None:
    store.save_rules(folder, [], "setup")
    numbers: list[int] = []
    threads = [threading.Thread(target=lambda n=n: numbers.append(
        store.save_rules(folder, [rule(rule_id=f"r{n}")], f"user{n}").version)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == [2, 3, 4, 5, 6, 7]


def test_unreadable_versions_and_pointers_are_one_clear_line(folder: Path) -> None:
    store.save_rules(folder, [rule()], "ana")
    (folder / "v000001.json").write_text("{not json")
    with pytest.raises(RecsightError, match="rule set v1 .* is unreadable"):
        store.load_rules(folder)
    with pytest.raises(RecsightError, match="no rule set v7"):
        store.load_rules(folder, 7)
    (folder / "CURRENT").write_text("latest")
    with pytest.raises(RecsightError, match="does not hold a version number"):
        store.current_version(folder)


@pytest.mark.parametrize(("bad", "line"), [
    (rule(kind="promote"), "rule 1 ('Winter tents'): unknown kind 'promote': choose one of pin, boost, bury, exclude"),
    (rule(target_type="colour"), "unknown target type 'colour'"),
    (rule(target="  "), "the target is empty"),
    (rule(position=0), "the position must be 1 or more, not 0"),
    (rule(position=None), "the position is missing"),
    (rule(kind=BURY, position=None, shift=-2), "the shift must be 1 or more, not -2"),
    (rule(kind=PIN, target_type=BRAND), "a pin places one item: its target type must be item"),
    (rule(start=datetime(2025, 12, 24), end=datetime(2025, 12, 1)), "the end is before (or at) the start"),
    (rule(scope=Scope(segments=("vip",))), "unknown segment 'vip'"),
    (rule(name=""), "rule 1: the name is empty"),
])
def test_validation_says_what_is_wrong_in_one_line_each(folder: Path, bad: Rule, line: str) -> None:
    with pytest.raises(RuleProblems) as caught:
        store.save_rules(folder, [bad], "ana")
    assert len(caught.value.problems) == 1 and line in caught.value.problems[0]
    assert "\n" not in str(caught.value)
    assert store.current_version(folder) == 0  # nothing invalid is saved


def test_several_problems_are_listed_together_and_names_must_differ(folder: Path) -> None:
    rules = [rule(position=0, end=WHEN, start=WHEN), rule(rule_id="r2", position=5)]
    with pytest.raises(RuleProblems) as caught:
        store.save_rules(folder, rules, "ana")
    assert caught.value.problems == [
        "rule 1 ('Winter tents'): the position must be 1 or more, not 0",
        "rule 1 ('Winter tents'): the end is before (or at) the start",
        "rule 2 ('Winter tents'): another rule has this name; give each rule its own",
    ]


def test_times_with_offsets_are_stored_as_utc() -> None:
    data = rule().to_dict() | {"start": "2025-12-01T10:00:00+01:00", "end": "2025-12-02T00:00:00Z"}
    parsed = Rule.from_dict(data)
    assert (parsed.start, parsed.end) == (datetime(2025, 12, 1, 9), datetime(2025, 12, 2))
    with pytest.raises(RecsightError, match="not a date and time"):
        Rule.from_dict(data | {"start": "first of december"})
