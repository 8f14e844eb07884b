"""Editing the shop's merchandising rules: what the Rules page saves, and what it offers to type.

Each change is a new version of the rule set (:mod:`analytics.rules_store`): a rule added, a rule
removed, or an old version's rules brought back. Every save is audited: the caller hands a
``record(detail)`` that appends the audit row, and it runs under the store's lock before anything
is written, so a save the log cannot record does not happen. A save built on a version that is no
longer current (someone else saved meanwhile) is refused.

A rule is checked against the catalogue too: a pin or a rule on an item the shop does not have, a
category or a brand nothing is filed under, would hold for nobody, and is most likely a typo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from analytics import schema as s
from analytics.rule_set import (
    BRAND,
    CATEGORY,
    EXCLUDE,
    ITEM,
    PIN,
    Rule,
    RuleProblems,
    RuleSet,
    Scope,
    new_rule_id,
    parse_time,
    rule_problems,
)
from analytics.rules_store import load_rules, rules_folder, save_rules
from errors import RecsightError
from models.serving import Recommender
from workflows.merchandising import utc_now

__all__ = ["MAX_SUGGESTIONS", "Suggestion", "rule_from_form", "catalogue_problems", "add_rule", "remove_rule",
           "restore_version", "suggestions", "countries"]

log = logging.getLogger(__name__)

MAX_SUGGESTIONS = 20
Record = Callable[[str], None]  # appends the audit row of a save (its detail); raising stops the save


@dataclass(frozen=True)
class Suggestion:
    """A target the catalogue has: the value a rule stores and the label the form shows."""

    value: str
    label: str


def rule_from_form(form: Mapping[str, Any], author: str, current: RuleSet, now: datetime | None = None) -> Rule:
    """The rule the page's form describes (its fields as the browser sent them), with a new id,
    ``author`` and the time; a :class:`RuleProblems` listing every problem of it, one line each."""
    def text(key: str) -> str:
        value = form.get(key)
        return value.strip() if isinstance(value, str) else ""

    def texts(key: str) -> tuple[str, ...]:
        value = form.get(key) or []
        return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else (str(value),)

    lines: list[str] = []
    kind, amount = text("kind"), form.get("amount")
    number = None
    if amount not in (None, ""):
        try:
            number = int(str(amount).strip())
        except ValueError:
            lines.append(f"the {'position' if kind == PIN else 'shift'} must be a whole number")
    times: dict[str, datetime | None] = {}
    for key in ("start", "end"):
        try:
            times[key] = parse_time(text(key), key)
        except RecsightError as exc:
            times[key] = None
            lines.append(str(exc))
    rule = Rule(new_rule_id(), text("name"), kind, text("target_type"), text("target"), author,
                now or utc_now(), number if kind == PIN else None, number if kind not in (PIN, EXCLUDE) else None,
                Scope(texts("countries"), texts("segments")), times["start"], times["end"], text("note"))
    lines.extend(rule_problems(rule))
    if rule.name.strip() and any(r.name.strip().casefold() == rule.name.strip().casefold() for r in current.rules):
        lines.append(f"a rule named {rule.name.strip()!r} exists already: explanations quote names, give it its own")
    if lines:
        raise RuleProblems(lines)
    return rule


def catalogue_problems(recommender: Recommender, rule: Rule) -> list[str]:
    """What the catalogue says against ``rule``: its item, category or brand is not in it."""
    column = {ITEM: s.ITEM_ID, CATEGORY: s.CATEGORY, BRAND: s.BRAND}.get(rule.target_type)
    if column is None:
        return []
    target = rule.target.strip()
    if rule.target_type == ITEM:
        sql, args = f"SELECT 1 FROM {s.ITEMS} WHERE {s.ITEM_ID} = ? LIMIT 1", [target]
    elif rule.target_type == CATEGORY:  # the category or one below it
        sql = (f"SELECT 1 FROM {s.ITEMS} WHERE lower({s.CATEGORY}) = lower(?) "
               f"OR starts_with(lower({s.CATEGORY}), lower(?) || ?) LIMIT 1")
        args = [target, target, s.CATEGORY_SEPARATOR]
    else:
        sql, args = f"SELECT 1 FROM {s.ITEMS} WHERE lower(trim({s.BRAND})) = lower(?) LIMIT 1", [target]
    with recommender.connection() as con:
        found = con.execute(sql, args).fetchone()
    return [] if found else [f"no {rule.target_type} {target!r} in the shop's catalogue: pick one of the suggestions"]


def add_rule(db_path: Path | str, rule: Rule, author: str, *, expected: int, record: Record) -> RuleSet:
    """Save the current rules plus ``rule`` as a new version (audited through ``record``)."""
    current = _current(db_path, expected)
    detail = f"added '{rule.name}': {rule.what()}; {rule.scope.describe()}; {rule.window()}"
    return _save(db_path, current.with_rule(rule), author, detail, expected, record)


def remove_rule(db_path: Path | str, rule_id: str, author: str, *, expected: int, record: Record) -> RuleSet:
    """Save the current rules without the rule ``rule_id`` as a new version (audited)."""
    current = _current(db_path, expected)
    rule = current.get(rule_id)
    if rule is None:
        raise RecsightError("that rule is no longer in the current rules: reload the page")
    return _save(db_path, current.without(rule_id), author, f"removed '{rule.name}': {rule.what()}", expected, record)


def restore_version(db_path: Path | str, version: int, author: str, *, expected: int, record: Record) -> RuleSet:
    """Save the rules of an old ``version`` as a new version (audited): going back never rewrites history."""
    _current(db_path, expected)
    old = load_rules(rules_folder(db_path), version)
    return _save(db_path, old.draft(old.rules), author, f"restored the {len(old)} rules of v{version}", expected,
                 record)


def suggestions(recommender: Recommender, target_type: str, typed: str | None) -> list[Suggestion]:
    """Catalogue targets matching what was typed (case aside), most items first: item ids and
    titles, categories (every level of the paths), or brands. At most :data:`MAX_SUGGESTIONS`."""
    like = f"%{(typed or '').strip().lower()}%"
    if target_type == ITEM:
        sql = (f"SELECT {s.ITEM_ID}, {s.ITEM_ID} || ' · ' || coalesce({s.TITLE}, '') FROM {s.ITEMS} "
               f"WHERE lower({s.ITEM_ID}) LIKE ? OR lower(coalesce({s.TITLE}, '')) LIKE ? "
               f"ORDER BY {s.ITEM_ID} LIMIT {MAX_SUGGESTIONS}")
        args = [like, like]
    elif target_type == CATEGORY:
        sep = s.CATEGORY_SEPARATOR
        sql = (f"""WITH parts AS (SELECT string_split({s.CATEGORY}, '{sep}') AS steps FROM {s.ITEMS}
                                  WHERE {s.CATEGORY} IS NOT NULL),
                        paths AS (SELECT array_to_string(steps[1:n], '{sep}') AS path
                                  FROM parts, range(1, len(steps) + 1) AS r(n))
                   SELECT path, path || ' (' || count(*) || ' items)' FROM paths WHERE lower(path) LIKE ?
                   GROUP BY path ORDER BY count(*) DESC, path LIMIT {MAX_SUGGESTIONS}""")
        args = [like]
    elif target_type == BRAND:
        sql = (f"SELECT trim({s.BRAND}) AS b, b || ' (' || count(*) || ' items)' FROM {s.ITEMS} "
               f"WHERE {s.BRAND} IS NOT NULL AND trim({s.BRAND}) <> '' AND lower({s.BRAND}) LIKE ? "
               f"GROUP BY b ORDER BY count(*) DESC, b LIMIT {MAX_SUGGESTIONS}")
        args = [like]
    else:
        return []
    with recommender.connection() as con:
        rows = con.execute(sql, args).fetchall()
    return [Suggestion(str(value), str(label)) for value, label in rows]


def countries(recommender: Recommender) -> list[str]:
    """The countries of the shop's customers (what a scope can name), most customers first."""
    with recommender.connection() as con:
        try:
            rows = con.execute(f"SELECT {s.COUNTRY} FROM {s.USERS} WHERE {s.COUNTRY} IS NOT NULL "
                               f"GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 200").fetchall()
        except duckdb.Error:
            return []
    return [row[0] for row in rows]


def _current(db_path: Path | str, expected: int) -> RuleSet:
    current = load_rules(rules_folder(db_path))
    if current.version != expected:
        raise RecsightError(f"the rules changed since you opened them (now v{current.version}): "
                            "reload the page and make your change again")
    return current


def _save(db_path: Path | str, draft: RuleSet, author: str, detail: str, expected: int, record: Record) -> RuleSet:
    saved = save_rules(rules_folder(db_path), draft.rules, author, detail, expected=expected,
                       before_commit=lambda number: record(f"rules v{number}: {detail}"))
    log.info("rules v%s by %s: %s", saved.version, author, detail)
    return saved
