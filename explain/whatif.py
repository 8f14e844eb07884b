""""What if": a customer's list with some past events taken out or one event added, against the list
they have now, told move by move in words an agent can read out.

Why a module of its own and not :mod:`explain.changes`: "what changed" compares two *moments* and
names the new event behind each move (Integrated Gradients over two windows); a what-if compares
two *histories* at one moment, and the agent chose the change, so a move's story is only which
way the item's match went and the feature group that moved it most. That needs TreeSHAP of the
two lists' feature rows and nothing else, so a what-if costs two rankings and one SHAP call.

:func:`compare_lists` is pure (two rankings and the per-group SHAP changes in, moves and sentences
out), so tests build both lists by hand; :func:`group_changes` computes the SHAP changes from the
ranker. The sentences carry ranks and match words ("strong match"), never the ranker's raw scores:
agents read them to customers, and the raw units mean nothing to either.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from explain.changes import ENTERED, EPSILON, GROUP_WORDS, LEFT, MOVED, did
from explain.tree_shap import contributions_of, shap_rows
from models.ranker import Ranker
from models.recommendation import Recommendation, RecommendedItem, match_words

__all__ = ["ENTERED", "LEFT", "MOVED", "WhatIfMove", "WhatIf", "compare_lists", "group_changes", "head"]


GroupChanges = Mapping[str, Mapping[str, float]]  # item id -> feature group -> SHAP after minus before


@dataclass(frozen=True)
class WhatIfMove:
    """One item that would enter, leave or move in the top ``k``, and the sentence saying why."""

    kind: str  # ENTERED, LEFT or MOVED
    item_id: str
    title: str
    rank_before: int | None  # rank in the whole candidate ranking now; None: no candidate now
    rank_after: int | None  # rank in the whole candidate ranking with the change; None: no candidate then
    match_before: str | None  # "strong match", ... (None: not ranked, or a version without a match scale)
    match_after: str | None
    driver: str | None  # the feature group that moved its match most, in plain words
    sentence: str


@dataclass(frozen=True)
class WhatIf:
    """The customer's top ``k`` with the change (``result``), and every move against the list now."""

    user_id: str
    k: int
    removed: list[str]  # past items whose every event was taken out
    added: tuple[str, str] | None  # (item id, event type) added just after the newest event
    result: Recommendation
    moves: list[WhatIfMove] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.moves)

    def sentences(self) -> list[str]:
        return [move.sentence for move in self.moves]


def head(full: Recommendation, k: int) -> Recommendation:
    """The first ``k`` items of a whole ranking, with their feature rows re-indexed."""
    return Recommendation(full.user_id, full.cold_start, full.items[:k], full.features.head(k).reset_index(drop=True))


def group_changes(ranker: Ranker, before: Recommendation, after: Recommendation,
                  item_ids: Collection[str]) -> dict[str, dict[str, float]]:
    """Per item of ``item_ids``, the SHAP contribution of each feature group after the change minus
    now; an item that is no candidate in one ranking counts as zero there (the base value), as in
    :mod:`explain.changes`. One SHAP call per ranking, over the named items' rows only."""
    out: dict[str, dict[str, float]] = {item: {} for item in item_ids}
    for ranking, sign in ((after, 1.0), (before, -1.0)):
        rows = [i for i, item in enumerate(ranking.items) if item.item_id in out]
        if not rows:
            continue
        shap = shap_rows(ranker, ranking.features.iloc[rows].reset_index(drop=True))
        for n, row in enumerate(rows):
            groups = out[ranking.items[row].item_id]
            for c in contributions_of(shap, n):
                groups[c.group] = groups.get(c.group, 0.0) + sign * c.contribution
    return out


def compare_lists(before: Recommendation, after: Recommendation, k: int, changes: GroupChanges | None = None, *,
                  removed: Collection[str] = (), added: tuple[str, str] | None = None,
                  added_title: str | None = None) -> WhatIf:
    """The moves between the top ``k`` of ``before`` (the whole candidate ranking now) and of
    ``after`` (the whole ranking with the change), top-``k`` order: entered, left, then moved.

    ``changes`` are :func:`group_changes` (missing: no driver named); ``removed`` and ``added`` say
    what the agent changed, for the moves a rule makes rather than a score (an item the customer
    would have acted on is no candidate; an item whose events were taken out may be one again).
    """
    position_before = {item.item_id: item for item in before.items}
    position_after = {item.item_id: item for item in after.items}
    top_before = [i.item_id for i in before.items[:k]]
    top_after = [i.item_id for i in after.items[:k]]
    moves: dict[str, list[WhatIfMove]] = {ENTERED: [], LEFT: [], MOVED: []}
    for item_id in dict.fromkeys(top_after + top_before):
        was, now = position_before.get(item_id), position_after.get(item_id)
        if item_id not in top_before:
            kind = ENTERED
        elif item_id not in top_after:
            kind = LEFT
        elif was is not None and now is not None and was.rank != now.rank:
            kind = MOVED
        else:
            continue
        groups = (changes or {}).get(item_id, {})
        moves[kind].append(_move(kind, item_id, was, now, groups, item_id in set(removed),
                                 added is not None and added[0] == item_id, added, added_title))
    moves[ENTERED].sort(key=lambda m: m.rank_after or 0)
    moves[LEFT].sort(key=lambda m: m.rank_before or 0)
    moves[MOVED].sort(key=lambda m: m.rank_after or 0)
    return WhatIf(after.user_id, k, sorted(set(removed)), added, head(after, k),
                  moves[ENTERED] + moves[LEFT] + moves[MOVED])


def _move(kind: str, item_id: str, was: RecommendedItem | None, now: RecommendedItem | None,
          groups: Mapping[str, float], was_removed: bool, is_added: bool, added: tuple[str, str] | None,
          added_title: str | None) -> WhatIfMove:
    """One move, its driver and its sentence."""
    title = (now or was).title  # type: ignore[union-attr]  # one of the two exists
    rank_before, rank_after = (was.rank if was else None), (now.rank if now else None)
    match_before = match_words(was.strength) if was is not None and was.strength is not None else None
    match_after = match_words(now.strength) if now is not None and now.strength is not None else None
    change = None if was is None or now is None else now.score - was.score
    up = rank_after is not None and (rank_before is None or rank_after < rank_before)
    driver = _driver(groups, up)
    head_words = _head(kind, rank_before, rank_after)
    if is_added and now is None and added is not None:
        why = (f"the customer would have {did(added[1], added_title or title)}, and items a customer has "
               "already interacted with are not recommended again")
    elif was_removed and was is None:
        why = ("with the customer's events on it taken out, it can be recommended again (items a customer has "
               "interacted with are not)")
    elif now is None:
        why = "it would no longer be among the candidates drawn from the customer's history"
    elif was is None:
        why = "it would become a candidate" + (f", mostly through {driver}" if driver else "")
    elif change is not None and (change <= EPSILON if up else change >= -EPSILON):
        why = (f"its own match would not {'rise' if up else 'fall'}; items "
               f"{'above it would fall or leave' if up else 'below it would rise above it'}")
    else:
        why = f"its match would {'rise' if up else 'fall'}" + (f", mostly {driver}" if driver else "")
    if match_after is not None and match_after != match_before and now is not None:
        why += f"; it would be a {match_after}" + (f" (a {match_before} now)" if match_before else "")
    sentence = f"{head_words}: {why}."
    return WhatIfMove(kind, item_id, title, rank_before, rank_after, match_before, match_after, driver, sentence)


def _head(kind: str, rank_before: int | None, rank_after: int | None) -> str:
    was = "not a candidate now" if rank_before is None else f"now #{rank_before}"
    if kind == ENTERED:
        return f"New at #{rank_after} ({was})"
    if kind == MOVED:
        return f"Would move to #{rank_after} ({was})"
    return f"Would leave the list (now #{rank_before}" + (")" if rank_after is None else f", would be #{rank_after})")


def _driver(groups: Mapping[str, float], up: bool) -> str | None:
    """The group whose SHAP change moved the item most in the way it went (else the largest
    change at all), in :data:`explain.changes.GROUP_WORDS`' words."""
    meaningful = [(group, change) for group, change in groups.items() if abs(change) > EPSILON]
    if not meaningful:
        return None
    way = [(g, c) for g, c in meaningful if (c > 0) == up]
    group, _ = max(way or meaningful, key=lambda gc: (abs(gc[1]), gc[0]))
    return GROUP_WORDS.get(group, group)
