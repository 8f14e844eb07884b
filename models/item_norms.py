"""Where an item's shop figures stand among the catalogue's, so words can agree with numbers.

A reason like "shoppers who view it often buy it" must not be said of an item where 1 % of views
end in a purchase, unless that is a lot in this shop. "Often", "popular", "rarely" are therefore
relative to the shop's own items: the quartiles of each figure over the items the model serves
(the serving item table, :func:`models.features.build_item_table`), read once when the model
loads. An item in the top quarter is "high", in the bottom quarter "low", else "typical".
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

__all__ = ["ItemNorms", "NORMED", "item_norms"]

# The item figures the reasons put into words (columns of the serving item table).
NORMED = ("item_users", "item_recent_users", "item_purchases", "item_conversion", "item_events_7d")
_MIN_ITEMS = 8  # fewer items with a figure than this: no distribution to speak of


@dataclass(frozen=True)
class ItemNorms:
    """The lower and upper quartile of each item figure over the served catalogue."""

    quartiles: dict[str, tuple[float, float]]

    def level(self, figure: str, value: float) -> str | None:
        """"high" (top quarter of the shop's items), "low" (bottom quarter) or "typical"; None
        when the shop has no distribution for the figure (too few items, or no spread at all)."""
        bounds = self.quartiles.get(figure)
        if bounds is None:
            return None
        low, high = bounds
        if value > high or (value == high and high > low):
            return "high"
        if value < low or (value == low and high > low):
            return "low"
        return "typical"


def item_norms(con: duckdb.DuckDBPyConnection, items: str) -> ItemNorms:
    """The quartiles of :data:`NORMED` over the rows of ``items`` (columns it lacks are skipped;
    a conversion rate counts only items that were viewed, where it is defined)."""
    present = {r[0] for r in con.execute(f"SELECT * FROM {items} LIMIT 0").description}
    figures = [f for f in NORMED if f in present]
    if not figures:
        return ItemNorms({})
    parts = []
    for f in figures:  # one scan of the table for every figure, each over its own defined values
        defined = f"FILTER (WHERE isfinite({f}::DOUBLE))"
        parts += [f"count({f}) {defined}", f"quantile_cont({f}, 0.25) {defined}", f"quantile_cont({f}, 0.75) {defined}"]
    row = con.execute(f"SELECT {', '.join(parts)} FROM {items}").fetchone()
    quartiles: dict[str, tuple[float, float]] = {}
    for i, figure in enumerate(figures):
        n, low, high = row[3 * i:3 * i + 3]
        if n >= _MIN_ITEMS and low is not None and high is not None and high > 0:
            quartiles[figure] = (float(low), float(high))
    return ItemNorms(quartiles)
