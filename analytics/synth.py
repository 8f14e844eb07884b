"""The synthetic demo shop: a catalogue, customers with hidden tastes, and their behaviour.

Why it exists: the demo (`make run`) and the benchmarks need a shop whose behaviour is
realistic enough to train on, and the explanation tests need to know the *real* causes behind
the behaviour. So the generator plants preferences in every customer and writes them, apart
from the behaviour, to ``truth/preferences.parquet``; an explanation that says "you like
Nordline knives" can then be checked against what was actually planted.

What is planted (all of it driven by one ``numpy`` generator, so a seed fixes every byte):

* A catalogue with a three-level category tree ("Home > Kitchen > Knives", 67 leaves), four
  brands per level-2 category (a brand sells in the few related leaves under it), log-normal
  prices per leaf shifted by a per-brand premium, readable titles ("Nordline Pro Chef Knife
  20cm") and Zipf-like popularity within each leaf.
* Customers with 2-3 favourite leaf categories (the first is the main one), 1-3 favourite
  brands that sell in those categories, a price band relative to each category's median price,
  an activity level, an active span (some join late, some churn), and drift: about 30 % swap one
  favourite category for another at a day between 40 % and 60 % of the period.
* Sessions: about 60 % browse a current favourite category, 15 % a favourite brand and 25 %
  explore a popularity-weighted random category; 40 % of sessions continue the previous one's
  interest. Within a session, items are drawn by popularity and re-weighted towards the
  customer's favourite brands and price band. Each view may lead to click -> cart -> purchase
  (purchases are about 1-3 % of views), likelier for favourite brands and in-band prices;
  clicks may lead to a favourite; purchases may be returned 2-10 days later or rated 1-14 days
  later (ratings are higher for favourite brands and in-band prices, low after a return).
  Returns and ratings carry no session id: they happen outside a browsing session.

Events are sorted by (user_id, ts); within a session the funnel of one item is ordered
view < click < favourite/cart < purchase, and a return always follows its purchase. Events
after the end of the period (a late return, say) are not written.

Scale: about 78 events per user with the default mix, whatever the item count. Measured on the
shared 2-core dev machine (wall time of the call, peak RSS of the process): the default
``--users 5000`` gives ~385k events in 0.5-1.8 s (0.3 GB); ``--users 13000`` gives ~1.0M events
in ~3 s (0.5 GB); ``--users 130000`` gives ~10.2M events in 16-25 s (2.7 GB). Use
``--items 20000`` or so for the big runs so that the catalogue grows with the crowd.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics import schema as S
from atomic import replace_with
from errors import RecsightError

__all__ = ["SynthSummary", "generate_shop", "TRUTH_README", "PERIOD_START"]

log = logging.getLogger(__name__)

PERIOD_START = datetime(2024, 1, 1)
"""Day 0 of every synthetic shop: fixed, so that a seed gives the same bytes on any day."""

TRUTH_FILE = "preferences.parquet"

TRUTH_README = """\
# Planted truth of the synthetic shop

`preferences.parquet` has one row per user: the hidden preferences that generated their
behaviour. Nothing here is visible in events/items/users; it exists so tests can check that
profiles, recommendations and explanations recover real causes.

| column | meaning |
|---|---|
| user_id | the raw shop id, as in events.parquet ("U000123") |
| activity | "low", "medium" or "high": the level the session rate was drawn around |
| sessions_per_day | the exact Poisson rate of sessions per active day used for this user |
| active_from, active_until | the span in which the user's sessions start (joining late / churning) |
| favourite_categories | list of 2-3 full three-level leaf category paths ("Home > Kitchen > Knives"), most preferred first (weights 0.6/0.4 or 0.5/0.3/0.2 when a session picks one), in force for the whole period, or until drift_ts when the user drifts |
| favourite_categories_after_drift | the same list from drift_ts on: favourite_categories with drift_from replaced by drift_to in the same position; equal to favourite_categories when the user does not drift |
| drift_ts | when the user's tastes changed (sessions starting at or after it use the new list); null if they never do |
| drift_from, drift_to | the leaf category dropped and the one taken up at drift_ts; null if no drift |
| favourite_brands | list of 1-3 brand names, all selling in the user's initial favourite categories |
| price_tier | "budget", "mid" or "premium" |
| price_rel_low, price_rel_high | the generating rule for price: an item is "in band" for this user when its price divided by the median item price of its leaf category (computable from items.parquet) lies in [price_rel_low, price_rel_high] |
| price_low, price_high | the same band in currency for the user's main favourite category (favourite_categories[0]): price_rel_low/high times that category's median item price |

Effects of the planted preferences: sessions browse current favourite categories (~60 %) or
favourite brands (~15 %) or explore (~25 %), and 40 % continue the previous session's
interest; items within a session are drawn by popularity re-weighted x3 for a favourite brand
and x2 for an in-band price; click, cart and purchase probabilities rise for favourite
brands, in-band prices and favourite categories; ratings are higher for favourite brands and
in-band prices; returns are likelier out of band.
"""

# ----------------------------------------------------------------------------- catalogue
# top > mid > leaf: (typical price, product nouns, size/variant words). Brands are made per mid.
_TREE: dict[str, dict[str, dict[str, tuple[float, tuple[str, ...], tuple[str, ...]]]]] = {
    "Home": {
        "Kitchen": {
            "Knives": (45, ("Chef Knife", "Santoku Knife", "Paring Knife", "Bread Knife"), ("15cm", "20cm", "Set of 3")),
            "Cookware": (60, ("Frying Pan", "Saucepan", "Casserole", "Wok"), ("24cm", "28cm", "2.5L")),
            "Coffee Makers": (90, ("Espresso Machine", "French Press", "Drip Coffee Maker", "Moka Pot"), ("1L", "6 Cup", "Steel")),
            "Cutting Boards": (25, ("Cutting Board", "Chopping Block", "Serving Board"), ("Oak", "Bamboo", "Large")),
        },
        "Bedding": {
            "Pillows": (30, ("Pillow", "Memory Foam Pillow", "Pillow Pair"), ("Soft", "Firm", "50x75")),
            "Duvets": (80, ("Duvet", "Summer Duvet", "All-Season Duvet"), ("Single", "Double", "King")),
            "Bed Sheets": (40, ("Fitted Sheet", "Flat Sheet", "Sheet Set"), ("Cotton", "Linen", "Double")),
        },
        "Decor": {
            "Candles": (15, ("Scented Candle", "Pillar Candle", "Tealight Set"), ("Vanilla", "Cedar", "Large")),
            "Vases": (30, ("Vase", "Bud Vase", "Floor Vase"), ("Glass", "Ceramic", "Tall")),
            "Picture Frames": (18, ("Picture Frame", "Collage Frame", "Poster Frame"), ("A4", "10x15", "Oak")),
            "Rugs": (120, ("Area Rug", "Runner Rug", "Round Rug"), ("120x170", "160x230", "Wool")),
        },
    },
    "Electronics": {
        "Audio": {
            "Headphones": (120, ("Over-Ear Headphones", "Noise-Cancelling Headphones", "Studio Headphones"), ("Wireless", "Black", "Foldable")),
            "Speakers": (90, ("Bluetooth Speaker", "Smart Speaker", "Bookshelf Speaker"), ("Portable", "20W", "Pair")),
            "Earbuds": (70, ("True Wireless Earbuds", "Sport Earbuds", "In-Ear Earphones"), ("White", "ANC", "Black")),
        },
        "Computers": {
            "Laptops": (900, ("Laptop", "Ultrabook", "Gaming Laptop"), ("14 inch", "16 inch", "1TB")),
            "Keyboards": (60, ("Mechanical Keyboard", "Wireless Keyboard", "Compact Keyboard"), ("UK Layout", "RGB", "Silent")),
            "Mice": (35, ("Wireless Mouse", "Gaming Mouse", "Vertical Mouse"), ("Black", "Rechargeable", "Silent")),
            "Monitors": (250, ("Monitor", "Curved Monitor", "4K Monitor"), ("24 inch", "27 inch", "32 inch")),
        },
        "Phones": {
            "Smartphones": (500, ("Smartphone", "5G Smartphone", "Compact Phone"), ("128GB", "256GB", "Dual SIM")),
            "Phone Cases": (18, ("Phone Case", "Wallet Case", "Rugged Case"), ("Clear", "Leather", "Black")),
            "Chargers": (25, ("Fast Charger", "Wireless Charger", "Power Bank"), ("30W", "65W", "10000mAh")),
        },
        "Cameras": {
            "Action Cameras": (250, ("Action Camera", "Helmet Camera", "360 Camera"), ("4K", "Waterproof", "Bundle")),
            "Tripods": (45, ("Tripod", "Travel Tripod", "Mini Tripod"), ("Aluminium", "Carbon", "150cm")),
            "Memory Cards": (20, ("microSD Card", "SD Card", "Card Reader"), ("64GB", "128GB", "256GB")),
        },
    },
    "Fashion": {
        "Women": {
            "Dresses": (55, ("Midi Dress", "Wrap Dress", "Summer Dress"), ("Navy", "Floral", "Black")),
            "Blouses": (35, ("Blouse", "Silk Blouse", "Shirt Blouse"), ("White", "Striped", "Cream")),
            "Handbags": (80, ("Tote Bag", "Crossbody Bag", "Shoulder Bag"), ("Leather", "Tan", "Black")),
        },
        "Men": {
            "Shirts": (40, ("Oxford Shirt", "Linen Shirt", "Flannel Shirt"), ("Slim Fit", "Blue", "White")),
            "Jackets": (110, ("Rain Jacket", "Bomber Jacket", "Down Jacket"), ("Olive", "Navy", "Black")),
            "Watches": (150, ("Chronograph Watch", "Dive Watch", "Dress Watch"), ("Steel", "Leather Strap", "40mm")),
        },
        "Shoes": {
            "Sneakers": (85, ("Running Sneakers", "Canvas Sneakers", "Trail Sneakers"), ("White", "Grey", "Size 42")),
            "Boots": (120, ("Chelsea Boots", "Hiking Boots", "Ankle Boots"), ("Brown", "Black", "Waterproof")),
            "Sandals": (40, ("Sandals", "Slides", "Trekking Sandals"), ("Tan", "Black", "Cork")),
        },
        "Accessories": {
            "Sunglasses": (60, ("Sunglasses", "Aviator Sunglasses", "Sport Sunglasses"), ("Polarised", "Tortoise", "Black")),
            "Scarves": (25, ("Scarf", "Wool Scarf", "Silk Scarf"), ("Grey", "Check", "Red")),
            "Belts": (30, ("Leather Belt", "Canvas Belt", "Reversible Belt"), ("Brown", "Black", "95cm")),
        },
    },
    "Sports": {
        "Fitness": {
            "Yoga Mats": (30, ("Yoga Mat", "Travel Yoga Mat", "Cork Yoga Mat"), ("4mm", "6mm", "Purple")),
            "Dumbbells": (45, ("Dumbbell Pair", "Adjustable Dumbbell", "Kettlebell"), ("5kg", "10kg", "20kg")),
            "Resistance Bands": (15, ("Resistance Band Set", "Loop Bands", "Pull-Up Band"), ("Light", "Heavy", "5 Pack")),
        },
        "Outdoor": {
            "Tents": (180, ("Dome Tent", "Backpacking Tent", "Family Tent"), ("2 Person", "4 Person", "Ultralight")),
            "Backpacks": (75, ("Hiking Backpack", "Daypack", "Travel Backpack"), ("20L", "35L", "50L")),
            "Sleeping Bags": (90, ("Sleeping Bag", "Down Sleeping Bag", "Summer Sleeping Bag"), ("-5C", "3 Season", "Compact")),
        },
        "Cycling": {
            "Helmets": (60, ("Road Helmet", "MTB Helmet", "Commuter Helmet"), ("M", "L", "MIPS")),
            "Bike Lights": (25, ("Front Light", "Rear Light", "Light Set"), ("USB", "800lm", "Bright")),
            "Cycling Jerseys": (50, ("Cycling Jersey", "Thermal Jersey", "Aero Jersey"), ("Short Sleeve", "Long Sleeve", "M")),
        },
    },
    "Beauty": {
        "Skincare": {
            "Moisturisers": (25, ("Day Cream", "Night Cream", "Gel Moisturiser"), ("50ml", "SPF 30", "Sensitive")),
            "Cleansers": (15, ("Foaming Cleanser", "Micellar Water", "Cleansing Balm"), ("200ml", "400ml", "Gentle")),
            "Serums": (35, ("Vitamin C Serum", "Hyaluronic Serum", "Retinol Serum"), ("30ml", "15ml", "Travel")),
        },
        "Makeup": {
            "Lipsticks": (18, ("Lipstick", "Liquid Lipstick", "Lip Balm"), ("Red", "Nude", "Berry")),
            "Mascaras": (16, ("Mascara", "Volume Mascara", "Waterproof Mascara"), ("Black", "Brown", "Lengthening")),
            "Foundations": (30, ("Foundation", "Tinted Moisturiser", "Concealer"), ("Light", "Medium", "Deep")),
        },
        "Hair": {
            "Shampoos": (10, ("Shampoo", "Dry Shampoo", "Clarifying Shampoo"), ("250ml", "500ml", "Argan")),
            "Conditioners": (10, ("Conditioner", "Hair Mask", "Leave-In Conditioner"), ("250ml", "500ml", "Repair")),
            "Hair Dryers": (70, ("Hair Dryer", "Travel Hair Dryer", "Ionic Hair Dryer"), ("2000W", "Diffuser", "Compact")),
        },
    },
    "Toys": {
        "Building": {
            "Building Sets": (45, ("Building Set", "Castle Set", "Space Station Set"), ("500 Pieces", "1000 Pieces", "Starter")),
            "Marble Runs": (35, ("Marble Run", "Marble Tower", "Marble Run Starter"), ("80 Pieces", "150 Pieces", "Wooden")),
        },
        "Games": {
            "Board Games": (35, ("Strategy Game", "Family Board Game", "Cooperative Game"), ("2-4 Players", "2-6 Players", "Deluxe")),
            "Puzzles": (20, ("Jigsaw Puzzle", "3D Puzzle", "Panorama Puzzle"), ("500 Pieces", "1000 Pieces", "Landscape")),
            "Card Games": (12, ("Card Game", "Party Card Game", "Trick-Taking Game"), ("Travel", "Deluxe", "Expansion")),
        },
        "Baby": {
            "Soft Toys": (18, ("Teddy Bear", "Plush Bunny", "Soft Elephant"), ("25cm", "40cm", "Organic")),
            "Rattles": (10, ("Rattle", "Teether Rattle", "Wooden Rattle"), ("Set of 2", "Blue", "Pink")),
        },
    },
    "Garden": {
        "Tools": {
            "Pruners": (25, ("Bypass Pruner", "Anvil Pruner", "Loppers"), ("Steel", "Ergonomic", "Heavy Duty")),
            "Spades": (35, ("Spade", "Border Spade", "Trowel"), ("Ash Handle", "Stainless", "Compact")),
            "Hoses": (40, ("Garden Hose", "Expandable Hose", "Hose Reel"), ("15m", "30m", "50m")),
        },
        "Plants": {
            "Seeds": (5, ("Tomato Seeds", "Herb Seeds", "Wildflower Seeds"), ("Heirloom", "Organic", "Mix")),
            "Planters": (30, ("Planter", "Window Box", "Hanging Planter"), ("Terracotta", "Large", "Self-Watering")),
            "Fertilisers": (15, ("Plant Food", "Tomato Feed", "Lawn Feed"), ("1L", "5kg", "Organic")),
        },
    },
}

_BRAND_PREFIXES = (
    "Nord", "Vela", "Kito", "Alba", "Brio", "Cora", "Dune", "Elka", "Fjel", "Giro", "Hale", "Iver",
    "Juno", "Kova", "Luma", "Mira", "Nova", "Orla", "Pax", "Quill", "Rhea", "Sol", "Tova", "Ursa",
    "Vito", "Wren", "Xeno", "Yara", "Zeno", "Aster",
)
_BRAND_SUFFIXES = (
    "line", "craft", "works", "ware", "form", "tek", "wood", "field", "stone", "mark", "light",
    "bay", "peak", "hub", "co", "ly", "io", "ora", "ex", "ix",
)
_BRANDS_PER_MID = 4
# Title adjective by price relative to the leaf median: cheap, middling, expensive.
_ADJECTIVES = (("Essential", "Basic", "Everyday"), ("Classic", "Comfort", "Smart"), ("Pro", "Premium", "Signature"))
_COUNTRIES = ("United Kingdom", "Germany", "France", "Netherlands", "Spain", "Italy", "Poland", "Sweden")
_COUNTRY_WEIGHTS = (0.40, 0.15, 0.12, 0.08, 0.08, 0.07, 0.05, 0.05)

# ----------------------------------------------------------------------------- behaviour knobs
_ACTIVITY = ("low", "medium", "high")
_ACTIVITY_P = (0.5, 0.35, 0.15)
_ACTIVITY_RATE = (0.06, 0.2, 0.6)  # sessions per active day
_PRICE_TIERS = ("budget", "mid", "premium")
_PRICE_TIER_P = (0.35, 0.45, 0.20)
_PRICE_TIER_BAND = ((0.35, 0.9), (0.75, 1.35), (1.15, 3.0))  # price / leaf median
_DRIFT_SHARE = 0.3
_P_CONTINUE = 0.4  # a session continues the previous session's interest
_P_FAV_CATEGORY, _P_FAV_BRAND = 0.60, 0.15  # the rest (0.25) explores
_FAV_WEIGHTS = {2: (0.6, 0.4), 3: (0.5, 0.3, 0.2)}
_CANDIDATES = 4  # popularity draws per view, re-weighted by the user's taste
_BRAND_BOOST, _BAND_BOOST = 3.0, 2.0
_MAX_VIEWS = 25
_SESSION_GAP_H = 3.0  # minimum spacing of session starts (before the time-of-day warp)
# Relative session-start density per hour of day (evening peak); max/mean <= 2 keeps warped
# starts at least _SESSION_GAP_H / 2 apart, longer than any session.
_HOUR_WEIGHTS = np.array([0.4, 0.3, 0.25, 0.25, 0.3, 0.4, 0.6, 0.8, 0.9, 1.0, 1.0, 1.1,
                          1.3, 1.2, 1.0, 1.0, 1.1, 1.3, 1.6, 1.9, 1.9, 1.7, 1.2, 0.7])

_US = 1_000_000
_DAY_US = 86_400 * _US
_CODE = {name: np.int8(i) for i, name in enumerate(S.EVENT_TYPES)}


@dataclass(frozen=True)
class SynthSummary:
    """What `generate_shop` wrote; `str()` is the one line the command line prints."""

    out_dir: Path
    n_users: int
    n_items: int
    n_events: int
    events_by_type: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        by_type = ", ".join(f"{name} {count:,}" for name, count in self.events_by_type)
        return (f"synthetic shop: {self.n_users:,} users, {self.n_items:,} items, "
                f"{self.n_events:,} events ({by_type}) -> {self.out_dir}")


@dataclass(frozen=True)
class _Catalogue:
    leaf_paths: list[str]
    leaf_top: np.ndarray          # (L,) top-level index of each leaf
    leaf_weight: np.ndarray       # (L,) share of exploration sessions
    brand_names: list[str]
    item_leaf: np.ndarray         # (N,) items are ordered by leaf
    item_brand: np.ndarray
    item_price: np.ndarray
    item_ratio: np.ndarray        # price / median price of the item's leaf
    leaf_median: np.ndarray       # (L,) median item price per leaf
    leaf_cdf: np.ndarray          # leaf + cumulative popularity share within the leaf
    brand_order: np.ndarray       # item indices ordered by brand
    brand_cdf: np.ndarray         # brand + cumulative popularity share within the brand
    item_number: np.ndarray       # the number in the public item id (a shuffle of 0..N-1)
    titles: list[str]


@dataclass(frozen=True)
class _Users:
    activity: np.ndarray          # (U,) index into _ACTIVITY
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


def generate_shop(out_dir: Path, n_users: int = 5000, n_items: int = 2000, n_days: int = 90,
                  seed: int = 42) -> SynthSummary:
    """Generate the shop and write events/items/users Parquet plus truth/ into `out_dir`.

    Deterministic: the same arguments give byte-identical files. Raises `RecsightError` for
    bad sizes or an unwritable folder.
    """
    _check_args(n_users, n_items, n_days, seed)
    out_dir = Path(out_dir)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    cat = _make_catalogue(rng, n_items)
    users = _make_users(rng, cat, n_users, n_days)
    events = _make_events(rng, cat, users, n_days)
    log.info("generated %d events in %.2f s", len(events["user"]), time.perf_counter() - started)

    uid = _ids("U", np.arange(n_users), 6)
    iid = _ids("I", cat.item_number, 5)
    first_ts = np.full(n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_ts, events["user"], events["ts"])

    try:
        (out_dir / "truth").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecsightError(f"cannot create output folder {out_dir}: {exc.strerror}") from exc
    _write(_events_table(events, uid, iid, cat), out_dir / "events.parquet")
    _write(_items_table(cat, iid), out_dir / "items.parquet")
    _write(_users_table(users, uid, first_ts), out_dir / "users.parquet")
    _write(_truth_table(cat, users, uid), out_dir / "truth" / TRUTH_FILE)
    _write_text(TRUTH_README, out_dir / "truth" / "README.md")

    counts = np.bincount(events["type"], minlength=len(S.EVENT_TYPES))
    summary = SynthSummary(out_dir=out_dir, n_users=n_users, n_items=n_items,
                           n_events=int(counts.sum()),
                           events_by_type=tuple((name, int(c)) for name, c in zip(S.EVENT_TYPES, counts)))
    log.info("%s (%.2f s)", summary, time.perf_counter() - started)
    return summary


def _check_args(n_users: int, n_items: int, n_days: int, seed: int) -> None:
    n_leaves = sum(len(leaves) for mids in _TREE.values() for leaves in mids.values())
    for name, value, low in (("users", n_users, 1), ("items", n_items, n_leaves),
                             ("days", n_days, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise RecsightError(f"--{name} must be a whole number, got {value!r}")
        if value < low:
            why = " (one per leaf category at least)" if name == "items" else ""
            raise RecsightError(f"--{name} must be at least {low}{why}, got {value}")


# ----------------------------------------------------------------------------- catalogue


def _make_catalogue(rng: np.random.Generator, n_items: int) -> _Catalogue:
    leaf_paths, leaf_top, leaf_mid, leaf_spec = [], [], [], []
    mid_index = 0
    for top_i, (top, mids) in enumerate(_TREE.items()):
        for mid, leaves in mids.items():
            for leaf, spec in leaves.items():
                leaf_paths.append(S.CATEGORY_SEPARATOR.join((top, mid, leaf)))
                leaf_top.append(top_i)
                leaf_mid.append(mid_index)
                leaf_spec.append(spec)
            mid_index += 1
    n_leaves, n_mids = len(leaf_paths), mid_index
    leaf_mid_arr = np.array(leaf_mid)

    combos = [p + s for p in _BRAND_PREFIXES for s in _BRAND_SUFFIXES]
    picked = rng.choice(len(combos), size=n_mids * _BRANDS_PER_MID, replace=False)
    brand_names = [combos[i] for i in picked]
    brand_premium = np.exp(rng.normal(0.0, 0.25, len(brand_names)))
    brand_share = 1.0 / np.arange(1, _BRANDS_PER_MID + 1) ** 0.8  # a leading brand per mid

    leaf_weight = np.exp(rng.normal(0.0, 0.5, n_leaves))
    leaf_weight /= leaf_weight.sum()
    per_leaf = 1 + rng.multinomial(n_items - n_leaves, leaf_weight)
    item_leaf = np.repeat(np.arange(n_leaves), per_leaf)

    brand_slot = _choice_rows(rng, np.broadcast_to(brand_share, (n_items, _BRANDS_PER_MID)))
    item_brand = leaf_mid_arr[item_leaf] * _BRANDS_PER_MID + brand_slot
    base = np.array([spec[0] for spec in leaf_spec], dtype=float)
    raw = base[item_leaf] * brand_premium[item_brand] * np.exp(rng.normal(0.0, 0.35, n_items))
    item_price = np.maximum(np.floor(raw) + 0.99, 0.99)
    leaf_median = np.array([np.median(item_price[item_leaf == leaf]) for leaf in range(n_leaves)])
    item_ratio = item_price / leaf_median[item_leaf]

    # Zipf-like popularity inside each leaf: a random rank per item, weight 1 / rank^1.1.
    starts = np.concatenate(([0], np.cumsum(per_leaf)[:-1]))
    rank = np.empty(n_items)
    for leaf in range(n_leaves):
        rank[starts[leaf]:starts[leaf] + per_leaf[leaf]] = rng.permutation(per_leaf[leaf]) + 1
    popularity = 1.0 / rank ** 1.1
    leaf_cdf = _group_cdf(item_leaf, popularity)
    brand_order = np.argsort(item_brand, kind="stable")
    brand_cdf = _group_cdf(item_brand[brand_order], popularity[brand_order])

    tier = np.digitize(item_ratio, (0.85, 1.2))
    adjective = rng.integers(0, 3, n_items)
    noun_pick = rng.integers(0, 1 << 30, n_items)
    spec_pick = rng.integers(0, 1 << 30, n_items)
    titles = []
    for i in range(n_items):
        _, nouns, specs = leaf_spec[item_leaf[i]]
        titles.append(f"{brand_names[item_brand[i]]} {_ADJECTIVES[tier[i]][adjective[i]]} "
                      f"{nouns[noun_pick[i] % len(nouns)]} {specs[spec_pick[i] % len(specs)]}")

    return _Catalogue(
        leaf_paths=leaf_paths, leaf_top=np.array(leaf_top),
        leaf_weight=leaf_weight, brand_names=brand_names,
        item_leaf=item_leaf, item_brand=item_brand, item_price=item_price, item_ratio=item_ratio,
        leaf_median=leaf_median, leaf_cdf=leaf_cdf, brand_order=brand_order, brand_cdf=brand_cdf,
        item_number=rng.permutation(n_items), titles=titles,
    )


def _group_cdf(group: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """`group + cumulative share within the group` for rows sorted by group.

    Sampling a row of group g by popularity is then `searchsorted(cdf, g + u, "right")` with u
    uniform in [0, 1): one vectorised call for millions of draws from different groups.
    """
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    ends = np.r_[starts[1:], len(group)]
    cum = np.cumsum(weight)
    before = np.repeat(np.r_[0.0, cum[starts[1:] - 1]], ends - starts)
    total = np.repeat(cum[ends - 1], ends - starts) - before
    cdf = group + (cum - before) / total
    cdf[ends - 1] = group[ends - 1] + 1.0  # exact, so float error never spills into the next group
    return cdf


def _choice_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One column index per row, drawn with probability proportional to that row's weights."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum <= u[:, None]).sum(axis=1), weights.shape[1] - 1)


# ----------------------------------------------------------------------------- users


def _make_users(rng: np.random.Generator, cat: _Catalogue, n_users: int, n_days: int) -> _Users:
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
    country = rng.choice(len(_COUNTRIES), size=n_users, p=_COUNTRY_WEIGHTS)
    return _Users(activity=activity, rate=rate, join_day=join, leave_day=leave, n_fav=n_fav,
                  fav_before=fav, fav_after=fav_after, drift_day=drift_day,
                  drift_from=drift_from, drift_to=np.where(drifts, drift_to, -1),
                  fav_brands=fav_brands, tier=tier, rel_low=band[:, 0], rel_high=band[:, 1],
                  country=country)


def _pick_new_leaf(rng: np.random.Generator, cat: _Catalogue, taken: np.ndarray,
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
    return _choice_rows(rng, weight)


def _pick_brands(rng: np.random.Generator, cat: _Catalogue, fav: np.ndarray) -> np.ndarray:
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
        pick = _choice_rows(rng, weight)
        use = slot < n_brand
        brands[use, slot] = pick[use]
        weight[use, pick[use]] = 0.0
    return brands


# ----------------------------------------------------------------------------- behaviour


def _make_events(rng: np.random.Generator, cat: _Catalogue, users: _Users,
                 n_days: int) -> dict[str, np.ndarray]:
    sess = _make_sessions(rng, cat, users)
    views = _make_views(rng, cat, users, sess)
    return _funnel(rng, cat, users, sess, views, n_days)


def _make_sessions(rng: np.random.Generator, cat: _Catalogue, users: _Users) -> dict[str, np.ndarray]:
    """Session starts, owners and interests; sorted by (user, start)."""
    n_users = len(users.rate)
    gap = _SESSION_GAP_H / 24.0
    span = users.leave_day - users.join_day
    cap = np.maximum(1, np.floor(span / (2 * gap))).astype(np.int64)
    n_sess = np.clip(rng.poisson(users.rate * span), 1, cap)
    user = np.repeat(np.arange(n_users), n_sess)
    first = np.r_[0, np.cumsum(n_sess)[:-1]]
    rank = np.arange(len(user)) - first[user]

    # Uniform starts with a minimum spacing: sorted uniforms on a shortened span plus rank * gap.
    room = np.maximum(span - 1.0 / 24 - n_sess * gap, 0.0)
    u = np.sort(rng.random(len(user)) + user) - user  # sorted within each user (user is sorted)
    day = users.join_day[user] + u * room[user] + rank * gap
    whole = np.floor(day)
    day = whole + _warp_time_of_day(day - whole)
    start_us = (day * _DAY_US).astype(np.int64)

    # Interest: a current favourite category, a favourite brand, or exploration by popularity.
    late = day >= users.drift_day[user]
    favs = np.where(late[:, None], users.fav_after[user], users.fav_before[user])
    n_fav = users.n_fav[user]
    weights = np.zeros((len(user), 3))
    weights[n_fav == 2, :2] = _FAV_WEIGHTS[2]
    weights[n_fav == 3] = _FAV_WEIGHTS[3]
    fav_leaf = favs[np.arange(len(user)), _choice_rows(rng, weights)]
    brand_weights = (users.fav_brands[user] >= 0).astype(float)
    fav_brand = users.fav_brands[user][np.arange(len(user)), _choice_rows(rng, brand_weights)]
    explore_leaf = rng.choice(len(cat.leaf_paths), size=len(user), p=cat.leaf_weight)

    r = rng.random(len(user))
    by_brand = (r >= _P_FAV_CATEGORY) & (r < _P_FAV_CATEGORY + _P_FAV_BRAND)
    target = np.where(by_brand, fav_brand, np.where(r < _P_FAV_CATEGORY, fav_leaf, explore_leaf))

    # Continuation: a session takes over the interest of the last "fresh" session of its user.
    fresh = (rank == 0) | (rng.random(len(user)) >= _P_CONTINUE)
    source = np.maximum.accumulate(np.where(fresh, np.arange(len(user)), 0))
    return {"user": user, "start": start_us, "late": late,
            "by_brand": by_brand[source], "target": target[source]}


def _warp_time_of_day(frac: np.ndarray) -> np.ndarray:
    """Map uniform fractions of a day onto the evening-peaked hour profile (monotone)."""
    cdf = np.r_[0.0, np.cumsum(_HOUR_WEIGHTS) / _HOUR_WEIGHTS.sum()]
    return np.interp(frac, cdf, np.arange(25) / 24.0)


def _make_views(rng: np.random.Generator, cat: _Catalogue, users: _Users,
                sess: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Views: per session a geometric number, items by popularity re-weighted by taste."""
    n_views = np.minimum(rng.geometric(0.22, len(sess["user"])), _MAX_VIEWS)
    session = np.repeat(np.arange(len(n_views)), n_views)
    user = sess["user"][session]
    gaps = (10 + np.minimum(rng.exponential(40.0, len(session)), 110)) * _US
    cum = np.cumsum(gaps.astype(np.int64))
    first = np.r_[0, np.cumsum(n_views)[:-1]]
    offset = cum - np.repeat(cum[first] - gaps[first].astype(np.int64), n_views)
    ts = sess["start"][session] + offset

    target = sess["target"][session]
    x = target[:, None] + rng.random((len(session), _CANDIDATES))
    by_brand = sess["by_brand"][session]
    cand = np.empty(x.shape, dtype=np.int64)
    cand[~by_brand] = np.searchsorted(cat.leaf_cdf, x[~by_brand], side="right")
    cand[by_brand] = cat.brand_order[np.searchsorted(cat.brand_cdf, x[by_brand], side="right")]
    weight = (1.0 + (_BRAND_BOOST - 1.0) * _is_fav_brand(cat, users, user[:, None], cand)) \
        * (1.0 + (_BAND_BOOST - 1.0) * _in_band(cat, users, user[:, None], cand))
    pick = np.argmax(np.log(weight) + rng.gumbel(size=weight.shape), axis=1)
    item = cand[np.arange(len(session)), pick]
    return {"session": session, "user": user, "item": item, "ts": ts}


def _is_fav_brand(cat: _Catalogue, users: _Users, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    brand = cat.item_brand[item]
    fav = users.fav_brands[user]
    return (brand == fav[..., 0]) | (brand == fav[..., 1]) | (brand == fav[..., 2])


def _in_band(cat: _Catalogue, users: _Users, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    ratio = cat.item_ratio[item]
    return (ratio >= users.rel_low[user]) & (ratio <= users.rel_high[user])


def _funnel(rng: np.random.Generator, cat: _Catalogue, users: _Users, sess: dict[str, np.ndarray],
            views: dict[str, np.ndarray], n_days: int) -> dict[str, np.ndarray]:
    """view -> click -> (favourite) -> cart -> purchase -> (return | rating), as flat arrays."""
    user, item, ts = views["user"], views["item"], views["ts"]
    n = len(item)
    fb = _is_fav_brand(cat, users, user, item)
    ib = _in_band(cat, users, user, item)
    favs = np.where(sess["late"][views["session"], None], users.fav_after[user], users.fav_before[user])
    fc = (favs == cat.item_leaf[item][:, None]).any(axis=1)

    def secs(low: float, high: float, size: int) -> np.ndarray:
        return (rng.uniform(low, high, size) * _US).astype(np.int64)

    clicked = rng.random(n) < 0.14 + 0.08 * fc + 0.06 * fb + 0.04 * ib
    click_ts = ts + secs(5, 20, n)
    faved = clicked & (rng.random(n) < 0.03 + 0.05 * fb + 0.03 * fc)
    carted = clicked & (rng.random(n) < 0.09 + 0.10 * fb + 0.10 * ib + 0.05 * fc)
    cart_ts = click_ts + secs(10, 60, n)
    bought = carted & (rng.random(n) < 0.25 + 0.15 * ib + 0.10 * fb)
    buy_ts = cart_ts + secs(30, 300, n)
    quantity = np.where(rng.random(n) < 0.85, 1, 2 + rng.poisson(0.5, n))
    returned = bought & (rng.random(n) < 0.05 + 0.07 * ~ib - 0.03 * fb)
    rated = bought & (rng.random(n) < np.where(returned, 0.5, 0.25))
    stars = np.clip(np.rint(3.0 + 0.7 * fb + 0.6 * ib + 0.4 * fc - 1.5 * returned
                            + rng.normal(0.0, 0.9, n)), 1, 5)

    parts = [
        (np.ones(n, bool), S.VIEW, ts, False),
        (clicked, S.CLICK, click_ts, False),
        (faved, S.FAVORITE, click_ts + secs(3, 30, n), False),
        (carted, S.CART, cart_ts, True),
        (bought, S.PURCHASE, buy_ts, True),
        (returned, S.RETURN, buy_ts + secs(2 * 86_400, 10 * 86_400, n), True),
        (rated, S.RATING_EVENT, buy_ts + secs(86_400, 14 * 86_400, n), False),
    ]
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "item", "type", "ts", "session", "qty", "rating")}
    for mask, name, when, has_qty in parts:
        idx = np.flatnonzero(mask)
        out["user"].append(user[idx])
        out["item"].append(item[idx])
        out["type"].append(np.full(len(idx), _CODE[name]))
        out["ts"].append(when[idx])
        in_session = name not in (S.RETURN, S.RATING_EVENT)
        out["session"].append(views["session"][idx] if in_session else np.full(len(idx), -1))
        out["qty"].append(quantity[idx] if has_qty else np.zeros(len(idx), np.int64))
        out["rating"].append(stars[idx] if name == S.RATING_EVENT else np.full(len(idx), np.nan))
    events = {k: np.concatenate(v) for k, v in out.items()}

    keep = events["ts"] < n_days * _DAY_US
    order = np.lexsort((events["ts"][keep], events["user"][keep]))
    return {k: v[keep][order] for k, v in events.items()}


# ----------------------------------------------------------------------------- output


def _ids(prefix: str, numbers: np.ndarray, min_width: int) -> pa.Array:
    """"U000123"-style ids built in Arrow (fast for millions), zero-padded to one width."""
    width = max(min_width, len(str(int(numbers.max()))) if len(numbers) else 1)
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers, pa.int64()), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _timestamps(us_since_start: np.ndarray) -> pa.Array:
    base = int((PERIOD_START - datetime(1970, 1, 1)).total_seconds()) * _US
    return pa.array(us_since_start + base, pa.timestamp("us"))


def _events_table(ev: dict[str, np.ndarray], uid: pa.Array, iid: pa.Array, cat: _Catalogue) -> pa.Table:
    has_session = ev["session"] >= 0
    session = _ids("S", ev["session"], 7)
    session = pc.if_else(pa.array(has_session), session, pa.nulls(len(session), pa.string()))
    has_qty = ev["qty"] > 0
    return pa.table({
        S.USER_ID: uid.take(pa.array(ev["user"])),
        S.ITEM_ID: iid.take(pa.array(ev["item"])),
        S.EVENT_TYPE: pa.array(S.EVENT_TYPES).take(pa.array(ev["type"])),
        S.TS: _timestamps(ev["ts"]),
        S.SESSION_ID: session,
        S.QUANTITY: pa.array(ev["qty"].astype(np.int32), mask=~has_qty),
        S.PRICE: pa.array(cat.item_price[ev["item"]]),
        S.RATING: pa.array(ev["rating"], from_pandas=True),
    })


def _items_table(cat: _Catalogue, iid: pa.Array) -> pa.Table:
    order = pa.array(np.argsort(cat.item_number))
    table = pa.table({
        S.ITEM_ID: iid,
        S.TITLE: pa.array(cat.titles),
        S.CATEGORY: pa.array(cat.leaf_paths).take(pa.array(cat.item_leaf)),
        S.BRAND: pa.array(cat.brand_names).take(pa.array(cat.item_brand)),
        S.PRICE: pa.array(cat.item_price),
    })
    return table.take(order)


def _users_table(users: _Users, uid: pa.Array, first_ts: np.ndarray) -> pa.Table:
    """first_seen is the user's first event; null for the rare user whose only session ran
    past the end of the period and so has no event at all."""
    seen = first_ts < np.iinfo(np.int64).max
    return pa.table({
        S.USER_ID: uid,
        S.COUNTRY: pa.array(_COUNTRIES).take(pa.array(users.country)),
        S.FIRST_SEEN: pc.if_else(pa.array(seen), _timestamps(np.where(seen, first_ts, 0)),
                                 pa.nulls(len(seen), pa.timestamp("us"))),
    })


def _truth_table(cat: _Catalogue, users: _Users, uid: pa.Array) -> pa.Table:
    paths = np.array(cat.leaf_paths, dtype=object)
    brands = np.array(cat.brand_names, dtype=object)

    def lists(names: np.ndarray, codes: np.ndarray) -> list[list[str]]:
        return [list(names[row[row >= 0]]) for row in codes]

    drifts = users.drift_from >= 0
    drift_us = np.where(drifts, users.drift_day, 0.0) * _DAY_US
    main_median = cat.leaf_median[users.fav_before[:, 0]]
    return pa.table({
        S.USER_ID: uid,
        "activity": pa.array(np.array(_ACTIVITY, dtype=object)[users.activity]),
        "sessions_per_day": pa.array(users.rate),
        "active_from": _timestamps((users.join_day * _DAY_US).astype(np.int64)),
        "active_until": _timestamps((users.leave_day * _DAY_US).astype(np.int64)),
        "favourite_categories": pa.array(lists(paths, users.fav_before), pa.list_(pa.string())),
        "favourite_categories_after_drift": pa.array(lists(paths, users.fav_after), pa.list_(pa.string())),
        "drift_ts": pc.if_else(pa.array(drifts), _timestamps(drift_us.astype(np.int64)),
                               pa.nulls(len(drifts), pa.timestamp("us"))),
        "drift_from": pa.array(np.where(drifts, paths[np.maximum(users.drift_from, 0)], None)),
        "drift_to": pa.array(np.where(drifts, paths[np.maximum(users.drift_to, 0)], None)),
        "favourite_brands": pa.array(lists(brands, users.fav_brands), pa.list_(pa.string())),
        "price_tier": pa.array(np.array(_PRICE_TIERS, dtype=object)[users.tier]),
        "price_rel_low": pa.array(users.rel_low),
        "price_rel_high": pa.array(users.rel_high),
        "price_low": pa.array(np.round(users.rel_low * main_median, 2)),
        "price_high": pa.array(np.round(users.rel_high * main_median, 2)),
    })


def _write(table: pa.Table, path: Path) -> None:
    _atomic(path, lambda tmp: pq.write_table(table, str(tmp)))


def _write_text(text: str, path: Path) -> None:
    _atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through :mod:`atomic` (readers never see half a file), with ordinary permissions:
    the shop's files are data to share, not secrets."""
    try:
        replace_with(path, write, private=False)
    except OSError as exc:
        raise RecsightError(f"cannot write {path}: {exc.strerror or exc}") from exc
