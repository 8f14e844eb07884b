"""Merchandising rules applied to one customer's ranked list: pure, after the ranker.

The model ranks; the shop then has its say (:mod:`analytics.rule_set` says what a rule is). Here
is what the rules do to one list, at one moment, for one customer, in a fixed order:

1. **Which rules**: those whose window holds at ``now`` and whose scope holds the customer
   (:func:`applicable`).
2. **Exclude** removes every matching item (an exclusion beats everything: a pinned item that is
   also excluded is not shown).
3. **Boost / bury** move matching items up / down by their number of positions, counted in the
   list left after the exclusions; several on one item add up (a boost of 3 and a bury of 1 is
   up 2). A moved item lands just before (boost) or after (bury) the item that held its new
   place, so the others keep their order; a bury past the end of the list puts it last.
4. **Pin** puts an item at a position, whatever it scored; the others close up around it. An item
   the model did not list is added there (``from_rank`` None: marked as added by the rule).
   Conflicts: of two pins on one position, or two pins of one item, the rule listed first in the
   set wins and the other is not applied for this customer (reported in ``conflicts``).
5. **Cut to k**: the rules run over the long list (the precomputed lists hold 50), so an
   exclusion or a bury pulls in items from below the top ``k``, and a boost can lift one into it.

Every item a rule touched carries its :class:`RuleEffect` (rule, author, date, the model's rank,
the rank shown), so an explanation can say "moved from #7 to #2 by rule 'Winter tents', ana, 1 Dec"
beside the model's own reasons. The model's scores and feature rows are kept as they are: the
SHAP reasons stay about what the model did.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from analytics import schema as s
from analytics.rule_set import BOOST, BRAND, BURY, CATEGORY, EXCLUDE, ITEM, PIN, Rule, RuleSet
from models.recommendation import Recommendation, RecommendedItem

__all__ = ["Customer", "ItemInfo", "RuleEffect", "RuledItem", "Placement", "Applied", "applicable", "matches",
           "place", "apply_rules", "excluded", "describe", "rule_lines", "short_date"]


@dataclass(frozen=True)
class Customer:
    """What a scope reads of a customer (None ``user_id``: an anonymous search)."""

    user_id: str | None
    country: str | None = None
    segment: str | None = None


@dataclass(frozen=True)
class ItemInfo:
    """What a rule's target reads of an item (and the title an added item is shown with)."""

    title: str | None = None
    category: str | None = None
    brand: str | None = None


@dataclass(frozen=True)
class RuleEffect:
    """What one rule did to one item of one list."""

    rule_id: str
    rule: str  # the rule's name, as explanations quote it
    author: str
    changed: datetime  # when the rule was last written (naive UTC)
    kind: str
    from_rank: int | None  # the model's rank in the long list; None: the model did not list it (added)
    to_rank: int | None  # the rank after the rules; None: removed

    def to_dict(self) -> dict[str, object]:
        return {"rule_id": self.rule_id, "rule": self.rule, "author": self.author, "changed": self.changed.isoformat(),
                "kind": self.kind, "from_rank": self.from_rank, "to_rank": self.to_rank}


@dataclass(frozen=True)
class RuledItem(RecommendedItem):
    """A list item after the rules: the model's item (its score and strength as the model gave
    them) with what the rules did to it. An item added by a pin has no model score (NaN)."""

    rules: tuple[RuleEffect, ...] = ()

    @property
    def added(self) -> bool:
        """Put in the list by a rule: the model did not rank it for this customer."""
        return any(effect.from_rank is None for effect in self.rules)


@dataclass(frozen=True)
class Placement:
    """The long list after the rules, as item ids (what a preview counts without feature rows)."""

    order: list[str]
    model_rank: dict[str, int]  # the model's rank of every item it listed (added items are absent)
    effects: dict[str, tuple[RuleEffect, ...]]  # the items the rules moved or added (and kept)
    removed: dict[str, tuple[RuleEffect, ...]]  # the items excluded
    conflicts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Applied:
    """A customer's list after the rules, cut to ``k``, and what they did."""

    recommendation: Recommendation  # items a rule touched are RuledItem, the rest the model's (renumbered)
    removed: dict[str, tuple[RuleEffect, ...]] = field(default_factory=dict)
    conflicts: tuple[str, ...] = ()


def applicable(rules: RuleSet | Sequence[Rule], customer: Customer, now: datetime) -> tuple[Rule, ...]:
    """The rules that hold for ``customer`` at ``now``, in set order."""
    seq = rules.rules if isinstance(rules, RuleSet) else rules
    return tuple(rule for rule in seq if rule.active(now) and rule.scope.matches(customer.country, customer.segment))


def matches(rule: Rule, item_id: str, info: ItemInfo | None) -> bool:
    """Whether the rule's target names this item: the item itself, its brand (case and spaces
    aside), or its category or any category above it ("Outdoor > Tents" holds "Outdoor > Tents > Dome")."""
    target = rule.target.strip()
    if rule.target_type == ITEM:
        return item_id == target
    if info is None:
        return False
    if rule.target_type == BRAND:
        return bool(info.brand) and _norm(info.brand) == _norm(target)
    if rule.target_type == CATEGORY and info.category:
        path, wanted = _path(info.category), _path(target)
        return path[:len(wanted)] == wanted
    return False


def excluded(item_ids: Sequence[str], rules: Sequence[Rule], catalogue: Mapping[str, ItemInfo]) -> set[str]:
    """The items of ``item_ids`` an exclude rule of ``rules`` (already :func:`applicable`) removes."""
    excludes = [rule for rule in rules if rule.kind == EXCLUDE]
    return {item for item in item_ids if any(matches(rule, item, catalogue.get(item)) for rule in excludes)}


def place(item_ids: Sequence[str], rules: Sequence[Rule], catalogue: Mapping[str, ItemInfo]) -> Placement:
    """The model's list ``item_ids`` (best first) after ``rules`` (already :func:`applicable`), in
    the order of the module's docstring. ``catalogue`` holds the attributes of the listed items
    and of every pinned item (a pinned item missing from it is not added: no such item)."""
    model_rank = {item: n for n, item in enumerate(item_ids, start=1)}
    gone = excluded(item_ids, rules, catalogue)
    removed_by: dict[str, list[Rule]] = {item: [r for r in rules if r.kind == EXCLUDE
                                                and matches(r, item, catalogue.get(item))] for item in gone}
    kept = [item for item in item_ids if item not in gone]
    moved_by: dict[str, list[Rule]] = {}
    keys = []
    for p, item in enumerate(kept, start=1):
        movers = [r for r in rules if r.kind in (BOOST, BURY) and matches(r, item, catalogue.get(item))]
        net = sum((r.shift or 0) * (1 if r.kind == BOOST else -1) for r in movers)
        if movers:
            moved_by[item] = movers
        keys.append(p - net - 0.5 if net > 0 else p - net + 0.5 if net < 0 else float(p))
    ranked = [item for _, item in sorted(zip(keys, kept), key=lambda pair: pair[0])]
    pins, conflicts = _pins(rules, model_rank, gone, catalogue)
    pinned_items = {item for item, _ in pins.values()}
    rest = iter([item for item in ranked if item not in pinned_items])
    order: list[str] = []
    waiting = sorted(pins)
    for position in range(1, len(ranked) + len(pins) + 1):
        if waiting and waiting[0] == position:
            order.append(pins[waiting.pop(0)][0])
            continue
        nxt = next(rest, None)
        if nxt is None:
            break
        order.append(nxt)
    order.extend(pins[position][0] for position in waiting)  # pins past the end of a short list: last
    shown = {item: n for n, item in enumerate(order, start=1)}
    by_item: dict[str, list[Rule]] = {item: list(rules_) for item, rules_ in moved_by.items()}
    for item, rule in pins.values():
        by_item.setdefault(item, []).append(rule)
    effects = {item: tuple(_effect(rule, model_rank.get(item), shown.get(item)) for rule in _in_set_order(rs, rules))
               for item, rs in by_item.items()}
    removed = {item: tuple(_effect(rule, model_rank[item], None) for rule in rs) for item, rs in removed_by.items()}
    return Placement(order, model_rank, effects, removed, tuple(conflicts))


def apply_rules(ranked: Recommendation, rules: RuleSet | Sequence[Rule], customer: Customer, now: datetime, k: int,
                catalogue: Mapping[str, ItemInfo]) -> Applied:
    """``ranked`` (the model's long list) after the rules that hold for ``customer`` at ``now``,
    cut to ``k``: items renumbered, each touched one a :class:`RuledItem`, feature rows in the new
    order (an added item's row is empty: NaN but for its ids). No rule holds: the model's top ``k``."""
    active = applicable(rules, customer, now)
    if not active:
        return Applied(ranked.head(k))
    placement = place([item.item_id for item in ranked.items], active, catalogue)
    index = {item.item_id: n for n, item in enumerate(ranked.items)}
    items: list[RecommendedItem] = []
    for rank, item_id in enumerate(placement.order[:k], start=1):
        effects = placement.effects.get(item_id, ())
        if item_id in index:
            model = ranked.items[index[item_id]]
            items.append(RuledItem(rank, item_id, model.title, model.score, model.strength, effects) if effects
                         else dataclasses.replace(model, rank=rank))  # closed up or down: the model's item
        else:
            info = catalogue.get(item_id)
            items.append(RuledItem(rank, item_id, (info.title if info else None) or item_id, math.nan, None, effects))
    return Applied(Recommendation(ranked.user_id, ranked.cold_start, items, _rows(ranked, items)), placement.removed,
                   placement.conflicts)


def _rows(ranked: Recommendation, items: Sequence[RecommendedItem]) -> pd.DataFrame:
    """The feature rows of ``items`` in their order. An added item gets a row of its own, empty but
    for its ids (the model has no features for it); the columns then hold objects, the model rows
    their values as they were (``infer_objects`` on those rows gives the dtypes back)."""
    frame = ranked.features.reset_index(drop=True)
    index = {item.item_id: n for n, item in enumerate(ranked.items)}
    added = [item.item_id for item in items if item.item_id not in index]
    if not added:
        return frame.iloc[[index[item.item_id] for item in items]].reset_index(drop=True)
    filler = pd.DataFrame({column: [None] * len(added) for column in frame.columns}, dtype=object)
    filler[s.ITEM_ID] = added
    filler[s.USER_ID] = ranked.user_id
    both = pd.concat([frame, filler], ignore_index=True)
    extra = {item: len(frame) + n for n, item in enumerate(added)}
    return both.iloc[[index.get(item.item_id, extra.get(item.item_id, -1)) for item in items]].reset_index(drop=True)


def describe(effects: Sequence[RuleEffect], now: datetime | None = None) -> str:
    """One item's rule effects in one sentence: "moved from #7 to #2 by rule 'Winter tents', ana,
    1 Dec"; "added at #1 by rule ...", "removed by rule ...", "kept at #3 by rule ..." (a boost
    that other rules cancelled). Dates carry their year when it is not ``now``'s."""
    if not effects:
        return ""
    first = effects[0]
    by = " and ".join(f"rule '{e.rule}', {e.author}, {short_date(e.changed, now)}" for e in effects)
    if first.from_rank is None:
        return f"added at #{first.to_rank} by {by} (the model did not list it)"
    if first.to_rank is None:
        return f"removed (the model ranked it #{first.from_rank}) by {by}"
    if first.from_rank == first.to_rank:
        return f"kept at #{first.to_rank} by {by}"
    return f"moved from #{first.from_rank} to #{first.to_rank} by {by}"


def rule_lines(item: object, now: datetime | None = None) -> list[str]:
    """The rule sentence of a list item (a :class:`RuledItem`), or an explanation's rule lines
    (text already), capitalised; [] when no rule touched it."""
    effects = getattr(item, "rules", ())
    if not effects:
        return []
    if all(isinstance(e, str) for e in effects):
        return list(effects)
    text = describe([e for e in effects if isinstance(e, RuleEffect)], now)
    return [text[:1].upper() + text[1:]] if text else []


def short_date(moment: datetime, now: datetime | None = None) -> str:
    """"1 Dec", or "1 Dec 2024" when not this year."""
    text = f"{moment.day} {moment:%b}"
    return text if now is not None and now.year == moment.year else f"{text} {moment.year}"


def _pins(rules: Sequence[Rule], model_rank: Mapping[str, int], gone: set[str],
          catalogue: Mapping[str, ItemInfo]) -> tuple[dict[int, tuple[str, Rule]], list[str]]:
    """{position: (item, rule)} of the pins that apply, and a line per pin that does not."""
    claimed: dict[int, tuple[str, Rule]] = {}
    by_item: dict[str, Rule] = {}
    conflicts = []
    for rule in rules:
        if rule.kind != PIN or rule.position is None:
            continue
        item = rule.target.strip()
        if item in gone or (item not in model_rank and any(
                r.kind == EXCLUDE and matches(r, item, catalogue.get(item)) for r in rules)):
            conflicts.append(f"pin '{rule.name}' not applied: its item is excluded")
        elif item not in model_rank and item not in catalogue:
            conflicts.append(f"pin '{rule.name}' not applied: no item {item!r} in the catalogue")
        elif item in by_item:
            conflicts.append(f"pin '{rule.name}' not applied: the item is already pinned by '{by_item[item].name}'")
        elif rule.position in claimed:
            conflicts.append(f"pin '{rule.name}' not applied: #{rule.position} is taken by "
                             f"'{claimed[rule.position][1].name}'")
        else:
            claimed[rule.position] = (item, rule)
            by_item[item] = rule
    return claimed, conflicts


def _effect(rule: Rule, from_rank: int | None, to_rank: int | None) -> RuleEffect:
    return RuleEffect(rule.rule_id, rule.name, rule.author, rule.changed, rule.kind, from_rank, to_rank)


def _in_set_order(chosen: Sequence[Rule], rules: Sequence[Rule]) -> list[Rule]:
    ids = {rule.rule_id for rule in chosen}
    return [rule for rule in rules if rule.rule_id in ids]


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _path(category: str) -> list[str]:
    return [_norm(part) for part in category.split(s.CATEGORY_SEPARATOR.strip()) if part.strip()]
