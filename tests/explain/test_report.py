"""Reports: self-contained HTML, a PDF an agent can print, a CSV that adds up, never a raw id.

Rendering is tested on a hand-built explanation (tricky shop text included); ``write_report`` on
the explanation tests' synthetic shop, looked up by raw shop ids that must never reach a report.
"""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cli
from analytics import schema as s
from analytics.privacy import pseudonymise
from dashboard import report_pdf, reports
from dashboard.report_csv import CSV_COLUMNS
from errors import RecsightError
from tests.conftest import TEST_SECRET
from tests.explain.test_figures import HOSTILE_TITLE, PSEUDONYM, sample_explanation
from workflows.reports import write_report

# Anything a browser would fetch: src/href/url()/@import pointing at another host.
EXTERNAL = re.compile(r"""(?:\bsrc|\bhref)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""",
                      re.IGNORECASE)


def _text_of_pdf(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True,
                          text=True).stdout


# --------------------------------------------------------------------------- HTML


@pytest.mark.parametrize("charts", ["svg", "css"])
def test_html_is_self_contained_and_holds_every_item_and_reason(charts: str) -> None:
    explanation = sample_explanation()
    page = reports.render_report(explanation, "html", charts=charts).decode("utf-8")
    assert not EXTERNAL.search(page)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<script" not in page.lower()
    assert explanation.user_id in page and explanation.model_version in page and "2024-03-24 10:05:00 UTC" in page
    for item in explanation.items:
        for reason in item.reasons:
            assert reason in page
        assert item.counterfactual in page
    assert "Rose Face Cream 50ml" in page and "Favourite brands" in page and "B1 (50%); B2 (25%)" in page
    assert "€9.50 – €19.99 (median €12.00, bought)" in page and "Time based" not in page
    # Shop text is shown, never obeyed: the hostile title stays text.
    assert HOSTILE_TITLE not in page and "&lt;a href=" in page
    if charts == "svg":
        assert page.count("<svg") == 6  # a waterfall and a history chart per item
    else:
        assert "<svg" not in page and 'class="bar pos"' in page and "+0.800" in page


@pytest.mark.parametrize("breakage", ["no browser", "no plotly.js"])
def test_charts_fall_back_to_html_bars_when_they_cannot_be_drawn(breakage: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    if breakage == "no browser":
        monkeypatch.setattr(report_pdf, "_browser", lambda: None)
    else:
        monkeypatch.setattr(report_pdf, "_plotly_js", lambda: tmp_path / "missing.js")
    page = reports.render_report(sample_explanation(), "html").decode("utf-8")
    assert "<svg" not in page and 'class="bar neg"' in page and "-0.300" in page


def test_cold_start_report_says_so_and_skips_missing_history() -> None:
    page = reports.render_report(sample_explanation(cold_start=True), "html", charts="css").decode("utf-8")
    assert "Cold start" in page
    assert "No past events" in page


def test_unknown_format_is_one_clear_line() -> None:
    with pytest.raises(RecsightError, match="unknown report format 'docx'") as err:
        reports.render_report(sample_explanation(), "docx")
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- PDF


def test_pdf_prints_every_item_title_and_reason_on_rendered_pages(tmp_path: Path) -> None:
    explanation = sample_explanation()
    pdf = reports.render_report(explanation, "pdf")
    assert pdf.startswith(b"%PDF")
    text = re.sub(r"\s+", " ", _text_of_pdf(pdf, tmp_path))
    assert explanation.user_id in text
    for item in explanation.items:
        assert item.title in text
        for reason in item.reasons:
            assert reason in text
    assert "Affinity to the item's brand" in text  # chart labels are real text, not pictures
    # The items, then the appendix on a page of its own (tests/dashboard/test_reports.py counts the
    # pages); the pages render to non-blank images.
    subprocess.run(["pdftoppm", "-r", "30", "-gray", str(tmp_path / "report.pdf"), str(tmp_path / "page")],
                   check=True)
    pages = sorted(tmp_path.glob("page-*.pgm"))
    assert len(pages) >= 2
    for page in pages:
        pixels = np.frombuffer(page.read_bytes().split(b"\n", 3)[3], dtype=np.uint8)
        assert (pixels < 128).mean() > 0.002  # some dark ink on every page


def test_pdf_without_a_browser_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_pdf.shutil, "which", lambda name: None)
    with pytest.raises(RecsightError, match="PDF reports need Chromium"):
        reports.render_report(sample_explanation(), "pdf")


# --------------------------------------------------------------------------- CSV


def test_csv_parses_and_each_items_contributions_add_up_to_its_score() -> None:
    explanation = sample_explanation()
    frame = pd.read_csv(io.BytesIO(reports.render_report(explanation, "csv")))
    assert tuple(frame.columns) == CSV_COLUMNS
    assert set(frame["user_id"]) == {PSEUDONYM}
    contributions = frame[frame["kind"] == "contribution"]
    for item in explanation.items:
        rows = contributions[contributions["rank"] == item.rank]
        assert len(rows) == len(item.contributions)
        assert rows["base_value"].iloc[0] + rows["contribution"].sum() == pytest.approx(item.score, abs=1e-12)
        assert rows["score"].iloc[0] == item.score  # floats round-trip exactly
    history = frame[frame["kind"] == "history"]
    assert len(history) == sum(len(i.history) for i in explanation.items)
    assert history["contribution"].isna().all()  # summing contributions never counts history
    assert list(history[history["rank"] == 1]["attribution"]) == [h.attribution for h in explanation.items[0].history]
    # A title a spreadsheet would run as a formula is neutralised.
    assert "'=HYPERLINK(\"x\")" in set(frame["title"])


# --------------------------------------------------------------------------- write_report
# On the explanation tests' shared synthetic shop (tests/explain/conftest.py), ingested from raw
# shop ids with TEST_SECRET, with the real explanations.


@pytest.fixture(scope="module")
def raw_ids(shop) -> list[str]:
    """Two raw shop ids of active customers, as the shop's own files spell them."""
    events = pd.read_parquet(shop.raw / "events.parquet", columns=[s.USER_ID])
    return events[s.USER_ID].value_counts().index[:2].tolist()


def test_cli_report_looks_up_a_raw_id_and_prints_only_its_pseudonym(shop, raw_ids, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    raw = raw_ids[0]
    out = tmp_path / "report.pdf"
    assert cli.main(["report", "--db", str(shop.db), "--models", str(shop.models), "--user", raw,
                     "--format", "pdf", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    text = re.sub(r"\s+", " ", _text_of_pdf(out.read_bytes(), tmp_path))
    assert pseudonymise(raw, TEST_SECRET) in text and raw not in text
    assert "What moved the score" in text and "#10 " in text  # the whole top 10 is there


def test_write_report_csv_adds_up_and_names_a_file_by_pseudonym_in_a_folder(shop, raw_ids, tmp_path: Path) -> None:
    raw, pseudonym = raw_ids[0], pseudonymise(raw_ids[0], TEST_SECRET)
    out = write_report(shop.db, shop.models, raw, fmt="csv", out=tmp_path / "nested" / "r.csv",
                              secret=TEST_SECRET, k=3)
    assert out == tmp_path / "nested" / "r.csv"
    assert raw.encode() not in out.read_bytes()
    frame = pd.read_csv(out)
    assert set(frame["user_id"]) == {pseudonym} and sorted(frame["rank"].unique()) == [1, 2, 3]
    assert (frame["kind"] == "history").any()
    for _, rows in frame[frame["kind"] == "contribution"].groupby("rank"):
        assert rows["base_value"].iloc[0] + rows["contribution"].sum() == pytest.approx(rows["score"].iloc[0], abs=1e-6)
    named = write_report(shop.db, shop.models, pseudonym, fmt="csv", out=tmp_path, secret=TEST_SECRET, k=1)
    assert named == tmp_path / f"{pseudonym}.csv"  # an existing folder: the file is named by pseudonym
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temp files behind


def test_batch_writes_one_report_per_customer_named_by_pseudonym(shop, raw_ids, tmp_path: Path) -> None:
    listing = tmp_path / "customers.txt"
    second = pseudonymise(raw_ids[1], TEST_SECRET)
    listing.write_text(f"# weekly review\n{raw_ids[0]}\n\n{second}\n{raw_ids[0]}\n")
    folder = write_report(shop.db, shop.models, str(listing), fmt="csv", out=tmp_path / "out",
                                 secret=TEST_SECRET, k=2)
    assert folder == tmp_path / "out"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([f"{pseudonymise(raw_ids[0], TEST_SECRET)}.csv", f"{second}.csv"])


def test_batch_with_an_unknown_customer_names_the_line_and_writes_nothing(shop, raw_ids, tmp_path: Path) -> None:
    listing = tmp_path / "customers.txt"
    listing.write_text(f"{raw_ids[0]}\nnobody-here\n")
    with pytest.raises(RecsightError, match=r"1 customer\(s\) in .* are unknown \(line 2\)"):
        write_report(shop.db, shop.models, str(listing), fmt="html", out=tmp_path / "out", secret=TEST_SECRET)
    assert not list((tmp_path / "out").iterdir())


def test_bad_format_and_unwritable_paths_are_one_line_errors(shop, raw_ids, tmp_path: Path) -> None:
    with pytest.raises(RecsightError, match="unknown report format"):
        write_report(tmp_path / "missing.duckdb", shop.models, raw_ids[0], fmt="xlsx", out=tmp_path / "r")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(RecsightError, match="is a file, not a folder") as err:
        write_report(shop.db, shop.models, raw_ids[0], fmt="html", out=blocker / "r.html", secret=TEST_SECRET)
    assert "\n" not in str(err.value)
    listing = tmp_path / "customers.txt"
    listing.write_text(f"{raw_ids[0]}\n")
    with pytest.raises(RecsightError, match="is a file, not a folder"):
        write_report(shop.db, shop.models, str(listing), fmt="html", out=blocker, secret=TEST_SECRET)
