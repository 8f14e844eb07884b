"""The CSV payload builders without an app: a shown table keeps hidden values missing, the CSV
writes numbers exactly and defuses formulas, file names name the page, the table and the day,
a store that comes back damaged or forged is refused, and the faithfulness figures are drawn
from the very tables their downloads hold."""

from __future__ import annotations

import csv
import io
from datetime import date

import numpy as np
import pandas as pd
import pytest

from dashboard import csv_tables as ct
from dashboard import faithfulness_figures as ff
from dashboard import figure_tables as tables
from dashboard.overview_figures import funnel_figure, ranking_figure
from errors import RecsightError
from explain.faithfulness import Faithfulness


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_a_shown_table_keeps_hidden_values_missing_and_counts_whole():
    frame = pd.DataFrame({"period": pd.to_datetime(["2024-01-01", "2024-01-02"]), "events": [12.0, np.nan],
                          "revenue": [35.5, np.nan], "extra": ["never", "shown"]})
    table = ct.shown_table(frame, {"period": "Day", "events": "Events", "revenue": "Revenue"}, counts=("events",))
    assert table.columns == ("Day", "Events", "Revenue")  # only the columns asked for, in that order
    assert table.rows == (("2024-01-01", 12, 35.5), ("2024-01-02", None, None))
    assert isinstance(table.rows[0][1], int)
    assert _rows(ct.csv_text(table)) == [["Day", "Events", "Revenue"], ["2024-01-01", "12", "35.5"],
                                      ["2024-01-02", "", ""]]


def test_csv_writes_numbers_exactly_and_defuses_formulas():
    table = ct.table_from_rows(("Name", "Share", "Delta"), [("=HYPERLINK(\"x\")", 1 / 3, -0.25), ("+1", 0.1, 2),
                                                         ("@SUM(A1)", None, np.float64(1e-17))])
    rows = _rows(ct.csv_text(table))
    assert rows[1] == ["'=HYPERLINK(\"x\")", repr(1 / 3), "-0.25"]  # a negative number stays a number
    assert rows[2][0] == "'+1" and rows[3][0] == "'@SUM(A1)"
    assert float(rows[1][1]) == 1 / 3 and float(rows[3][2]) == 1e-17  # exact round trip
    assert rows[3][1] == ""


def test_file_names_name_the_page_the_table_and_the_day():
    assert ct.csv_filename("overview", "top-brands", date(2024, 5, 1)) == "recsight-overview-top-brands-20240501.csv"
    for bad in ("../etc", "Top brands", "", "a--b"):
        with pytest.raises(RecsightError):
            ct.csv_filename("overview", bad, date(2024, 5, 1))


def test_a_store_round_trips_and_a_damaged_or_forged_one_is_refused():
    table = ct.table_from_rows(("Stage", "Events"), [("Viewed", 10), ("Bought", None)])
    assert ct.table_from_store(table.to_store()) == table
    assert ct.table_from_store(ct.ShownTable(("A",), ()).to_store()).rows == ()
    forged = [
        None, [], "x", {"columns": ["A"]}, {"columns": ["A"], "rows": [], "more": 1},
        {"columns": [], "rows": []}, {"columns": ["A", "B"], "rows": [[1]]}, {"columns": ["A"], "rows": [[True]]},
        {"columns": ["A"], "rows": [[[1, 2]]]}, {"columns": ["A"], "rows": [[{"x": 1}]]},
        {"columns": ["A"], "rows": [[float("nan")]]}, {"columns": [1], "rows": []},
        {"columns": ["A"], "rows": [[1]] * (ct.MAX_ROWS + 1)}, {"columns": ["A"], "rows": [["x" * 5000]]},
    ]
    for data in forged:
        with pytest.raises(RecsightError, match="not readable"):
            ct.table_from_store(data)


def test_the_funnel_table_is_the_funnels_bars_and_hides_what_it_hides():
    frame = pd.DataFrame({"stage": ["view", "click", "cart", "purchase"], "events": [120.0, np.nan, 40.0, 12.0],
                          "users": [30.0, np.nan, 12.0, 10.0]})
    table = tables.funnel_table(frame)
    trace = funnel_figure(frame, k=10).data[0]
    assert [row[0] for row in table.rows] == list(trace.y)
    assert [row[1] for row in table.rows] == list(trace.x) and [row[2] for row in table.rows] == list(trace.customdata)
    # the hidden stage is empty, and so is the share after it (it would give the hidden count away)
    assert table.rows[1][1:] == (None, None, None) and table.rows[2][3] is None
    assert table.rows[3][3] == pytest.approx(12 / 40)
    assert ",," in ct.csv_text(table).splitlines()[2]


def test_the_ranking_table_is_the_rankings_hover_row_for_row():
    frame = pd.DataFrame({"brand": ["Acme", "=cmd"], "events": [9, 7], "purchases": [np.nan, 3.0],
                          "revenue": [np.nan, 21.5], "users": [12, 11]})
    table = tables.ranking_table(frame, "brand", "USD")
    figure = ranking_figure(frame, "brand", "events", k=10, currency="USD")
    assert table.columns == ("Brand", "Events", "Purchases", "Revenue (USD)", "Customers")
    assert [list(row) for row in table.rows] == [list(row) for row in figure.data[0].customdata]
    assert _rows(ct.csv_text(table))[2][0] == "'=cmd"


def test_revenue_headers_name_the_currency_and_the_cells_stay_plain_numbers():
    day = pd.Timestamp("2024-01-01")
    activity = pd.DataFrame({"period": [day], "events": [4], "users": [3], "purchases": [0], "revenue": [0.0]})
    table = tables.activity_table(activity, "day", "CNY")
    assert table.columns[-1] == "Revenue (CNY)" and table.rows[0][-1] == 0.0
    segments = pd.DataFrame({"segment": ["champions"], "customers": [12], "share": [1.0], "active": [10.0],
                             "events": [40.0], "revenue": [0.0]})
    shown = tables.segment_activity_table(segments, "EUR")
    assert shown.columns == ("Segment", "Customers", "Active", "Revenue (EUR)")
    assert shown.rows == (("Champions", 12, 10, 0.0),)  # counts whole, the amount a number a spreadsheet sums


FAITH = Faithfulness(customers=12, items=5, shap_max_error=1e-16, ig_relative=[1e-7, 1e-4, 0.02, 0.0, 3e-3],
                     drops=[(0.5, 0.1), (0.3, 0.4), (0.7, 0.0)])


def test_the_deletion_table_is_the_deletion_bars():
    figure, table = ff.deletion_figure(FAITH), ff.deletion_table(FAITH)
    assert [row[0] for row in table.rows] == [trace.name for trace in figure.data]
    assert [row[1] for row in table.rows] == [trace.y[0] for trace in figure.data]
    assert {row[2] for row in table.rows} == {3}
    empty = ff.deletion_table(Faithfulness(0, 0, 0.0, [], []))
    assert [row[1] for row in empty.rows] == [None, None]


def test_the_completeness_histogram_is_drawn_on_the_bins_its_table_holds():
    bins = ff.completeness_bins(FAITH)
    histogram = ff.completeness_figure(FAITH).data[0]
    size = histogram.xbins.size
    assert histogram.xbins.start == bins["start"].iloc[0] and histogram.xbins.end == bins["end"].iloc[-1]
    assert len(bins) <= 24 and int(bins["items"].sum()) == len(FAITH.ig_relative)
    # what the browser draws: each x in [start + i*size, start + (i+1)*size)
    drawn = np.bincount(((np.asarray(histogram.x) - histogram.xbins.start) // size).astype(int), minlength=len(bins))
    assert list(drawn) == list(bins["items"])
    table = ff.completeness_table(FAITH)
    assert table.columns[-1] == "Items" and [row[2] for row in table.rows] == list(bins["items"])
    assert all(isinstance(row[2], int) for row in table.rows)
    assert ff.completeness_table(Faithfulness(0, 0, 0.0, [], [])).rows == ()
