"""Money as every page, download and report shows it: one rule for the shop's one currency.

The shop's data holds bare numbers; which currency they are in is a setting
(``settings.Settings.currency``, ``RECSIGHT_CURRENCY``). Before this module each place printed
revenue and prices its own way (the overview switched to whole units from 1,000 up, so one
segment row read "0.00" beside "12,345"), and none said the currency. Now every amount goes
through :func:`format_money`, so they all read alike:

* the currencies with a well-known symbol are written with it in front: ``€1,234.50``,
  ``£0.00``, ``$12.00``, ``¥1,235`` (JPY), ``CN¥88.00`` (CNY, told apart from the yen as the
  English locale does);
* every other currency by its code after the number: ``1,234.50 SEK``;
* always the currency's own decimals (2; 0 for JPY, KRW...; 3 for KWD, BHD...), zero included,
  so a column of amounts lines up; a minus sign goes in front of everything: ``-€3.00``.

Headers and axis titles name the code, ``Revenue (EUR)``, so a CSV or a chart says what its
numbers are in even where its cells are plain numbers. Pure functions, no Dash.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from settings import DEFAULT_CURRENCY

__all__ = ["format_money", "with_currency", "money_label", "currency_symbol", "currency_decimals", "money_axis",
           "DEFAULT_CURRENCY"]

_SYMBOLS = {"EUR": "€", "GBP": "£", "USD": "$", "JPY": "¥", "CNY": "CN¥", "INR": "₹", "KRW": "₩"}
# ISO 4217 minor units where they are not 2 (circulating currencies only; see settings.CURRENCY_CODES).
_DECIMALS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
                     "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}

_STEPS = {places: Decimal(1).scaleb(-places) for places in (0, 2, 3)}


def currency_symbol(currency: str) -> str | None:
    """The symbol written before amounts in ``currency``, or None where the code is written after them."""
    return _SYMBOLS.get(currency)


def currency_decimals(currency: str) -> int:
    """How many decimals an amount in ``currency`` shows (its ISO 4217 minor unit)."""
    return _DECIMALS.get(currency, 2)


def with_currency(number: str, currency: str) -> str:
    """An already written, non-negative number (``"1.2k"``, ``"12.50"``) with the currency, by the
    module's rule: the symbol before it, else the code after it."""
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{number} {currency}"


def format_money(amount: Any, currency: str) -> str:
    """``amount`` (a number) in ``currency``, e.g. ``€1,234.50``, ``1,234.50 SEK``, ``-€3.00``, ``€0.00``.

    Callers write their own mark for a hidden amount ("–"); one that is not a number at all
    (NaN, infinite) reads "—" rather than failing the page.
    """
    value = float(amount)
    if not math.isfinite(value):
        return "—"
    places = _DECIMALS.get(currency, 2)
    try:  # half up on the digits as written (float rounding makes 0.125 "0.12" and 2.5 yen "2")
        number: Decimal | float = Decimal(repr(value)).quantize(_STEPS[places], rounding=ROUND_HALF_UP)
    except InvalidOperation:  # beyond the 28 digits Decimal keeps: no shop's amount, written as it is
        number = value
    text = with_currency(f"{abs(number):,.{places}f}", currency)
    return "-" + text if number < 0 else text


def money_label(label: str, currency: str) -> str:
    """A header or axis title for amounts: ``money_label("Revenue", "EUR")`` is ``Revenue (EUR)``."""
    return f"{label} ({currency})"


def money_axis(label: str, currency: str) -> dict[str, Any]:
    """``update_yaxes``/``update_xaxes`` arguments for an axis of amounts: titled with the code
    (``revenue (EUR)``) and, for a currency with a symbol, the symbol before each tick (``€2k``)."""
    return {"title_text": money_label(label, currency), "tickprefix": _SYMBOLS.get(currency, "")}
