"""A simulated shopper facing a shown list: what they look at, click, put in the cart and buy.

Why: an A/B experiment between two model versions takes weeks of real traffic; on the synthetic
shop the customers' tastes are known (``truth/preferences.parquet``, :mod:`analytics.synth_files`),
so a shopper who answers a list *with those tastes* runs an experiment in minutes with a known
truth: the variant whose lists hold more of what its customers like must win, by an amount this
module can compute exactly (:func:`expected_clicks`).

The model is the position-based click model (Craswell et al. 2008; Joachims et al. 2017): a
shopper examines position ``p`` with probability ``(1 / p) ** eta`` (``eta`` = 1: the first item is
always seen, the tenth one time in ten) and, once they examine an item, clicks, carts and buys it
with the synthetic shop's own funnel probabilities for that customer and item
(:func:`analytics.synth_behaviour.funnel_probabilities`: favourite category, favourite brand,
price band). A variant can be given a planted click lift (``click_lift`` 0.05: clicks 5 % likelier
on every examined item) to check that an experiment finds an effect of known size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq

from analytics import schema as S
from analytics.synth_behaviour import funnel_probabilities
from errors import RecsightError

__all__ = [
    "TRUTH_FILE", "Tastes", "ItemFacts", "Visit", "load_tastes", "item_facts", "examine_probability",
    "click_probabilities", "expected_clicks", "shop_visit",
]

TRUTH_FILE = "preferences.parquet"
DEFAULT_ETA = 1.0


@dataclass(frozen=True)
class Tastes:
    """One customer's planted tastes, as they stand at the end of the shop's history."""

    categories: frozenset[str]  # full leaf paths ("Home > Kitchen > Knives")
    brands: frozenset[str]
    price_rel_low: float  # in band: price / median price of the item's leaf category within these
    price_rel_high: float


@dataclass(frozen=True)
class ItemFacts:
    """What the funnel needs of an item: its category path, brand and relative price."""

    category: str | None
    brand: str | None
    price_rel: float | None


@dataclass(frozen=True)
class Visit:
    """What one shopper did with one shown list: positions (1-based) examined, clicked, carted,
    bought, and the quantity of each purchase."""

    examined: tuple[int, ...]
    clicked: tuple[int, ...]
    carted: tuple[int, ...]
    bought: tuple[int, ...]
    quantities: tuple[int, ...]


def load_tastes(truth_dir: Path | str) -> dict[str, Tastes]:
    """Every customer's tastes by raw shop id, from the synthetic shop's ``truth/`` folder.

    The tastes after drift are the ones in force now (a drifting customer's later sessions use
    them), and a simulated visit happens after the history ends.
    """
    path = Path(truth_dir) / TRUTH_FILE
    if not path.is_file():
        raise RecsightError(f"no planted preferences at {path}: the simulator needs a synthetic shop's truth/ folder "
                            "(python cli.py synth writes it)")
    rows = pq.read_table(path, columns=[S.USER_ID, "favourite_categories_after_drift", "favourite_brands",
                                        "price_rel_low", "price_rel_high"]).to_pylist()
    return {row[S.USER_ID]: Tastes(frozenset(row["favourite_categories_after_drift"] or ()),
                                   frozenset(row["favourite_brands"] or ()),
                                   float(row["price_rel_low"]), float(row["price_rel_high"]))
            for row in rows}


def item_facts(con: duckdb.DuckDBPyConnection, items: str = S.ITEMS) -> dict[str, ItemFacts]:
    """Category, brand and price relative to the median price of the item's category, for every
    item of the catalogue table ``items`` (the synthetic shop's price band is defined that way)."""
    rows = con.execute(f"""
        SELECT {S.ITEM_ID}, {S.CATEGORY}, {S.BRAND},
               {S.PRICE} / nullif(median({S.PRICE}) OVER (PARTITION BY {S.CATEGORY}), 0) AS price_rel
        FROM {items}""").fetchall()
    return {item: ItemFacts(category, brand, None if rel is None else float(rel))
            for item, category, brand, rel in rows}


def examine_probability(positions: int, eta: float = DEFAULT_ETA) -> np.ndarray:
    """P(the shopper looks at position p) for p = 1..positions: ``(1 / p) ** eta``."""
    if eta < 0:
        raise RecsightError(f"the position-bias exponent must be 0 or more (not {eta})")
    return 1.0 / np.arange(1, positions + 1, dtype=float) ** eta


def _probabilities(tastes: Tastes, shown: Sequence[str], facts: Mapping[str, ItemFacts],
                   click_lift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    known = [facts.get(item, ItemFacts(None, None, None)) for item in shown]
    fc = np.array([f.category in tastes.categories for f in known])
    fb = np.array([f.brand in tastes.brands for f in known])
    ib = np.array([f.price_rel is not None and tastes.price_rel_low <= f.price_rel <= tastes.price_rel_high
                   for f in known])
    p_click, p_cart, p_buy = funnel_probabilities(fc, fb, ib)
    return np.clip(p_click * (1.0 + click_lift), 0.0, 1.0), p_cart, p_buy


def click_probabilities(tastes: Tastes, shown: Sequence[str], facts: Mapping[str, ItemFacts], *,
                        eta: float = DEFAULT_ETA, click_lift: float = 0.0) -> np.ndarray:
    """P(a click) at each position of ``shown`` in one visit: examined, then clicked."""
    if not shown:
        return np.zeros(0)
    p_click, _, _ = _probabilities(tastes, shown, facts, click_lift)
    return examine_probability(len(shown), eta) * p_click


def expected_clicks(tastes: Tastes, shown: Sequence[str], facts: Mapping[str, ItemFacts], *,
                    eta: float = DEFAULT_ETA, click_lift: float = 0.0) -> float:
    """The exact expected number of clicks on ``shown``: the truth a simulated experiment estimates."""
    return float(click_probabilities(tastes, shown, facts, eta=eta, click_lift=click_lift).sum())


def shop_visit(rng: np.random.Generator, tastes: Tastes, shown: Sequence[str], facts: Mapping[str, ItemFacts], *,
               eta: float = DEFAULT_ETA, click_lift: float = 0.0) -> Visit:
    """One shopper's answer to the list ``shown`` (item ids, best first)."""
    n = len(shown)
    if n == 0:
        return Visit((), (), (), (), ())
    p_click, p_cart, p_buy = _probabilities(tastes, shown, facts, click_lift)
    examined = rng.random(n) < examine_probability(n, eta)
    clicked = examined & (rng.random(n) < p_click)
    carted = clicked & (rng.random(n) < p_cart)
    bought = carted & (rng.random(n) < p_buy)
    quantity = np.where(rng.random(n) < 0.85, 1, 2 + rng.poisson(0.5, n))

    def positions(mask: np.ndarray) -> tuple[int, ...]:
        return tuple(int(i) + 1 for i in np.flatnonzero(mask))

    return Visit(positions(examined), positions(clicked), positions(carted), positions(bought),
                 tuple(int(quantity[i]) for i in np.flatnonzero(bought)))
