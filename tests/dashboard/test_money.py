"""Money is written by one rule everywhere (issue 17): the shop's currency on every amount, its
symbol before the number for the common ones and its code after it otherwise, always with the
currency's decimals, zero included; and the setting that names it is checked at startup."""

from __future__ import annotations

import pytest

from dashboard.money import currency_decimals, format_money, money_axis, money_label, with_currency
from errors import RecsightError
from settings import CURRENCY_CODES, DEFAULT_CURRENCY, Settings, load_settings


@pytest.mark.parametrize(("amount", "currency", "written"), [
    (1234.5, "EUR", "€1,234.50"),
    (0, "EUR", "€0.00"),
    (0.0, "GBP", "£0.00"),
    (12, "USD", "$12.00"),
    (-3, "EUR", "-€3.00"),
    (-0.001, "EUR", "€0.00"),  # rounds to nothing: no minus sign on zero
    (88, "CNY", "CN¥88.00"),  # not the yen's "¥"
    (1234.5, "JPY", "¥1,235"),  # no minor unit
    (1234567.891, "SEK", "1,234,567.89 SEK"),  # no well-known symbol: the code after the number
    (-12.5, "CHF", "-12.50 CHF"),
    (1.2345, "KWD", "1.235 KWD"),  # three decimals, half up on the digits as written
    (0.125, "EUR", "€0.13"),
    (float("nan"), "EUR", "—"),  # not a number: a dash, never a failed page
])
def test_format_money(amount: float, currency: str, written: str) -> None:
    assert format_money(amount, currency) == written


def test_labels_axes_and_written_numbers_name_the_currency() -> None:
    assert money_label("Revenue", "EUR") == "Revenue (EUR)"
    assert money_axis("revenue", "GBP") == {"title_text": "revenue (GBP)", "tickprefix": "£"}
    assert money_axis("revenue", "NOK") == {"title_text": "revenue (NOK)", "tickprefix": ""}
    assert with_currency("1.2k", "USD") == "$1.2k" and with_currency("1.2k", "DKK") == "1.2k DKK"
    assert currency_decimals("EUR") == 2 and currency_decimals("KRW") == 0


def test_the_currency_setting_defaults_reads_and_is_checked() -> None:
    assert DEFAULT_CURRENCY == "EUR" == Settings().currency == load_settings({}).currency
    assert load_settings({"RECSIGHT_CURRENCY": "GBP"}).currency == "GBP"
    assert load_settings({"RECSIGHT_CURRENCY": " cny "}).currency == "CNY"  # any case, spaces trimmed
    assert load_settings({"RECSIGHT_CURRENCY": ""}).currency == "EUR"
    assert {"EUR", "GBP", "USD", "CNY", "JPY", "SEK"} <= CURRENCY_CODES


@pytest.mark.parametrize("typed", ["EURO", "€", "eu", "ABC", "XAU", "12$", "US D"])
def test_an_unknown_or_malformed_currency_is_one_clear_line(typed: str) -> None:
    with pytest.raises(RecsightError, match=r"^RECSIGHT_CURRENCY must be an ISO 4217 currency code") as caught:
        load_settings({"RECSIGHT_CURRENCY": typed})
    assert "\n" not in str(caught.value) and repr(typed.strip()) in str(caught.value)


def test_the_command_line_says_a_bad_currency_in_one_line(monkeypatch, capsys) -> None:
    import cli

    monkeypatch.setenv("RECSIGHT_CURRENCY", "EURO")
    assert cli.main(["users", "list"]) == 2  # settings are read before any command runs
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: RECSIGHT_CURRENCY must be") and "\n" not in err and "Traceback" not in err
