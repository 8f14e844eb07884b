"""The report's dates and profile card, all stated against one reference date.

A report is read days or weeks after the data it describes, so every "days since" must say since
*what*: the data's reference date (:attr:`explain.types.CustomerExplanation.as_of`, the moment the
list, its features and the profile are computed as of). The header states it, and the card gives
each moment as a date with its distance before that reference date, computed from the same two
dates on the page, so a reader can check one against the other. The profile's ``recency_days``
counts from the last *purchase* (:mod:`analytics.profiles`), so it is shown as the last purchase,
never beside "last active" as if both were one figure.

Money (what the customer spent, their price band) is written in the shop's currency by
:func:`dashboard.money.format_money`; the profile carries the code under ``"currency"``, put there
by :mod:`workflows.reports` from ``settings.currency`` (the shop's default where it is missing).
"""

from __future__ import annotations

import html
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dashboard.explanation_figures import format_value
from dashboard.money import DEFAULT_CURRENCY, format_money

__all__ = ["utc_text", "days_before", "reference_line", "profile_card"]

# In the card's order: short figures first, two to a line, then the long ones, one to a line.
_PROFILE_LABELS = {
    "segment": "Segment",
    "n_events": "Events",
    "n_purchases": "Purchases",
    "frequency": "Days with a purchase",
    "monetary": "Spent",
    "last_active": "Last active",
    "recency_days": "Last purchase",
    "favourite_categories": "Favourite categories",
    "favourite_brands": "Favourite brands",
    "price_band": "Price band",
}
_WIDE = {"last_active", "recency_days", "favourite_categories", "favourite_brands", "price_band"}
# Shown in the header / only steer which fields are filled and how money is written.
_PROFILE_HIDDEN = {"user_id", "time_based", "currency"}
_TIME_KEYS = ("last_active", "recency_days", "frequency")  # meaningless for order-only shops: left out there


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def utc_text(moment: datetime) -> str:
    """``2024-03-30 22:21:57 UTC``; naive moments are UTC already (event times are stored so)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def days_before(moment: datetime, as_of: datetime) -> int:
    """Whole days from ``moment`` to the reference date (what "N days before" on the page says)."""
    return math.floor((_naive_utc(as_of) - _naive_utc(moment)).total_seconds() / 86400)


def _before_words(moment: datetime, as_of: datetime) -> str:
    days = days_before(moment, as_of)
    if days < 1:
        return "less than a day before the reference date"
    return f"{days} day{'s' if days != 1 else ''} before the reference date"


def reference_line(as_of: datetime | None, time_based: bool) -> str:
    """The header's statement of the data's reference date (HTML)."""
    if as_of is None:
        return ("<strong>Reference date:</strong> not recorded for this report; the data is the shop's as of "
                "the model version below.")
    if not time_based:
        return (f"<strong>Reference date:</strong> {_e(utc_text(as_of))}. This shop records the order of "
                "events, not real dates, so the report says nothing about how long ago anything happened.")
    return (f"<strong>Reference date:</strong> {_e(utc_text(as_of))}. Everything in this report (the list, "
            "its reasons and the profile) is computed from the customer's activity before this moment; "
            "“days before” counts back from it.")


def _moment_value(moment: datetime, as_of: datetime | None) -> str:
    if as_of is None:
        return utc_text(moment)
    return f"{utc_text(moment)} ({_before_words(moment, as_of)})"


def _last_purchase(recency_days: float, as_of: datetime | None) -> str:
    """``recency_days`` as the moment it counts from, so it reads against the reference date."""
    if as_of is None:
        return f"{format_value(recency_days)} days before the data's reference date"
    return _moment_value(_naive_utc(as_of) - timedelta(days=recency_days), as_of)


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format_value(value)
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict) and {"p25", "median", "p75"} <= value.keys():
        basis = f", {value['basis']}" if value.get("basis") else ""
        return f"{_value(value['p25'])} – {_value(value['p75'])} (median {_value(value['median'])}{basis})"
    if isinstance(value, dict):
        share = value.get("share")
        named = [str(v) for key, v in value.items() if key != "share" and v is not None]
        if isinstance(share, (int, float)) and named:
            return f"{', '.join(named)} ({share:.0%})"
        return ", ".join(f"{key}: {_value(v)}" for key, v in value.items())
    if isinstance(value, (list, tuple)):
        return "; ".join(_value(v) for v in value) or "—"
    return str(value)


def _money(value: Any, currency: str) -> str:
    """An amount with the currency, "—" where it is unknown."""
    return format_money(value, currency) if isinstance(value, (int, float)) and value == value else "—"


def _price_band(band: dict[str, Any], currency: str) -> str:
    basis = f", {band['basis']}" if band.get("basis") else ""
    return (f"{_money(band['p25'], currency)} – {_money(band['p75'], currency)} "
            f"(median {_money(band['median'], currency)}{basis})")


def _row(key: str, value: Any, as_of: datetime | None, profile: dict[str, Any]) -> str | None:
    """One ``<dt>/<dd>`` pair, or None for a row with nothing to say."""
    currency = str(profile.get("currency") or DEFAULT_CURRENCY)
    if key == "monetary" and value is not None:
        return _pair(key, _money(value, currency))
    if key == "price_band" and isinstance(value, dict) and {"p25", "median", "p75"} <= value.keys():
        return _pair(key, _price_band(value, currency))
    if key == "recency_days":
        if value is None:
            return None if not profile.get("n_purchases") else _pair(key, "—")
        return _pair(key, _last_purchase(float(value), as_of))
    if key == "last_active" and isinstance(value, datetime):
        return _pair(key, _moment_value(value, as_of))
    return _pair(key, _value(value))


def _pair(key: str, text: str) -> str:
    label = _PROFILE_LABELS.get(key) or key.replace("_", " ").capitalize()
    wide = ' class="wide"' if key in _WIDE or key not in _PROFILE_LABELS else ""
    return f"<dt{wide}>{_e(label)}</dt><dd{wide}>{_e(text)}</dd>"


def profile_card(profile: dict[str, Any], as_of: datetime | None) -> str:
    """The customer's profile as a compact card (HTML); its moments read against ``as_of``."""
    time_based = profile.get("time_based", True) is not False
    keys = [key for key in profile if key not in _PROFILE_HIDDEN and (time_based or key not in _TIME_KEYS)]
    short = [key for key in _PROFILE_LABELS if key in keys and key not in _WIDE]
    ordered = short + [key for key in _PROFILE_LABELS if key in _WIDE and key in keys] + [
        key for key in keys if key not in _PROFILE_LABELS]
    rows = [row for key in ordered if (row := _row(key, profile[key], as_of, profile)) is not None]
    if not rows or (profile.get("segment") is None and not profile.get("n_events")):
        return ('<div class="card"><h2>Profile</h2><p>No profile: this customer has no recorded behaviour.</p>'
                "</div>")
    return f'<div class="card"><h2>Profile</h2><dl class="profile">{"".join(rows)}</dl></div>'
