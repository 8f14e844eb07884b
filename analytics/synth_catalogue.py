"""The synthetic shop's catalogue: a three-level category tree, brands, prices, titles, popularity.

Why it is fixed text rather than random words: the demo and the explanation tests read item
titles and category paths ("Home > Kitchen > Knives", "Nordline Pro Chef Knife 20cm"), so
they must read as a real shop. Every random choice comes from the caller's generator, in a
fixed order, so a seed fixes every byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics import schema as S
from analytics.synth_draws import choice_rows, group_cdf

__all__ = ["Catalogue", "N_LEAVES", "make_catalogue"]

# top > mid > leaf: (typical price, product nouns, size/variant words). Brands are made per mid.
_TREE: dict[str, dict[str, dict[str, tuple[float, tuple[str, ...], tuple[str, ...]]]]] = {
    "Home": {
        "Kitchen": {
            "Knives": (45, ("Chef Knife", "Santoku Knife", "Paring Knife", "Bread Knife"),
                       ("15cm", "20cm", "Set of 3")),
            "Cookware": (60, ("Frying Pan", "Saucepan", "Casserole", "Wok"), ("24cm", "28cm", "2.5L")),
            "Coffee Makers": (90, ("Espresso Machine", "French Press", "Drip Coffee Maker", "Moka Pot"),
                              ("1L", "6 Cup", "Steel")),
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
            "Headphones": (120, ("Over-Ear Headphones", "Noise-Cancelling Headphones", "Studio Headphones"),
                           ("Wireless", "Black", "Foldable")),
            "Speakers": (90, ("Bluetooth Speaker", "Smart Speaker", "Bookshelf Speaker"), ("Portable", "20W", "Pair")),
            "Earbuds": (70, ("True Wireless Earbuds", "Sport Earbuds", "In-Ear Earphones"), ("White", "ANC", "Black")),
        },
        "Computers": {
            "Laptops": (900, ("Laptop", "Ultrabook", "Gaming Laptop"), ("14 inch", "16 inch", "1TB")),
            "Keyboards": (60, ("Mechanical Keyboard", "Wireless Keyboard", "Compact Keyboard"),
                          ("UK Layout", "RGB", "Silent")),
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
            "Sunglasses": (60, ("Sunglasses", "Aviator Sunglasses", "Sport Sunglasses"),
                           ("Polarised", "Tortoise", "Black")),
            "Scarves": (25, ("Scarf", "Wool Scarf", "Silk Scarf"), ("Grey", "Check", "Red")),
            "Belts": (30, ("Leather Belt", "Canvas Belt", "Reversible Belt"), ("Brown", "Black", "95cm")),
        },
    },
    "Sports": {
        "Fitness": {
            "Yoga Mats": (30, ("Yoga Mat", "Travel Yoga Mat", "Cork Yoga Mat"), ("4mm", "6mm", "Purple")),
            "Dumbbells": (45, ("Dumbbell Pair", "Adjustable Dumbbell", "Kettlebell"), ("5kg", "10kg", "20kg")),
            "Resistance Bands": (15, ("Resistance Band Set", "Loop Bands", "Pull-Up Band"),
                                 ("Light", "Heavy", "5 Pack")),
        },
        "Outdoor": {
            "Tents": (180, ("Dome Tent", "Backpacking Tent", "Family Tent"), ("2 Person", "4 Person", "Ultralight")),
            "Backpacks": (75, ("Hiking Backpack", "Daypack", "Travel Backpack"), ("20L", "35L", "50L")),
            "Sleeping Bags": (90, ("Sleeping Bag", "Down Sleeping Bag", "Summer Sleeping Bag"),
                              ("-5C", "3 Season", "Compact")),
        },
        "Cycling": {
            "Helmets": (60, ("Road Helmet", "MTB Helmet", "Commuter Helmet"), ("M", "L", "MIPS")),
            "Bike Lights": (25, ("Front Light", "Rear Light", "Light Set"), ("USB", "800lm", "Bright")),
            "Cycling Jerseys": (50, ("Cycling Jersey", "Thermal Jersey", "Aero Jersey"),
                                ("Short Sleeve", "Long Sleeve", "M")),
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
            "Hair Dryers": (70, ("Hair Dryer", "Travel Hair Dryer", "Ionic Hair Dryer"),
                            ("2000W", "Diffuser", "Compact")),
        },
    },
    "Toys": {
        "Building": {
            "Building Sets": (45, ("Building Set", "Castle Set", "Space Station Set"),
                              ("500 Pieces", "1000 Pieces", "Starter")),
            "Marble Runs": (35, ("Marble Run", "Marble Tower", "Marble Run Starter"),
                            ("80 Pieces", "150 Pieces", "Wooden")),
        },
        "Games": {
            "Board Games": (35, ("Strategy Game", "Family Board Game", "Cooperative Game"),
                            ("2-4 Players", "2-6 Players", "Deluxe")),
            "Puzzles": (20, ("Jigsaw Puzzle", "3D Puzzle", "Panorama Puzzle"),
                        ("500 Pieces", "1000 Pieces", "Landscape")),
            "Card Games": (12, ("Card Game", "Party Card Game", "Trick-Taking Game"),
                           ("Travel", "Deluxe", "Expansion")),
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

N_LEAVES = sum(len(leaves) for mids in _TREE.values() for leaves in mids.values())
"""Leaf categories in the tree (67): the smallest catalogue has one item in each."""


@dataclass(frozen=True)
class Catalogue:
    """The catalogue as arrays: L leaf categories, N items (ordered by leaf), their brands and prices."""

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


def make_catalogue(rng: np.random.Generator, n_items: int) -> Catalogue:
    """Walk the tree, pick the brands, then draw items per leaf with prices, popularity and titles."""
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

    brand_slot = choice_rows(rng, np.broadcast_to(brand_share, (n_items, _BRANDS_PER_MID)))
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
    leaf_cdf = group_cdf(item_leaf, popularity)
    brand_order = np.argsort(item_brand, kind="stable")
    brand_cdf = group_cdf(item_brand[brand_order], popularity[brand_order])

    tier = np.digitize(item_ratio, (0.85, 1.2))
    adjective = rng.integers(0, 3, n_items)
    noun_pick = rng.integers(0, 1 << 30, n_items)
    spec_pick = rng.integers(0, 1 << 30, n_items)
    titles = []
    for i in range(n_items):
        _, nouns, specs = leaf_spec[item_leaf[i]]
        titles.append(f"{brand_names[item_brand[i]]} {_ADJECTIVES[tier[i]][adjective[i]]} "
                      f"{nouns[noun_pick[i] % len(nouns)]} {specs[spec_pick[i] % len(specs)]}")

    return Catalogue(
        leaf_paths=leaf_paths, leaf_top=np.array(leaf_top),
        leaf_weight=leaf_weight, brand_names=brand_names,
        item_leaf=item_leaf, item_brand=item_brand, item_price=item_price, item_ratio=item_ratio,
        leaf_median=leaf_median, leaf_cdf=leaf_cdf, brand_order=brand_order, brand_cdf=brand_cdf,
        item_number=rng.permutation(n_items), titles=titles,
    )

