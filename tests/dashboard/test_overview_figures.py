"""The overview's activity chart reads as counts and money (issue 17): both axes are titled, and a
selection with no revenue (or only a few events) never shows fractional ticks such as "500m"."""

from __future__ import annotations

import pandas as pd

from dashboard.overview_figures import activity_figure


def _frame(revenue: list[float | None], events: list[int]) -> pd.DataFrame:
    days = pd.date_range("2024-03-01", periods=len(events), freq="D")
    return pd.DataFrame({"period": days, "events": events, "purchases": [0] * len(events), "revenue": revenue,
                         "users": [max(1, e) for e in events]})


def test_both_axes_are_titled() -> None:
    fig = activity_figure(_frame([120.5, 80.0, 300.0], [40, 35, 60]))
    assert (fig.layout.yaxis.title.text, fig.layout.yaxis2.title.text) == ("events", "revenue")
    assert fig.layout.yaxis2.range is None  # real money: the axis follows the data


def test_no_revenue_and_few_events_give_whole_ticks() -> None:
    fig = activity_figure(_frame([0.0, 0.0, None], [1, 0, 2]))
    for axis in (fig.layout.yaxis, fig.layout.yaxis2):
        assert list(axis.range) == [0, 5] and axis.dtick == 1 and axis.tickformat == ",d"
