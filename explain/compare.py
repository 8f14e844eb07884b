"""Why item A ranks above item B for one customer: the SHAP differences, sorted.

Both items are scored by the same ranker with the same base value, so the per-feature
differences of their SHAP values add up exactly to the score gap: the sorted list says which
features put A ahead and which pulled the other way (the sentences weigh each as its share of
everything that separates the two; the raw differences stay in the data). A feature whose value is
the same for both items can still differ in contribution (TreeSHAP shares the trees' joint
effects out); the sentences never give it as a reason ("779 against 779, worth 0.066" reads as
nonsense to an agent) but sum such parts into one line about interaction.

The two items' explanations are computed once, by :mod:`explain.explainer`; a comparison only
reads their contributions and feature values, so it runs no SHAP of its own.
"""

from __future__ import annotations

from errors import RecsightError
from explain.types import Comparison, Difference, ItemExplanation
from models.features import is_ranker_feature, value_words

__all__ = ["compare_items", "require_distinct"]

_SENTENCES = 3


def require_distinct(item_a: str, item_b: str) -> None:
    """Refuse to compare an item with itself (checked before any explanation is computed)."""
    if item_a == item_b:
        raise RecsightError("choose two different items to compare")


def compare_items(a: ItemExplanation, b: ItemExplanation) -> Comparison:
    """The contribution differences (A minus B) and a few sentences, largest drivers first.

    ``a`` and ``b`` are one customer's explanations of the two items, ranked in the same list
    (their ``rank`` and ``score`` are what the sentences cite).
    """
    require_distinct(a.item_id, b.item_id)
    by_feature_a = {c.feature: c for c in a.contributions}
    by_feature_b = {c.feature: c for c in b.contributions}
    differences = []
    # A feature missing from both has a zero contribution to both: no difference.
    for name in dict.fromkeys([*by_feature_a, *by_feature_b]):
        found_a, found_b = by_feature_a.get(name), by_feature_b.get(name)
        ca = found_a.contribution if found_a is not None else 0.0
        cb = found_b.contribution if found_b is not None else 0.0
        if ca == cb:
            continue
        label = (found_a or found_b).label
        differences.append(Difference(name, label, _value(a, name), _value(b, name), ca, cb))
    differences.sort(key=lambda d: (-abs(d.difference), d.feature))
    return Comparison(
        user_id=a.user_id, item_a=a.item_id, item_b=b.item_id, title_a=a.title, title_b=b.title,
        score_a=a.score, score_b=b.score, differences=differences,
        summary=_summary(a.title, b.title, a.rank, b.rank, a.score, b.score, differences),
    )


def _value(item: ItemExplanation, feature: str) -> float | None:
    """The feature's value for the item (None where missing), from the explanation's full row, or
    from its contribution where the row was not kept."""
    if feature in item.feature_values:
        return item.feature_values[feature]
    return next((c.value for c in item.contributions if c.feature == feature), None)


def _show(feature: str, value: float | None) -> str:
    """A value as a person reads it (:func:`models.features.value_words`), never a model weight."""
    if is_ranker_feature(feature):
        return value_words(feature, value) or ("none" if value is None else "a model weight")
    return "none" if value is None else f"{value:.3g}"


def _summary(title_a: str, title_b: str, rank_a: int, rank_b: int, score_a: float, score_b: float,
             differences: list[Difference]) -> list[str]:
    """The verdict, the largest drivers of the gap, and the largest one pulling the other way, each
    weighed as its share of everything that separates the two items (no raw score units: these
    sentences are read out to customers)."""
    total = sum(abs(d.difference) for d in differences) or 1.0

    def part(d: Difference) -> str:
        return f"{abs(d.difference) / total:.0%} of what separates them"

    def values(d: Difference, first_a: bool) -> str:
        mine, theirs = (d.value_a, d.value_b) if first_a else (d.value_b, d.value_a)
        return f"{_show(d.feature, mine)} against {_show(d.feature, theirs)}"

    reasons = [d for d in differences if not d.equal_values]
    if score_a == score_b:
        lines = [f"{title_a} (rank {rank_a}) and {title_b} (rank {rank_b}) are equally strong matches."]
        for d in reasons[:_SENTENCES]:
            favoured = title_a if d.difference > 0 else title_b
            lines.append(f"{d.label} favours {favoured} ({values(d, True)}; {part(d)}), offset by other features.")
        return lines
    a_wins = score_a > score_b
    winner, loser = (title_a, title_b) if a_wins else (title_b, title_a)
    lines = [f"{winner} ranks above {loser} (rank {min(rank_a, rank_b)} against {max(rank_a, rank_b)})."]
    sign = 1 if a_wins else -1
    helping = [d for d in reasons if sign * d.difference > 0]
    against = [d for d in reasons if sign * d.difference < 0]
    for d in helping[:_SENTENCES]:
        lines.append(f"{d.label}: {values(d, a_wins)}, in favour of {winner} ({part(d)}).")
    if against:
        d = against[0]
        lines.append(f"Pulling the other way: {d.label.lower()} ({values(d, a_wins)}) favours {loser} ({part(d)}).")
    return lines + _interaction(differences, sign, winner, loser, total)


def _interaction(differences: list[Difference], sign: int, winner: str, loser: str, total: float) -> list[str]:
    """One line for the features equal for both items, when their parts add up to anything."""
    equal = [d for d in differences if d.equal_values]
    net = sign * sum(d.difference for d in equal)
    if not equal or abs(net) < 5e-4:
        return []
    names = ", ".join(d.label.lower() for d in equal[:2]) + (" and others" if len(equal) > 2 else "")
    return [f"Features equal for both items ({names}) favour {winner if net > 0 else loser} only together with "
            f"the ones that differ ({abs(net) / total:.0%} of what separates them): not reasons of their own."]
