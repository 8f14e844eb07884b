"""The synthetic shop's behaviour: sessions, views and the funnel that follows them.

Why it is simulated per session rather than per event: the planted preferences act on what a
session browses (a favourite category or brand, or exploration) and on which of the viewed
items move on to click, cart and purchase, as in a real shop, so the signal is there to learn
but never spelled out. Times are microseconds since day 0 of the period (``US``, ``DAY_US``).
"""

from __future__ import annotations

import numpy as np

from analytics import schema as S
from analytics.synth_catalogue import Catalogue
from analytics.synth_customers import Customers
from analytics.synth_draws import choice_rows

__all__ = ["DAY_US", "US", "make_events", "max_sessions", "funnel_probabilities"]

US = 1_000_000
DAY_US = 86_400 * US

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
_CODE = {name: np.int8(i) for i, name in enumerate(S.EVENT_TYPES)}


def make_events(rng: np.random.Generator, cat: Catalogue, users: Customers,
                n_days: int) -> dict[str, np.ndarray]:
    """Every event of the period as flat arrays (user, item, type code, ts, session, qty, rating),
    sorted by (user, ts); events after the end of the period are dropped."""
    sess = _make_sessions(rng, cat, users)
    views = _make_views(rng, cat, users, sess)
    return _funnel(rng, cat, users, sess, views, n_days)


def max_sessions(n_users: int, n_days: int) -> int:
    """An upper bound on the sessions of ``n_users`` customers over ``n_days``: session starts are
    at least ``2 * _SESSION_GAP_H`` hours apart (``_make_sessions``'s cap). A shop written in blocks
    pads its session ids to this bound's width, known before the first block is drawn."""
    return n_users * max(1, int(np.ceil(n_days * 24 / (2 * _SESSION_GAP_H))))


def _make_sessions(rng: np.random.Generator, cat: Catalogue, users: Customers) -> dict[str, np.ndarray]:
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
    start_us = (day * DAY_US).astype(np.int64)

    # Interest: a current favourite category, a favourite brand, or exploration by popularity.
    late = day >= users.drift_day[user]
    favs = np.where(late[:, None], users.fav_after[user], users.fav_before[user])
    n_fav = users.n_fav[user]
    weights = np.zeros((len(user), 3))
    weights[n_fav == 2, :2] = _FAV_WEIGHTS[2]
    weights[n_fav == 3] = _FAV_WEIGHTS[3]
    fav_leaf = favs[np.arange(len(user)), choice_rows(rng, weights)]
    brand_weights = (users.fav_brands[user] >= 0).astype(float)
    fav_brand = users.fav_brands[user][np.arange(len(user)), choice_rows(rng, brand_weights)]
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


def _make_views(rng: np.random.Generator, cat: Catalogue, users: Customers,
                sess: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Views: per session a geometric number, items by popularity re-weighted by taste."""
    n_views = np.minimum(rng.geometric(0.22, len(sess["user"])), _MAX_VIEWS)
    session = np.repeat(np.arange(len(n_views)), n_views)
    user = sess["user"][session]
    gaps = (10 + np.minimum(rng.exponential(40.0, len(session)), 110)) * US
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


def _is_fav_brand(cat: Catalogue, users: Customers, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    brand = cat.item_brand[item]
    fav = users.fav_brands[user]
    return (brand == fav[..., 0]) | (brand == fav[..., 1]) | (brand == fav[..., 2])


def _in_band(cat: Catalogue, users: Customers, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    ratio = cat.item_ratio[item]
    return (ratio >= users.rel_low[user]) & (ratio <= users.rel_high[user])


def funnel_probabilities(fc: np.ndarray, fb: np.ndarray, ib: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(click | seen), P(cart | click), P(purchase | cart) of items for customers, from whether each
    item is in a favourite category (``fc``), of a favourite brand (``fb``) and in the customer's
    price band (``ib``), as boolean arrays.

    Why public: the shopper simulator (:mod:`analytics.shopper_model`) answers a shown list with the
    same planted tastes that generated the shop's history, so its truth is the shop's truth.
    """
    return (0.14 + 0.08 * fc + 0.06 * fb + 0.04 * ib,
            0.09 + 0.10 * fb + 0.10 * ib + 0.05 * fc,
            0.25 + 0.15 * ib + 0.10 * fb)


def _funnel(rng: np.random.Generator, cat: Catalogue, users: Customers, sess: dict[str, np.ndarray],
            views: dict[str, np.ndarray], n_days: int) -> dict[str, np.ndarray]:
    """view -> click -> (favourite) -> cart -> purchase -> (return | rating), as flat arrays."""
    user, item, ts = views["user"], views["item"], views["ts"]
    n = len(item)
    fb = _is_fav_brand(cat, users, user, item)
    ib = _in_band(cat, users, user, item)
    favs = np.where(sess["late"][views["session"], None], users.fav_after[user], users.fav_before[user])
    fc = (favs == cat.item_leaf[item][:, None]).any(axis=1)

    def secs(low: float, high: float, size: int) -> np.ndarray:
        return (rng.uniform(low, high, size) * US).astype(np.int64)

    p_click, p_cart, p_buy = funnel_probabilities(fc, fb, ib)
    clicked = rng.random(n) < p_click
    click_ts = ts + secs(5, 20, n)
    faved = clicked & (rng.random(n) < 0.03 + 0.05 * fb + 0.03 * fc)
    carted = clicked & (rng.random(n) < p_cart)
    cart_ts = click_ts + secs(10, 60, n)
    bought = carted & (rng.random(n) < p_buy)
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

    keep = events["ts"] < n_days * DAY_US
    order = np.lexsort((events["ts"][keep], events["user"][keep]))
    return {k: v[keep][order] for k, v in events.items()}

