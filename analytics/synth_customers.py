"""The synthetic shop's customers and the preferences planted in them.

Why planted: each customer gets hidden tastes (favourite categories and brands, a price band,
an activity level, an active span, perhaps a drift of taste) that drive their behaviour and
are written apart from it to ``truth/``, so explanations can be checked against real causes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from analytics.synth_catalogue import Catalogue
from analytics.synth_draws import choice_rows

__all__ = ["Customers", "make_customers"]

COUNTRIES = ("United Kingdom", "Germany", "France", "Netherlands", "Spain", "Italy", "Poland", "Sweden")
_COUNTRY_WEIGHTS = (0.40, 0.15, 0.12, 0.08, 0.08, 0.07, 0.05, 0.05)

ACTIVITY = ("low", "medium", "high")
_ACTIVITY_P = (0.5, 0.35, 0.15)
_ACTIVITY_RATE = (0.06, 0.2, 0.6)  # sessions per active day
PRICE_TIERS = ("budget", "mid", "premium")
_PRICE_TIER_P = (0.35, 0.45, 0.20)
_PRICE_TIER_BAND = ((0.35, 0.9), (0.75, 1.35), (1.15, 3.0))  # price / leaf median
_DRIFT_SHARE = 0.3


@dataclass(frozen=True)
class Customers:
    """The planted preferences of every customer, one row per customer (U rows), as codes."""

    activity: np.ndarray          # (U,) index into ACTIVITY
    rate: np.ndarray              # sessions per active day
    join_day: np.ndarray
    leave_day: np.ndarray
    n_fav: np.ndarray
    fav_before: np.ndarray        # (U, 3) leaf indices, -1 padded
    fav_after: np.ndarray         # (U, 3)
    drift_day: np.ndarray         # (U,) inf when no drift
    drift_from: np.ndarray        # (U,) leaf or -1
    drift_to: np.ndarray
    fav_brands: np.ndarray        # (U, 3) brand indices, -1 padded
    tier: np.ndarray
    rel_low: np.ndarray
    rel_high: np.ndarray
    country: np.ndarray

    def rows(self, begin: int, end: int) -> Customers:
        """Customers ``begin`` to ``end`` (exclusive) alone: a big shop's behaviour is simulated a
        block of customers at a time (:func:`analytics.synth.generate_shop`)."""
        return Customers(**{f.name: getattr(self, f.name)[begin:end] for f in fields(self)})


def make_customers(rng: np.random.Generator, cat: Catalogue, n_users: int, n_days: int) -> Customers:
    """Draw every customer's activity, active span, favourites, drift, brands, price band, country."""
    n_leaves = len(cat.leaf_paths)
    activity = rng.choice(3, size=n_users, p=_ACTIVITY_P)
    rate = np.asarray(_ACTIVITY_RATE)[activity] * np.exp(rng.normal(0.0, 0.3, n_users))

    join = np.where(rng.random(n_users) < 0.6, 0.0, rng.uniform(0.0, 0.8 * n_days, n_users))
    join = np.minimum(join, n_days - 1.0)
    leave_early = join + 1.0 + rng.random(n_users) * (n_days - join - 1.0)
    leave = np.where(rng.random(n_users) < 0.7, float(n_days), leave_early)

    # Favourites: the main one by leaf popularity, the others from the same top-level category
    # half of the time (a kitchen lover also likes cookware), else anywhere.
    n_fav = rng.integers(2, 4, n_users)
    fav = np.full((n_users, 3), -1)
    fav[:, 0] = rng.choice(n_leaves, size=n_users, p=cat.leaf_weight)
    for slot in (1, 2):
        fav[:, slot] = _pick_new_leaf(rng, cat, fav, anchor=fav[:, 0])
    fav[n_fav == 2, 2] = -1

    drifts = rng.random(n_users) < _DRIFT_SHARE
    drift_slot = rng.integers(0, n_fav)
    drift_to = _pick_new_leaf(rng, cat, fav, anchor=fav[np.arange(n_users), drift_slot])
    drift_day = np.where(drifts, rng.uniform(0.4, 0.6, n_users) * n_days, np.inf)
    fav_after = fav.copy()
    fav_after[drifts, drift_slot[drifts]] = drift_to[drifts]
    drift_from = np.where(drifts, fav[np.arange(n_users), drift_slot], -1)

    fav_brands = _pick_brands(rng, cat, fav)
    tier = rng.choice(3, size=n_users, p=_PRICE_TIER_P)
    band = np.asarray(_PRICE_TIER_BAND)[tier] * np.exp(rng.normal(0.0, 0.08, (n_users, 1)))
    country = rng.choice(len(COUNTRIES), size=n_users, p=_COUNTRY_WEIGHTS)
    return Customers(activity=activity, rate=rate, join_day=join, leave_day=leave, n_fav=n_fav,
                  fav_before=fav, fav_after=fav_after, drift_day=drift_day,
                  drift_from=drift_from, drift_to=np.where(drifts, drift_to, -1),
                  fav_brands=fav_brands, tier=tier, rel_low=band[:, 0], rel_high=band[:, 1],
                  country=country)


def _pick_new_leaf(rng: np.random.Generator, cat: Catalogue, taken: np.ndarray,
                   anchor: np.ndarray) -> np.ndarray:
    """A leaf per user not in `taken`: half the time under the anchor leaf's top level."""
    n_users, n_leaves = len(taken), len(cat.leaf_paths)
    same_top = rng.random(n_users) < 0.5
    weight = np.broadcast_to(cat.leaf_weight, (n_users, n_leaves)).copy()
    weight[same_top] *= cat.leaf_top[None, :] == cat.leaf_top[anchor[same_top], None]
    rows = np.repeat(np.arange(n_users), taken.shape[1])
    cols = taken.ravel()
    keep = cols >= 0
    weight[rows[keep], cols[keep]] = 0.0
    empty = weight.sum(axis=1) == 0  # a top level with no leaf left: fall back to anywhere
    if empty.any():
        weight[empty] = cat.leaf_weight
        weight[rows[keep & empty[rows]], cols[keep & empty[rows]]] = 0.0
    return choice_rows(rng, weight)


def _pick_brands(rng: np.random.Generator, cat: Catalogue, fav: np.ndarray) -> np.ndarray:
    """1-3 distinct brands per user, weighted by how many items they sell in the user's favourites."""
    n_users, n_brands = len(fav), len(cat.brand_names)
    counts = np.zeros((len(cat.leaf_paths), n_brands))
    np.add.at(counts, (cat.item_leaf, cat.item_brand), 1.0)
    weight = np.zeros((n_users, n_brands))
    for slot in range(fav.shape[1]):
        has = fav[:, slot] >= 0
        weight[has] += counts[fav[has, slot]]
    n_brand = np.minimum(rng.integers(1, 4, n_users), (weight > 0).sum(axis=1))
    brands = np.full((n_users, 3), -1)
    for slot in range(3):
        pick = choice_rows(rng, weight)
        use = slot < n_brand
        brands[use, slot] = pick[use]
        weight[use, pick[use]] = 0.0
    return brands

