"""Merchandising rules as data: what a rule says, whom and when it holds for, and what makes one invalid.

A merchandiser pins an item to a position, boosts or buries items (by item, category or brand) by a
number of positions, or excludes them (out of stock, recalled). Each rule holds for a *scope* (all
customers, or those of some countries and/or RFM segments: the ``users`` table's ``country`` and the
``rfm_segment`` of :mod:`analytics.profiles`, the two things every shop here knows about a customer)
and a *time window* (start and end, each optional, UTC; the end is exclusive). Rules are applied
after the ranker (:mod:`models.rules`); a set of them is stored in numbered versions
(:mod:`analytics.rules_store`).

Shifts are in positions, not score multipliers: "moved up 3 places" is what a merchandiser asked
for, what a preview can count and what an explanation can say; a multiplier on LambdaRank margins
(no unit, mostly negative) has no meaning a person could check.

Plain data only (no database, no clock of its own), so the page, the store and the application all
read the same definitions; :func:`problems` lists what is wrong with a set, one line per problem.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from analytics.profiles import SEGMENTS
from errors import RecsightError

__all__ = ["PIN", "BOOST", "BURY", "EXCLUDE", "KINDS", "ITEM", "CATEGORY", "BRAND", "TARGETS", "MAX_POSITION",
           "MAX_NAME", "MAX_TARGET", "Scope", "Rule", "RuleSet", "RuleProblems", "problems", "rule_problems", "check",
           "parse_time", "new_rule_id"]

PIN, BOOST, BURY, EXCLUDE = KINDS = ("pin", "boost", "bury", "exclude")
ITEM, CATEGORY, BRAND = TARGETS = ("item", "category", "brand")
MAX_POSITION = 100  # a pin or a shift beyond the longest list any interface asks for means nothing
MAX_NAME, MAX_TARGET, MAX_NOTE, MAX_RULES = 80, 200, 300, 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Scope:
    """Whom a rule holds for: everyone (both empty), or customers of ``countries`` (any of them)
    and of ``segments`` (any of them); both given: both must match."""

    countries: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()

    @property
    def everyone(self) -> bool:
        return not self.countries and not self.segments

    def matches(self, country: str | None, segment: str | None) -> bool:
        """Whether a customer of this country and segment is in scope (unknown: only for everyone)."""
        if self.countries and country not in self.countries:
            return False
        return not self.segments or segment in self.segments

    def describe(self) -> str:
        """The scope in words: "all customers", "customers in DE, FR", "champions, loyal in DE"."""
        if self.everyone:
            return "all customers"
        where = f" in {', '.join(self.countries)}" if self.countries else ""
        return f"{', '.join(self.segments)} customers{where}" if self.segments else f"customers{where}"

    def to_dict(self) -> dict[str, list[str]]:
        return {"countries": list(self.countries), "segments": list(self.segments)}

    @classmethod
    def from_dict(cls, data: Any) -> Scope:
        data = data if isinstance(data, Mapping) else {}
        return cls(_texts(data.get("countries")), _texts(data.get("segments")))


@dataclass(frozen=True)
class Rule:
    """One merchandising rule. ``rule_id`` stays the same across the versions that keep the rule;
    ``author`` and ``changed`` say who last wrote it and when (naive UTC), which explanations quote."""

    rule_id: str
    name: str
    kind: str
    target_type: str
    target: str
    author: str
    changed: datetime
    position: int | None = None  # pin: the 1-based position the item is put at
    shift: int | None = None  # boost / bury: how many positions up / down
    scope: Scope = field(default_factory=Scope)
    start: datetime | None = None  # naive UTC, inclusive
    end: datetime | None = None  # naive UTC, exclusive
    note: str = ""  # why (out of stock, recalled, winter campaign): shown in the grid

    def active(self, now: datetime) -> bool:
        """Whether the rule holds at ``now`` (naive UTC): start <= now < end."""
        return (self.start is None or self.start <= now) and (self.end is None or now < self.end)

    def state(self, now: datetime) -> str:
        """"active", "scheduled" (starts later) or "ended"."""
        if self.start is not None and now < self.start:
            return "scheduled"
        return "ended" if self.end is not None and now >= self.end else "active"

    def what(self) -> str:
        """What the rule does, in words: "pin item T1 at #2", "bury brand Acme by 5"."""
        target = f"{self.target_type} {self.target}"
        if self.kind == PIN:
            return f"pin {target} at #{self.position}"
        if self.kind in (BOOST, BURY):
            return f"{self.kind} {target} by {self.shift}"
        return f"{self.kind} {target}"

    def window(self) -> str:
        """The time window in words ("always", "from 1 Dec 2025 00:00 UTC", "... until ...")."""
        start = f"from {self.start:%d %b %Y %H:%M} UTC" if self.start else ""
        end = f"until {self.end:%d %b %Y %H:%M} UTC" if self.end else ""
        return " ".join(part for part in (start, end) if part) or "always"

    def to_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "name": self.name, "kind": self.kind, "target_type": self.target_type,
                "target": self.target, "position": self.position, "shift": self.shift,
                "scope": self.scope.to_dict(), "start": _iso(self.start), "end": _iso(self.end),
                "author": self.author, "changed": _iso(self.changed), "note": self.note}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """A rule from its stored form; a missing or mistyped field is a :class:`RecsightError`
        naming it (:func:`problems` then checks the values)."""
        try:
            changed = parse_time(data.get("changed"), "changed")
            if changed is None:
                raise RecsightError("a rule lacks the time it was changed")
            return cls(rule_id=_text(data, "rule_id"), name=_text(data, "name"), kind=_text(data, "kind"),
                       target_type=_text(data, "target_type"), target=_text(data, "target"),
                       author=_text(data, "author"), changed=changed,
                       position=_number(data.get("position"), "position"), shift=_number(data.get("shift"), "shift"),
                       scope=Scope.from_dict(data.get("scope")), start=parse_time(data.get("start"), "start"),
                       end=parse_time(data.get("end"), "end"), note=str(data.get("note") or ""))
        except AttributeError:
            raise RecsightError("a rule is not an object of named fields") from None


@dataclass(frozen=True)
class RuleSet:
    """The rules in force together, in the order merchandisers listed them (the first of two pins
    on one position wins). ``version`` is None for a draft (not saved yet); 0 is "no rules saved"."""

    rules: tuple[Rule, ...] = ()
    version: int | None = 0
    author: str | None = None
    saved_at: datetime | None = None  # naive UTC
    comment: str = ""

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.rule_id == rule_id), None)

    def active(self, now: datetime) -> tuple[Rule, ...]:
        """The rules whose window holds at ``now``, in set order."""
        return tuple(rule for rule in self.rules if rule.active(now))

    def draft(self, rules: Iterable[Rule]) -> RuleSet:
        """A draft (unsaved) set of ``rules``."""
        return RuleSet(tuple(rules), None)

    def with_rule(self, rule: Rule) -> RuleSet:
        """A draft: this set with ``rule`` added at the end (or replacing the rule of its id)."""
        kept = [r for r in self.rules if r.rule_id != rule.rule_id]
        if len(kept) == len(self.rules):
            return self.draft([*self.rules, rule])
        return self.draft(rule if r.rule_id == rule.rule_id else r for r in self.rules)

    def without(self, rule_id: str) -> RuleSet:
        """A draft: this set without the rule ``rule_id`` (a RecsightError when it has none)."""
        if self.get(rule_id) is None:
            raise RecsightError(f"no rule {rule_id!r} in rule set v{self.version}: reload the rules")
        return self.draft(r for r in self.rules if r.rule_id != rule_id)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "author": self.author, "saved_at": _iso(self.saved_at),
                "comment": self.comment, "rules": [rule.to_dict() for rule in self.rules]}

    @classmethod
    def from_dict(cls, data: Any) -> RuleSet:
        if not isinstance(data, Mapping) or not isinstance(data.get("rules"), list):
            raise RecsightError("a rule set is an object with a list of rules")
        version = _number(data.get("version"), "version")
        return cls(tuple(Rule.from_dict(rule) for rule in data["rules"]), version,
                   data.get("author") if isinstance(data.get("author"), str) else None,
                   parse_time(data.get("saved_at"), "saved_at"), str(data.get("comment") or ""))


class RuleProblems(RecsightError):
    """What is wrong with a rule set: ``problems`` holds one line per problem; the message joins
    them (one line, as every RecsightError)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def problems(rules: Sequence[Rule]) -> list[str]:
    """Every problem of ``rules``, one clear line each, naming the rule: an unknown kind or target,
    an empty target or name, a pin of something other than an item, a position or shift below 1
    (or above :data:`MAX_POSITION`), an end not after the start, an unknown segment, two rules of
    one name or id (explanations name rules, so a name must say which)."""
    out: list[str] = []
    if len(rules) > MAX_RULES:
        out.append(f"at most {MAX_RULES} rules in a set ({len(rules)} given)")
    names: set[str] = set()
    ids: set[str] = set()
    for n, rule in enumerate(rules, start=1):
        label = f"rule {n} ({rule.name!r})" if rule.name.strip() else f"rule {n}"
        out.extend(f"{label}: {problem}" for problem in rule_problems(rule))
        key = rule.name.strip().casefold()
        if key and key in names:
            out.append(f"{label}: another rule has this name; give each rule its own")
        if rule.rule_id in ids:
            out.append(f"{label}: its id {rule.rule_id!r} is used twice")
        names.add(key)
        ids.add(rule.rule_id)
    return out


def check(rules: Sequence[Rule]) -> None:
    """:class:`RuleProblems` when :func:`problems` finds any."""
    found = problems(rules)
    if found:
        raise RuleProblems(found)


def rule_problems(rule: Rule) -> list[str]:
    """The problems of one rule on its own (what :func:`problems` reports for it, unlabelled)."""
    out = []
    if rule.kind not in KINDS:
        out.append(f"unknown kind {rule.kind!r}: choose one of {', '.join(KINDS)}")
    if rule.target_type not in TARGETS:
        out.append(f"unknown target type {rule.target_type!r}: choose one of {', '.join(TARGETS)}")
    if not rule.target.strip():
        out.append("the target is empty: name the item, category or brand")
    elif len(rule.target) > MAX_TARGET or _CONTROL.search(rule.target):
        out.append(f"the target must be at most {MAX_TARGET} printable characters")
    if not rule.name.strip():
        out.append("the name is empty: explanations quote it")
    elif len(rule.name) > MAX_NAME or _CONTROL.search(rule.name):
        out.append(f"the name must be at most {MAX_NAME} printable characters")
    if len(rule.note) > MAX_NOTE:
        out.append(f"the note must be at most {MAX_NOTE} characters")
    if not rule.author.strip():
        out.append("the author is missing")
    if rule.kind == PIN:
        if rule.target_type in TARGETS and rule.target_type != ITEM:
            out.append("a pin places one item: its target type must be item")
        out.extend(_range("position", rule.position))
    elif rule.kind in (BOOST, BURY):
        out.extend(_range("shift", rule.shift))
    if rule.start is not None and rule.end is not None and rule.end <= rule.start:
        out.append("the end is before (or at) the start")
    unknown = [segment for segment in rule.scope.segments if segment not in SEGMENTS]
    if unknown:
        out.append(f"unknown segment {unknown[0]!r}: choose from {', '.join(SEGMENTS)}")
    if any(not c.strip() or len(c) > 64 or _CONTROL.search(c) for c in rule.scope.countries):
        out.append("a country of the scope is empty or too long")
    return out


def _range(what: str, value: int | None) -> list[str]:
    if value is None:
        return [f"the {what} is missing"]
    if value < 1:
        return [f"the {what} must be 1 or more, not {value}"]
    if value > MAX_POSITION:
        return [f"the {what} must be at most {MAX_POSITION}, not {value}"]
    return []


def new_rule_id() -> str:
    """A fresh rule id ("r" and 10 hex digits). Random rather than counted: an id must never come
    back for another rule in a later version (an experiment's variant serves an old version beside
    the current one's exclusions, told apart by id), and a count over the current set would reuse
    the id of a removed rule."""
    return f"r{uuid.uuid4().hex[:10]}"


def parse_time(value: Any, what: str) -> datetime | None:
    """An ISO time as naive UTC (an offset is converted; none means UTC); None for None or ""."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise RecsightError(f"the {what} time {str(value)[:40]!r} is not a date and time") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise RecsightError(f"a rule's {key} is missing or not text")
    return value


def _texts(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise RecsightError("a scope lists its countries and segments as lists of text")
    return tuple(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))


def _number(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecsightError(f"the {what} must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,6}", value.strip()):
        return int(value)
    raise RecsightError(f"the {what} must be a whole number, not {str(value)[:20]!r}")
