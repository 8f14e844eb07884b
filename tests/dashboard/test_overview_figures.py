"""The overview's activity chart reads as counts and money (issue 17): both axes are titled, the
revenue axis and hovers say the shop's currency, and a selection with no revenue (or only a few
events) never shows fractional ticks such as "500m"."""

from __future__ import annotations

import pandas as pd

from dashboard.overview_figures import activity_figure, ranking_figure


def _frame(revenue: list[float | None], events: list[int]) -> pd.DataFrame:
    days = pd.date_range("2024-03-01", periods=len(events), freq="D")
    return pd.DataFrame({"period": days, "events": events, "purchases": [0] * len(events), "revenue": revenue,
                         "users": [max(1, e) for e in events]})


def test_both_axes_are_titled_and_revenue_names_its_currency() -> None:
    fig = activity_figure(_frame([120.5, 80.0, 300.0], [40, 35, 60]), currency="EUR")
    assert (fig.layout.yaxis.title.text, fig.layout.yaxis2.title.text) == ("events", "revenue (EUR)")
    assert fig.layout.yaxis2.tickprefix == "€"
    assert fig.layout.yaxis2.range is None  # real money: the axis follows the data


def test_revenue_hovers_are_money_in_the_shops_currency() -> None:
    fig = activity_figure(_frame([1234.5, 0.0, None], [40, 35, 60]), currency="SEK")
    assert fig.layout.yaxis2.title.text == "revenue (SEK)" and not fig.layout.yaxis2.tickprefix
    hover = list(fig.data[1].hovertext)
    assert [text.split(" · ")[0] for text in hover] == ["revenue 1,234.50 SEK", "revenue 0.00 SEK", "revenue hidden"]
    assert "%{y" not in fig.data[1].hovertemplate  # the amount is written by the one rule, not by plotly


def test_ranking_hovers_and_revenue_labels_carry_the_currency() -> None:
    frame = pd.DataFrame({"brand": ["Acme", "Glow"], "events": [30, 20], "purchases": [5, 4],
                          "revenue": [1520.0, 0.0], "users": [12, 11]})
    fig = ranking_figure(frame, "brand", "revenue", k=10, currency="GBP")
    assert "revenue £1,520.00" in fig.data[0].hovertext[0] and "revenue £0.00" in fig.data[0].hovertext[1]
    assert list(fig.data[0].text) == ["£1.5k", "£0"]


def test_no_revenue_and_few_events_give_whole_ticks() -> None:
    fig = activity_figure(_frame([0.0, 0.0, None], [1, 0, 2]), currency="EUR")
    for axis in (fig.layout.yaxis, fig.layout.yaxis2):
        assert list(axis.range) == [0, 5] and axis.dtick == 1 and axis.tickformat == ",d"
