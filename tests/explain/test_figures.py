"""Explanation figures: each trace carries the explanation's own numbers, in a readable order.

``sample_explanation`` (a hand-built customer with tricky shop text) is shared with test_report.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
import pytest

from dashboard import explanation_figures as figures
from dashboard import theme
from explain.types import (
    Comparison,
    Contribution,
    CustomerExplanation,
    Difference,
    HistoryEvidence,
    ItemExplanation,
)

PSEUDONYM = "c_0123456789abcdef0123"
HOSTILE_TITLE = '<a href="https://evil.example/x">Lipstick</a> & "Co"'
_LABELS = ["Affinity to the item's brand", "Often bought or viewed right after your recent items",
           "Deep-interest score from the customer's recent behaviour", "Item's popularity trend this week",
           "Price against the customer's usual price", "Days since the customer last chose this brand",
           "Times the item was bought", "Affinity to the item's category", "Customer's number of events",
           "Rank among the shortlisted items", "Same brand as the customer's last item"]


def make_item(rank: int, item_id: str, title: str, contributions: list[float], *, base: float = 0.25,
              history: int = 4, when: datetime = datetime(2024, 3, 20, 9, 30)) -> ItemExplanation:
    """An item whose score is exactly base + sum(contributions), as the contract promises."""
    rows = [Contribution(f"f{i}", _LABELS[i % len(_LABELS)] + ("" if i < len(_LABELS) else f" #{i}"), "affinity",
                         None if i == 3 else round(0.1 * i, 3), c) for i, c in enumerate(contributions)]
    rows.sort(key=lambda c: abs(c.contribution), reverse=True)
    events = [HistoryEvidence(f"h{j}", f"Past item {j}", ["view", "cart", "purchase"][j % 3],
                              when - timedelta(days=j), attribution=0.3 / (j + 1) * (-1 if j == 2 else 1),
                              attention=0.5 / (j + 1), score_share=0.02 * j) for j in range(history)]
    return ItemExplanation(
        user_id=PSEUDONYM, item_id=item_id, title=title, rank=rank,
        score=base + float(sum(contributions)), base_value=base, contributions=rows, history=events,
        convergence_delta=0.0004, attention_share=0.42,
        reasons=[f"You viewed 3 items from Brand B{rank} in the last week.", f"Reason two for {item_id}."],
        counterfactual=f"Without your views of Past item 0 and Past item 1, {item_id} would drop out of the top 10.",
    )


def sample_explanation(cold_start: bool = False) -> CustomerExplanation:
    items = [
        make_item(1, "i_001", HOSTILE_TITLE, [0.8, -0.3, 0.25, 0.1, -0.05, 0.04, 0.03, 0.02, -0.01, 0.005, 0.001]),
        make_item(2, "i_002", "Rose Face Cream 50ml", [0.5, 0.2, -0.1], history=0 if cold_start else 3),
        make_item(3, "i_003", "=HYPERLINK(\"x\")", [0.3, 0.1]),
    ]
    return CustomerExplanation(
        user_id=PSEUDONYM, cold_start=cold_start, generated_at=datetime(2024, 3, 24, 10, 5, tzinfo=UTC),
        model_version="20240324-100650-72e015",
        profile={"user_id": PSEUDONYM, "segment": "loyal", "recency_days": 2.5, "frequency": 7, "monetary": 123.45,
                 "favourite_brands": [{"brand": "B1", "share": 0.5}, {"brand": "B2", "share": 0.25}],
                 "price_band": {"basis": "bought", "p25": 9.5, "median": 12.0, "p75": 19.99},
                 "time_based": True, "last_active": datetime(2024, 3, 22, 18, 0)},
        items=items,
    )


# --------------------------------------------------------------------------- waterfall


def test_waterfall_goes_from_base_through_top_contributions_and_other_to_the_score() -> None:
    item = sample_explanation().items[0]  # 11 contributions
    fig = figures.shap_waterfall(item, top=4)
    (trace,) = fig.data
    assert isinstance(trace, go.Waterfall)
    assert list(trace.measure) == ["absolute"] + ["relative"] * 5 + ["total"]
    assert trace.x[0] == pytest.approx(item.base_value)
    assert list(trace.x[1:5]) == pytest.approx([c.contribution for c in item.contributions[:4]])
    assert trace.x[5] == pytest.approx(sum(c.contribution for c in item.contributions[4:]))
    assert trace.y[5] == "Other 7 features"
    # The drawn bars land exactly on the score the list shows.
    assert item.base_value + sum(trace.x[1:-1]) == pytest.approx(item.score, abs=1e-9)
    assert trace.x[-1] == pytest.approx(item.score)
    # Bars are named by the human label with the feature's value, never by the column name.
    assert trace.y[1] == "Affinity to the item's brand: 0"
    assert not any(str(y).startswith("f") and str(y)[1:].isdigit() for y in trace.y)
    assert fig.layout.yaxis.autorange == "reversed"  # read top to bottom: base, reasons, score


def test_waterfall_colours_raises_and_cuts_and_shows_every_contribution_when_top_covers_all() -> None:
    item = sample_explanation().items[1]  # 3 contributions
    fig = figures.shap_waterfall(item, top=8)
    (trace,) = fig.data
    assert len(trace.x) == 5 and not any("Other" in str(y) for y in trace.y)
    assert trace.increasing.marker.color == theme.POSITIVE
    assert trace.decreasing.marker.color == theme.NEGATIVE
    with pytest.raises(ValueError):
        figures.shap_waterfall(item, top=0)


def test_shop_text_is_shown_literally_not_as_plotly_markup() -> None:
    item = sample_explanation().items[0]
    title = figures.shap_waterfall(item).layout.title.text.replace("<br>", " ")  # wrapped to fit
    assert "<a href" not in title and "&lt;a href=" in title


# --------------------------------------------------------------------------- history


def test_history_bars_carry_attributions_with_attention_beside_them() -> None:
    item = sample_explanation().items[0]
    fig = figures.history_attributions(item)
    attribution, attention = fig.data
    ordered = sorted(item.history, key=lambda h: abs(h.attribution), reverse=True)
    assert list(attribution.x) == pytest.approx([h.attribution for h in ordered])
    assert list(attention.x) == pytest.approx([h.attention for h in ordered])
    assert attribution.y == attention.y  # one row per event across both panels
    assert attribution.y[0] == "Past item 0 · view · 2024-03-20"
    negative = [c for x, c in zip(attribution.x, attribution.marker.color) if x < 0]
    assert negative == [theme.NEGATIVE]
    # Each number is in its event's label, wrapped to fit a narrow window, never beside its bar
    # where it would run into the labels or off the chart.
    assert attribution.textposition == "none" and attention.textposition == "none"
    ticks = fig.layout.yaxis.ticktext
    assert list(fig.layout.yaxis.tickvals) == list(attribution.y)
    assert all(f"{x:+.3f}" in tick for x, tick in zip(attribution.x, ticks))
    assert all(len(line) <= 34 for tick in ticks for line in tick.split("<br>"))
    low, high = fig.layout.xaxis.range
    assert low <= min(0, min(attribution.x)) and high >= max(attribution.x)
    assert fig.layout.xaxis2.range[1] > max(attention.x)


def test_history_keeps_two_events_with_the_same_label_as_two_bars() -> None:
    item = sample_explanation().items[0]
    twin = HistoryEvidence("h0", "Past item 0", "view", item.history[0].ts, 0.01, 0.1)
    fig = figures.history_attributions(ItemExplanation(**{**item.__dict__, "history": [*item.history, twin]}))
    assert len(set(fig.data[0].y)) == len(item.history) + 1


def test_history_without_events_says_so() -> None:
    item = sample_explanation(cold_start=True).items[1]
    fig = figures.history_attributions(item)
    assert not fig.data
    assert "No history events" in fig.layout.annotations[-1].text


# --------------------------------------------------------------------------- comparison, global, dependence


def _comparison() -> Comparison:
    diffs = [Difference(f"f{i}", f"Label {i}", 0.1 * i, None, a, b)
             for i, (a, b) in enumerate([(0.5, 0.1), (-0.2, 0.1), (0.05, 0.0), (0.0, 0.02), (0.01, 0.0)])]
    diffs.sort(key=lambda d: abs(d.difference), reverse=True)
    return Comparison(PSEUDONYM, "i_a", "i_b", "Item A", "Item B", 1.0, 0.6, diffs, ["A is closer to your brand."])


def test_comparison_bars_are_the_differences_and_add_up_to_the_score_gap() -> None:
    c = _comparison()
    (trace,) = figures.comparison_bars(c, top=3).data
    total = sum(abs(d.difference) for d in c.differences)  # the bars are shares of what separates them
    assert list(trace.x[:3]) == pytest.approx([100 * v / total for v in (0.4, -0.3, 0.05)])
    assert trace.y[3] == "Other 2 features"
    assert sum(trace.x) == pytest.approx(100 * sum(d.difference for d in c.differences) / total)
    assert all(text.endswith("%") for text in trace.text)  # no raw score units
    assert list(trace.marker.color[:2]) == [theme.POSITIVE, theme.NEGATIVE]
    assert "ranks above" in figures.comparison_bars(c).layout.title.text


def test_global_importance_sorted_largest_first_from_a_mapping_or_a_frame() -> None:
    importance = {"Price": 0.1, "Brand affinity": 0.7, "Popularity": 0.3}
    (trace,) = figures.global_importance_bars(importance, top=2).data
    assert list(trace.y) == ["Brand affinity", "Popularity"]
    assert list(trace.x) == pytest.approx([0.7, 0.3])
    frame = pd.DataFrame({"label": ["Price", "Brand affinity"] * 2, "mean_abs_shap": [0.1, 0.7, 0.3, 0.5],
                          "segment": ["new", "new", "loyal", "loyal"]})
    fig = figures.global_importance_bars(frame)
    assert [t.name for t in fig.data] == ["new", "loyal"]
    assert list(fig.data[1].y) == ["Brand affinity", "Price"] and list(fig.data[1].x) == pytest.approx([0.5, 0.3])
    by_group = pd.DataFrame({"group": ["price", "affinity"], "mean_abs_shap": [0.1, 0.4]})  # global_view.by_group
    assert list(figures.global_importance_bars(by_group).data[0].y) == ["affinity", "price"]
    by_index = pd.DataFrame({"importance": [0.2, 0.9]}, index=["A", "B"])
    assert list(figures.global_importance_bars(by_index).data[0].y) == ["B", "A"]


def test_dependence_plot_draws_the_bins_and_counts_the_missing() -> None:
    bins = pd.DataFrame({"value": [1.0, 2.5], "contribution": [-0.1, 0.3], "spread": [0.05, 0.1],
                         "rows": [30, 40], "customers": [10, 12]})
    fig = figures.dependence_plot(bins, "Price against the customer's usual price", missing=1, k=10)
    (trace,) = fig.data
    assert list(trace.x) == [1.0, 2.5] and list(trace.y) == pytest.approx([-0.1, 0.3])
    assert [point[:2] for point in trace.customdata] == [[10, 30], [12, 40]]
    assert list(trace.error_y.array) == pytest.approx([0.05, 0.1])
    assert "1 missing" in fig.layout.title.text and "10+ customers" in fig.layout.title.text


def test_every_figure_uses_the_shared_template_and_serialises() -> None:
    item = sample_explanation().items[0]
    one_bin = pd.DataFrame({"value": [1.0], "contribution": [0.5], "spread": [0.0], "rows": [1], "customers": [1]})
    built = [figures.shap_waterfall(item), figures.history_attributions(item), figures.comparison_bars(_comparison()),
             figures.global_importance_bars({"a": 1.0}), figures.dependence_plot(one_bin, "a")]
    for fig in built:
        assert fig.layout.template.layout.font.family == theme.FONT_FAMILY
        assert fig.layout.height >= 220
        fig.to_json()  # what dcc.Graph and the report's chart drawing receive
