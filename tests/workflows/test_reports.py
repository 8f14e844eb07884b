"""Reports through the real pipeline: every item says what would change it, and every date agrees.

On the session's trained shop (tests/shop.py), read only. The counterfactual sentences are the ones
the customer page gives (:func:`explain.counterfactual.counterfactual_for`, verified by re-scoring),
computed for a whole list with the re-scorings shared between its items; the report states the
data's reference date, and the profile's moments agree with the shop's own events.
"""

from __future__ import annotations

import html
import io
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from analytics import schema as s
from dashboard.report_profile import utc_text
from explain.counterfactual import counterfactual_for
from explain.types import CustomerExplanation
from models.serving import Recommender
from tests.conftest import TEST_SECRET
from tests.shop import COLD_USER, TrainedShop
from workflows.explaining import explain_customer
from workflows.report_counterfactuals import SharedRescoring, counterfactual_text
from workflows.reports import INTERACTIVE_COUNTERFACTUALS, complete_for_report, report_bytes, write_report

K = 10
# tests/dashboard/test_reports.py holds a ten-item PDF to 6 pages (two of items, then the appendix);
# here the sentences are the shop's own, whose length varies: one page of slack.
MAX_PAGES, APPENDIX_BY_PAGE = 7, 3  # the items take two pages at most, as there


@pytest.fixture(scope="module")
def rec(trained_shop: TrainedShop) -> Iterator[Recommender]:
    recommender = Recommender.load(trained_shop.db, trained_shop.models)
    yield recommender
    recommender.close()


@pytest.fixture(scope="module")
def customer(rec: Recommender) -> str:
    """The most active customer (a full top 10 and a long history)."""
    with rec.connection() as con:
        return con.execute(f"SELECT {s.USER_ID} FROM {s.EVENTS} GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
                           ).fetchone()[0]


@pytest.fixture(scope="module")
def reported(rec: Recommender, customer: str) -> CustomerExplanation:
    """What a report of the customer holds: the explained top 10 with its counterfactual sentences."""
    return explain_customer(rec, customer, K, counterfactuals=True)


def test_every_item_says_what_would_change_it_as_the_customer_page_would(rec: Recommender, customer: str,
                                                                         reported: CustomerExplanation) -> None:
    assert len(reported.items) == K and not reported.cold_start
    assert reported.as_of is not None and reported.as_of == rec.as_of(customer)
    for item in reported.items:
        assert item.counterfactual and f"top {K}" in item.counterfactual
    # Sharing re-scorings between the items changes no answer: the same sentences, one item at a time.
    for item in reported.items[1:3]:
        alone = counterfactual_for(rec, item, K)
        assert item.counterfactual == counterfactual_text(alone)
        assert alone.sentence in item.counterfactual and (alone.raise_hint or "") in item.counterfactual


def test_a_report_of_an_explanation_computed_without_counterfactuals_gets_the_same_ones(
        rec: Recommender, customer: str, reported: CustomerExplanation) -> None:
    cached = explain_customer(rec, customer, K)  # what the lookup page holds: no counterfactuals
    assert all(item.counterfactual is None for item in cached.items)
    frame = pd.read_csv(io.BytesIO(report_bytes(rec, customer, "csv", K, explanation=cached)), keep_default_na=False)
    summary = frame[frame["kind"] == "summary"]
    shown = INTERACTIVE_COUNTERFACTUALS  # someone waits on this report: the first items get them
    assert list(summary["what_would_change_it"]) == [i.counterfactual for i in reported.items[:shown]] + [
        ""] * (K - shown)
    assert [r.split("\n") for r in summary["reasons"]] == [i.reasons for i in reported.items]
    assert set(frame["as_of"]) == {reported.as_of.isoformat()}
    # An explanation that has them already is only rendered: the recommender is not even touched.
    assert complete_for_report(object(), reported, K) == reported  # type: ignore[arg-type]


def test_the_profile_dates_agree_with_the_reference_date_and_the_shops_events(
        rec: Recommender, customer: str, reported: CustomerExplanation) -> None:
    with rec.connection() as con:
        last_event, last_purchase = con.execute(
            f"SELECT max({s.TS}), max({s.TS}) FILTER (WHERE {s.EVENT_TYPE} = ?) FROM {s.EVENTS} WHERE {s.USER_ID} = ?",
            [s.PURCHASE, customer]).fetchone()
    assert last_purchase is not None and last_purchase <= last_event < reported.as_of
    page = html.unescape(report_bytes(rec, customer, "html", K, explanation=reported).decode())
    assert f"Reference date: {utc_text(reported.as_of)}" in re.sub(r"<[^>]+>", "", page)
    for label, moment in (("Last active", last_event), ("Last purchase", last_purchase)):
        found = re.search(label + r"</dt><dd[^>]*>(.+?) UTC \((?:(\d+) days?|less than a day) before the "
                                  r"reference date\)", page)
        assert found, label
        assert abs(datetime.fromisoformat(found.group(1)) - moment) < timedelta(seconds=1), label
        days = int(found.group(2) or 0)
        assert days == (reported.as_of - moment) // timedelta(days=1), label


def test_a_cold_start_report_has_no_counterfactuals_and_says_why(rec: Recommender) -> None:
    page = report_bytes(rec, COLD_USER, "html", K).decode()
    assert "Cold start" in page and "What would change it" not in page and "Reference date:" in page


def test_shared_rescoring_runs_each_distinct_change_of_the_history_once() -> None:
    calls: list[tuple] = []

    class Fake:
        tables = "the recommender's own"

        def rescore(self, user_id: str, k: int = 10, **change: object) -> str:
            calls.append((user_id, k, change))
            return f"list {len(calls)}"

    shared = SharedRescoring(Fake())  # type: ignore[arg-type]
    first = shared.rescore("c_1", 99, without_items=["b", "a"])
    assert shared.rescore("c_1", 99, without_items=["a", "b", "a"]) == first  # the same removal, in any order
    assert shared.rescore("c_1", 99, without_items=["a"]) != first
    assert shared.rescore("c_1", 99, extra_events=[("x", "view", datetime(2024, 1, 1))]) != first
    assert len(calls) == 3 and shared.computed == 3 and shared.asked == 4
    assert shared.tables == "the recommender's own"  # everything else is the recommender's


def test_write_report_pdf_of_ten_items_holds_every_sentence_on_few_pages(trained_shop: TrainedShop, customer: str,
                                                                          reported: CustomerExplanation,
                                                                          tmp_path: Path) -> None:
    out = write_report(trained_shop.db, trained_shop.models, customer, fmt="pdf", out=tmp_path / "r.pdf",
                       secret=TEST_SECRET)
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", out.read_bytes()))
    assert pages <= MAX_PAGES
    text = re.sub(r"\s+", " ", subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True,
                                              check=True, text=True).stdout)
    body = re.sub(r"\s+", " ", subprocess.run(["pdftotext", "-l", str(APPENDIX_BY_PAGE), "-layout", str(out), "-"],
                                              capture_output=True, check=True, text=True).stdout)
    assert "Appendix: the model's numbers" in body
    assert f"Reference date: {utc_text(reported.as_of)}" in text
    for item in reported.items:
        assert f"#{item.rank} {item.title}" in text
        for sentence in [*item.reasons, item.counterfactual]:
            assert sentence in text
