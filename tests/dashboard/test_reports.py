"""The report a customer-service agent can send: complete, readable, consistent with its reference date.

Rendered from a hand-built ten-item explanation with realistic sentence lengths (tests/explain/
test_report.py covers self-containment, hostile shop text and chart fallbacks). What a reader relies
on: every item's reasons and "what would change it" sentences, in its own block, several items to a
printed page; the data's reference date stated, and every "days before" read against it; the rank,
not the ranker's raw score, in the body; a CSV whose first rows are those sentences.
"""

from __future__ import annotations

import dataclasses
import html
import io
import math
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from dashboard import report_pdf, reports
from dashboard.report_csv import CSV_COLUMNS, KINDS
from dashboard.report_profile import days_before, utc_text
from explain.types import CustomerExplanation
from tests.explain.test_figures import PSEUDONYM, make_item

AS_OF = datetime(2024, 3, 30, 22, 21, 57, 335006)  # naive UTC, as the store keeps event times
LAST_ACTIVE = datetime(2024, 3, 27, 8, 15, 2)  # 3.59 days before AS_OF
RECENCY_DAYS = 30.21  # since the last purchase, not the last activity
MAX_PAGES = 6  # a ten-item PDF: two pages of items, then the appendix (three items' charts a page)


def _sentences(rank: int) -> tuple[list[str], str]:
    reasons = [f"You viewed 4 items from Brand{rank} in the last 30 days, most recently on 28 Mar 2024.",
               f"Shoppers who bought Item{rank}-seed on 19 Mar 2024 often look at this item next.",
               f"Its price (15.{rank:02d}) is below the 71.99 you usually pay for items in this category."]
    counterfactual = (f"Without your 2 clicks on Tripod{rank} Carbon and your 4 views of Mini Tripod{rank} it would "
                      f"drop out of the top 10 (to rank {20 + rank}). Viewing Marble Run{rank} (shoppers often view it "
                      f"just before this item) would lift it from rank {rank} to rank 1.")
    return reasons, counterfactual


def ten_items(odd_reasons: int = 3, **changes: object) -> CustomerExplanation:
    """Ten items with three reasons each (``odd_reasons`` for the odd ranks: another page layout)."""
    items = []
    for rank in range(1, 11):
        contributions = [0.3 / (i + 1) * (-1 if i % 4 == 3 else 1) for i in range(40)]
        item = make_item(rank, f"I{rank:05d}", f"Signature Product Number {rank} Carbon Edition", contributions,
                         base=-0.636, history=20)
        reasons, counterfactual = _sentences(rank)
        reasons = reasons[:odd_reasons] if rank % 2 else reasons
        items.append(dataclasses.replace(item, reasons=reasons, counterfactual=counterfactual))
    profile = {"user_id": PSEUDONYM, "segment": "champions", "n_events": 753, "n_purchases": 11,
               "recency_days": RECENCY_DAYS, "frequency": 10, "monetary": 2368.83,
               "favourite_categories": [{"category": "Electronics > Cameras > Tripods", "share": 0.32}],
               "favourite_brands": [{"brand": "Yarahub", "share": 0.25}],
               "price_band": {"basis": "bought", "p25": 53.99, "median": 71.99, "p75": 150.99},
               "time_based": True, "last_active": LAST_ACTIVE}
    explanation = CustomerExplanation(user_id=PSEUDONYM, cold_start=False, generated_at=datetime(2026, 12, 7, 17, 35),
                                      model_version="20261207-172856-cec166", profile=profile, items=items,
                                      as_of=AS_OF)
    return dataclasses.replace(explanation, **changes)


def _body_and_appendix(page: str) -> tuple[str, str]:
    at = page.index('<section class="appendix">')
    return page[:at], page[at:]


def _pdf_pages(pdf: bytes, tmp_path: Path) -> list[str]:
    """The text of each page, whitespace folded (pdftotext, as the reader's viewer extracts it)."""
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    count = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))
    return [re.sub(r"\s+", " ", subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), "-layout", str(path), "-"],
                                                capture_output=True, check=True, text=True).stdout)
            for n in range(1, count + 1)]


# --------------------------------------------------------------------------- HTML


@pytest.mark.parametrize("charts", ["svg", "css"])
def test_each_item_block_has_its_rank_title_reasons_and_what_would_change_it(charts: str) -> None:
    explanation = ten_items()
    body, appendix = _body_and_appendix(reports.render_report(explanation, "html", charts=charts).decode())
    blocks = body.split('<section class="item">')[1:]
    assert len(blocks) == 10
    for item, block in zip(explanation.items, blocks):
        assert f'<span class="rank">#{item.rank}</span> {html.escape(item.title)}' in block
        for reason in item.reasons:
            assert f"<li>{html.escape(reason)}</li>" in block
        assert "What would change it:" in block and html.escape(item.counterfactual) in block
    # The machine numbers come after every item, in the appendix: charts included.
    assert "What moved the score" in appendix and "What moved the score" not in body
    assert appendix.count("<svg" if charts == "svg" else 'class="bars"') == 20


def test_the_body_shows_ranks_not_raw_ranker_scores_which_stay_in_the_appendix() -> None:
    explanation = ten_items()
    body, appendix = _body_and_appendix(reports.render_report(explanation, "html", charts="css").decode())
    for item in explanation.items:
        assert f"{item.score:.3f}" not in body
        assert f"score {item.score:.3f}" in appendix
    assert "score" not in re.sub(r"<style>.*?</style>", "", body, flags=re.DOTALL).lower()


def test_the_reference_date_is_stated_and_every_days_before_counts_back_from_it() -> None:
    page = html.unescape(reports.render_report(ten_items(), "html", charts="css").decode())
    assert f"Reference date: {utc_text(AS_OF)}" in re.sub(r"<[^>]+>", "", page)
    assert utc_text(AS_OF) == "2024-03-30 22:21:57 UTC"
    active = re.search(r"Last active</dt><dd[^>]*>(.+?) UTC \((\d+) days? before the reference date\)", page)
    assert active and datetime.fromisoformat(active.group(1)) == LAST_ACTIVE.replace(microsecond=0)
    assert int(active.group(2)) == math.floor((AS_OF - LAST_ACTIVE) / timedelta(days=1)) == 3
    # recency_days counts from the last purchase: shown as that moment, never as "since last activity".
    purchase = re.search(r"Last purchase</dt><dd[^>]*>(.+?) UTC \((\d+) days before the reference date\)", page)
    assert purchase and int(purchase.group(2)) == 30
    shown = datetime.fromisoformat(purchase.group(1))
    assert abs(AS_OF - timedelta(days=RECENCY_DAYS) - shown) < timedelta(seconds=1)
    assert "last activity" not in page.lower()


@pytest.mark.parametrize(("moment", "days"), [(AS_OF - timedelta(hours=23), 0), (AS_OF - timedelta(hours=25), 1),
                                              (AS_OF - timedelta(days=30, hours=5), 30)])
def test_days_before_are_whole_days_back_from_the_reference_date(moment: datetime, days: int) -> None:
    assert days_before(moment, AS_OF) == days


def test_without_a_recorded_reference_date_the_report_says_so_instead_of_counting_days() -> None:
    page = html.unescape(reports.render_report(ten_items(as_of=None), "html", charts="css").decode())
    assert "Reference date: not recorded" in re.sub(r"<[^>]+>", "", page)
    assert "before the reference date" not in page.split("Last purchase")[0]  # last active: a plain date
    assert re.search(f"Last active</dt><dd[^>]*>{utc_text(LAST_ACTIVE)}</dd>", page)


def test_an_order_only_shop_states_no_dates_it_does_not_have() -> None:
    explanation = ten_items()
    profile = {**explanation.profile, "time_based": False, "recency_days": None, "frequency": None,
               "last_active": None}
    page = reports.render_report(dataclasses.replace(explanation, profile=profile), "html", charts="css").decode()
    assert "records the order of events, not real dates" in page
    assert "Last active" not in page and "Last purchase" not in page and "days before" not in page


def test_a_cold_start_gets_no_counterfactual_block_and_says_why() -> None:
    explanation = ten_items(cold_start=True)
    explanation = dataclasses.replace(explanation, items=[dataclasses.replace(i, counterfactual=None)
                                                          for i in explanation.items])
    body, _ = _body_and_appendix(reports.render_report(explanation, "html", charts="css").decode())
    assert "Cold start" in body and "What would change it" not in body


# --------------------------------------------------------------------------- PDF


@pytest.mark.parametrize(("charts", "odd_reasons"), [("svg", 3), ("css", 3), ("css", 2), ("css", 1)])
def test_a_ten_item_pdf_is_compact_and_never_splits_an_item(charts: str, odd_reasons: int, tmp_path: Path) -> None:
    explanation = ten_items(odd_reasons)
    pages = _pdf_pages(reports.render_report(explanation, "pdf", charts=charts), tmp_path)
    assert 2 <= len(pages) <= MAX_PAGES
    assert f"Reference date: {utc_text(AS_OF)}" in pages[0] and PSEUDONYM in pages[0]
    appendix = next(n for n, text in enumerate(pages) if "Appendix: the model's numbers" in text)
    assert appendix <= 2  # the items take two pages at most: several to a page
    for item in explanation.items:
        # One block per item: its title, reasons and counterfactual sentences on one page.
        (page,) = [text for text in pages[:appendix] if f"#{item.rank} {item.title}" in text]
        for sentence in [*item.reasons, item.counterfactual]:
            assert sentence in page
    if charts == "svg":
        assert "ranker score (raw units)" in " ".join(pages[appendix:])  # chart labels are text, not pictures


def test_without_a_browser_the_html_keeps_every_item_block_and_draws_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_pdf, "_browser", lambda: None)
    page = reports.render_report(ten_items(), "html").decode()
    assert page.count('<section class="item">') == 10 and "What would change it:" in page
    assert "<svg" not in page and page.count('class="bars"') == 20


# --------------------------------------------------------------------------- CSV


def test_csv_reads_as_a_sheet_of_sentences_first_then_the_machine_rows() -> None:
    explanation = ten_items()
    frame = pd.read_csv(io.BytesIO(reports.render_report(explanation, "csv")), keep_default_na=False)
    assert tuple(frame.columns) == CSV_COLUMNS and tuple(frame.columns[:7]) == (
        "user_id", "kind", "rank", "item_id", "title", "reasons", "what_would_change_it")
    summary = frame[frame["kind"] == "summary"]
    assert list(summary.index) == list(range(10))  # the readable rows come first, in rank order
    assert list(summary["rank"]) == list(range(1, 11))
    for item, (_, row) in zip(explanation.items, summary.iterrows()):
        assert row["item_id"] == item.item_id and row["title"] == item.title
        assert row["reasons"].split("\n") == item.reasons
        assert row["what_would_change_it"] == item.counterfactual
        assert row["score"] == ""  # raw ranker units belong to the machine rows
    assert set(frame["as_of"]) == {AS_OF.isoformat()}
    assert list(dict.fromkeys(frame["kind"])) == list(KINDS)
    machine = pd.read_csv(io.BytesIO(reports.render_report(explanation, "csv")))
    for item in explanation.items:
        rows = machine[(machine["kind"] == "contribution") & (machine["rank"] == item.rank)]
        assert len(rows) == 40
        assert rows["base_value"].iloc[0] + rows["contribution"].sum() == pytest.approx(item.score, abs=1e-12)
    assert (machine["kind"] == "history").sum() == 200 and machine.loc[machine["kind"] == "history",
                                                                       "contribution"].isna().all()


def test_csv_of_a_cold_start_leaves_what_would_change_it_empty() -> None:
    explanation = ten_items(cold_start=True, as_of=None)
    explanation = dataclasses.replace(explanation, items=[dataclasses.replace(i, counterfactual=None)
                                                          for i in explanation.items])
    frame = pd.read_csv(io.BytesIO(reports.render_report(explanation, "csv")), keep_default_na=False)
    summary = frame[frame["kind"] == "summary"]
    assert set(summary["what_would_change_it"]) == {""} and set(frame["as_of"]) == {""}
    assert all(summary["reasons"].str.len() > 0)
