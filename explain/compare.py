"""Why item A ranks above item B for one customer: the SHAP differences, sorted.

Both items are scored by the same ranker with the same base value, so the per-feature
differences of their SHAP values add up exactly to the score gap: the sorted list says which
features put A ahead and which pulled the other way, in raw-score units.
"""

from __future__ import annotations

import math

from analytics import schema as s
from errors import RecsightError
from explain.tree_shap import shap_rows
from explain.types import Comparison, Difference
from models.features import feature_spec
from models.hybrid import Recommender

__all__ = ["compare_items", "ALL_CANDIDATES"]

ALL_CANDIDATES = 1_000_000  # a k larger than any candidate set: rank every candidate
_SENTENCES = 3


def compare_items(recommender: Recommender, user_id: str, item_a: str, item_b: str) -> Comparison:
    """The contribution differences (A minus B) and a few sentences, largest drivers first."""
    if item_a == item_b:
        raise RecsightError("choose two different items to compare")
    full = recommender.recommend(user_id, ALL_CANDIDATES)
    ranks = {item.item_id: item for item in full.items}
    for item in (item_a, item_b):
        if item not in ranks:
            raise RecsightError(f"item {item!r} is not among this customer's candidates, "
                                "so the ranker does not score it")
    frame = full.features.set_index(s.ITEM_ID, drop=False).loc[[item_a, item_b]].reset_index(drop=True)
    rows = shap_rows(recommender.ranker, frame)
    differences = []
    for j, name in enumerate(rows.features):
        ca, cb = float(rows.values[0, j]), float(rows.values[1, j])
        if ca == cb:
            continue
        differences.append(Difference(name, feature_spec(name).label, _value(rows.inputs[0, j]),
                                      _value(rows.inputs[1, j]), ca, cb))
    differences.sort(key=lambda d: (-abs(d.difference), d.feature))
    a, b = ranks[item_a], ranks[item_b]
    return Comparison(
        user_id=user_id, item_a=item_a, item_b=item_b, title_a=a.title, title_b=b.title,
        score_a=a.score, score_b=b.score, differences=differences,
        summary=_summary(a.title, b.title, a.rank, b.rank, a.score, b.score, differences),
    )


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _show(value: float | None) -> str:
    return "none" if value is None else f"{value:.3g}"


def _summary(title_a: str, title_b: str, rank_a: int, rank_b: int, score_a: float, score_b: float,
             differences: list[Difference]) -> list[str]:
    """The verdict, the largest drivers of the gap, and the largest one pulling the other way."""
    if score_a == score_b:
        lines = [f"{title_a} (rank {rank_a}) and {title_b} (rank {rank_b}) have the same score ({score_a:.3f})."]
        for d in differences[:_SENTENCES]:
            favoured = title_a if d.difference > 0 else title_b
            lines.append(f"{d.label} favours {favoured} by {abs(d.difference):.3f} "
                         f"({_show(d.value_a)} against {_show(d.value_b)}), offset by other features.")
        return lines
    a_wins = score_a > score_b
    winner, loser = (title_a, title_b) if a_wins else (title_b, title_a)
    lines = [f"{winner} ranks above {loser} (rank {min(rank_a, rank_b)} against {max(rank_a, rank_b)}, "
             f"score {max(score_a, score_b):.3f} against {min(score_a, score_b):.3f})."]
    sign = 1 if a_wins else -1
    helping = [d for d in differences if sign * d.difference > 0]
    against = [d for d in differences if sign * d.difference < 0]
    for d in helping[:_SENTENCES]:
        mine, theirs = (d.value_a, d.value_b) if a_wins else (d.value_b, d.value_a)
        lines.append(f"{d.label}: {_show(mine)} against {_show(theirs)}, worth {abs(d.difference):.3f} to {winner}.")
    if against:
        d = against[0]
        lines.append(f"Pulling the other way: {d.label.lower()} is worth {abs(d.difference):.3f} to {loser}.")
    return lines
