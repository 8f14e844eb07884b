"""Previewing a draft rule set before it is saved: how many customers' lists change, and how.

A merchandiser adding "pin the winter tent at #2 for champions" should know before saving that it
changes 312 of 5,000 lists, pushes 312 items out of them and clashes with another pin for 40
customers. :func:`preview` applies the draft and the rules in force now to every customer's
precomputed list (:class:`models.recommendation.TopItems`: the model's first 50 per customer,
ranked at training; no ranking runs) and compares the two top ``k``: lists changed, items that
enter, leave or move, the customers each rule touches, the conflicts, and a few lists side by side.

Customers with events newer than the model are previewed on their precomputed list too (their
live list differs a little; the counts are about the rules, not about the live events).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from analytics import profiles as p
from analytics import schema as s
from analytics.rule_set import PIN, Rule, RuleSet
from errors import RecsightError
from models.rules import Customer, ItemInfo, Placement, applicable, describe, place
from models.serving import Recommender
from workflows.merchandising import catalogue_of, current_rules, utc_now

__all__ = ["PREVIEW_K", "SAMPLES", "SampleRow", "Sample", "Preview", "preview"]

log = logging.getLogger(__name__)

PREVIEW_K = 10  # the list people see: the customer page's and the API's default length
SAMPLES = 3  # changed lists shown side by side


@dataclass(frozen=True)
class SampleRow:
    """One line of a sample list: its rank, the item, and what happened to it (or "")."""

    rank: int
    item_id: str
    title: str
    note: str = ""


@dataclass(frozen=True)
class Sample:
    """One customer's list now and with the draft."""

    user_id: str
    before: list[SampleRow]
    after: list[SampleRow]


@dataclass(frozen=True)
class Preview:
    """What saving the draft would do to the lists of every customer with a precomputed list."""

    at: datetime  # the moment previewed (naive UTC): the rules' windows are read at it
    k: int
    customers: int
    changed: int  # lists whose top k differs (items or order)
    entered: int  # items that enter a list, summed over the lists
    left: int
    moved: int  # items kept at another position
    by_rule: dict[str, int] = field(default_factory=dict)  # rule name -> lists whose top k it touches
    conflicts: dict[str, int] = field(default_factory=dict)  # conflict line -> lists it happens in
    samples: list[Sample] = field(default_factory=list)
    base_version: int | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        """The counts in one sentence."""
        if not self.changed:
            return (f"No list changes: the top {self.k} of all {self.customers:,} customers stay as they are "
                    f"({self.at:%d %b %Y %H:%M} UTC).")
        return (f"{self.changed:,} of {self.customers:,} customers' lists change (top {self.k}, "
                f"{self.at:%d %b %Y %H:%M} UTC): {self.entered:,} items enter, {self.left:,} leave, "
                f"{self.moved:,} move.")


def preview(recommender: Recommender, draft: RuleSet, *, base: RuleSet | None = None, at: datetime | None = None,
            k: int = PREVIEW_K, samples: int = SAMPLES) -> Preview:
    """The draft's effect on every precomputed list against ``base`` (default: the rules in force
    now), with the windows read at ``at`` (default: now)."""
    started = time.perf_counter()
    top = recommender.top
    if top is None or not len(top):
        raise RecsightError("this model version has no precomputed lists to preview on: retrain it")
    base = current_rules(recommender) if base is None else base
    at = at or utc_now()
    draft_rules, base_rules = draft.active(at), base.active(at)
    every = (*draft_rules, *base_rules)
    countries, segments = _scopes(recommender, every)
    ids = top.features[s.ITEM_ID].astype(str).tolist()
    pins = [rule.target.strip() for rule in every if rule.kind == PIN]
    catalogue = catalogue_of(recommender, [*dict.fromkeys(ids), *pins])
    totals: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    conflicts: Counter[str] = Counter()
    shown: list[Sample] = []
    for user in sorted(top.spans):
        start, stop = top.spans[user]
        customer = Customer(user, countries.get(user), segments.get(user))
        after_rules, before_rules = applicable(draft_rules, customer, at), applicable(base_rules, customer, at)
        if after_rules == before_rules:
            continue  # the same rules hold for this customer: the same list
        listed = ids[start:stop]
        before, after = _placed(listed, before_rules, catalogue), _placed(listed, after_rules, catalogue)
        conflicts.update(after.conflicts)
        by_rule.update(_touching(after, k))
        old, new = before.order[:k], after.order[:k]
        if old == new:
            continue
        totals["changed"] += 1
        totals["entered"] += len(set(new) - set(old))
        totals["left"] += len(set(old) - set(new))
        totals["moved"] += sum(1 for item in set(old) & set(new) if old.index(item) != new.index(item))
        if len(shown) < samples:
            titles = dict(zip(listed, top.titles[start:stop]))
            shown.append(_sample(user, before, after, k, titles, catalogue, at))
    seconds = time.perf_counter() - started
    log.info("rules preview over %d lists: %d change (%.2f s)", len(top), totals["changed"], seconds)
    return Preview(at, k, len(top), totals["changed"], totals["entered"], totals["left"], totals["moved"],
                   dict(by_rule.most_common()), dict(conflicts.most_common()), shown, base.version, round(seconds, 2))


def _placed(listed: list[str], rules: tuple[Rule, ...], catalogue: Mapping[str, ItemInfo]) -> Placement:
    return place(listed, rules, catalogue) if rules else Placement(list(listed), {}, {}, {})


def _touching(placed: Placement, k: int) -> set[str]:
    """The names of the rules that touch the top ``k``: an item they put or keep in it, or one of
    the model's top ``k`` they removed or pushed out."""
    names = set()
    for effects in placed.effects.values():
        for e in effects:
            if (e.to_rank is not None and e.to_rank <= k) or (e.from_rank is not None and e.from_rank <= k):
                names.add(e.rule)
    for effects in placed.removed.values():
        names.update(e.rule for e in effects if e.from_rank is not None and e.from_rank <= k)
    return names


def _sample(user: str, before: Placement, after: Placement, k: int, titles: Mapping[str, str],
            catalogue: Mapping[str, ItemInfo], at: datetime) -> Sample:
    def title(item: str) -> str:
        info = catalogue.get(item)
        return titles.get(item) or (info.title if info and info.title else None) or item

    old, new = before.order[:k], after.order[:k]
    rows_before = []
    for rank, item in enumerate(old, start=1):
        note = ""
        if item in after.removed:
            note = describe(after.removed[item], at)
        elif item not in new:
            note = "leaves the list"
        rows_before.append(SampleRow(rank, item, title(item), note))
    rows_after = []
    for rank, item in enumerate(new, start=1):
        note = describe(after.effects[item], at) if item in after.effects else ("enters the list" if item not in old
                                                                                 else "")
        rows_after.append(SampleRow(rank, item, title(item), note))
    return Sample(user, rows_before, rows_after)


def _scopes(recommender: Recommender, rules: tuple[Rule, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """Every customer's country and segment, read only where a rule has a scope of that kind."""
    countries: dict[str, str] = {}
    segments: dict[str, str] = {}
    with recommender.connection() as con:
        try:
            if any(rule.scope.countries for rule in rules):
                countries = dict(con.execute(f"SELECT {s.USER_ID}, {s.COUNTRY} FROM {s.USERS} "
                                             f"WHERE {s.COUNTRY} IS NOT NULL").fetchall())
            if any(rule.scope.segments for rule in rules):
                segments = dict(con.execute(f"SELECT {s.USER_ID}, {p.RFM_SEGMENT} FROM {p.USER_PROFILES} "
                                            f"WHERE {p.RFM_SEGMENT} IS NOT NULL").fetchall())
        except duckdb.Error as exc:  # a shop without a users table or profiles: scopes match nobody
            log.warning("rules preview: customer scopes unreadable (%s)", str(exc).splitlines()[0])
    return countries, segments
