"""A customer's explained recommendations as a file an agent can keep, print, send or analyse.

Three formats, all rendered from one :class:`~explain.types.CustomerExplanation`, so every number
matches the dashboard and the API:

- ``html``: one self-contained page (:mod:`dashboard.report_html`): a short header (pseudonym, the
  data's reference date, model version), the profile, then per item its rank, title, reasons and
  what would change it, several items to a printed page; the numbers and charts behind them in an
  appendix. Charts are the :mod:`dashboard.explanation_figures` figures drawn to inline SVG by
  plotly.js itself (:mod:`dashboard.report_pdf`), so the page loads nothing from anywhere; where
  no browser can draw them, the charts become plain HTML/CSS bars with the same numbers (logged
  as a warning), so a report is never lost to charts.
- ``pdf``: that page printed by headless Chromium (local fonts only, no network).
- ``csv``: one flat table for spreadsheets and pandas, the readable rows first
  (:mod:`dashboard.report_csv`).

Rendering only: finding the customer, explaining, computing the counterfactual sentences and
writing files is :mod:`workflows.reports`; what the explanation does not carry, the report does
not show. The customer appears only as a pseudonym.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from dashboard.explanation_figures import history_attributions, shap_waterfall
from dashboard.report_csv import report_csv
from dashboard.report_html import TOP_CONTRIBUTIONS, TOP_HISTORY, report_page
from dashboard.report_pdf import print_pdf, svg_charts
from errors import RecsightError
from explain.types import CustomerExplanation

__all__ = ["FORMATS", "CHART_STYLES", "check_format", "render_report", "render_many"]

FORMATS = ("html", "pdf", "csv")
CHART_STYLES = ("svg", "css")
# A report chart: drawn for the printed width, its height per bar and for its axis, its type size (px).
_WIDTH_PX, _ROW_PX, _AXIS_PX, _FONT_PX = 700, 13, 36, 10


def check_format(fmt: str) -> None:
    """Refuse an unknown format in one line, before any work is done for it."""
    if fmt not in FORMATS:
        raise RecsightError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")


def render_report(explanation: CustomerExplanation, fmt: str, *, charts: str = "svg") -> bytes:
    """The report of one customer as bytes in ``fmt`` (``"html"``, ``"pdf"`` or ``"csv"``).

    ``charts`` is ``"svg"`` (plotly.js in headless Chromium, a few seconds; HTML bars where no
    browser can draw) or ``"css"`` (HTML bars only: instant, no browser needed for HTML, the
    choice for an interactive download). CSV has no charts.
    """
    return render_many([explanation], fmt, charts)[0]


def render_many(explanations: Sequence[CustomerExplanation], fmt: str, charts: str = "svg") -> list[bytes]:
    """Render several customers at once, so their charts share one browser session."""
    check_format(fmt)
    if charts not in CHART_STYLES:
        raise RecsightError(f"unknown chart style {charts!r}: choose svg or css")
    if fmt == "csv":
        return [report_csv(e) for e in explanations]
    per_report = [item_figures(e) for e in explanations] if charts == "svg" else []
    svgs = svg_charts([fig for figs in per_report for fig in figs]) if charts == "svg" else None
    drawn = iter(svgs or ())
    pages = []
    for number, explanation in enumerate(explanations):
        mine = [next(drawn) for _ in per_report[number]] if svgs is not None else None
        pages.append(report_page(explanation, mine).encode("utf-8"))
    if fmt == "pdf":
        return [print_pdf(page) for page in pages]
    return pages


def item_figures(explanation: CustomerExplanation) -> list[go.Figure]:
    """Per item, in order: its waterfall, then its history chart when it has history.

    Drawn for the report's appendix: the report's own headings name each chart, so the figures'
    titles are dropped, and rows are tighter and type smaller than on screen, so a printed page
    holds three items' charts.
    """
    out = []
    for item in explanation.items:
        out.append(shap_waterfall(item, top=TOP_CONTRIBUTIONS))
        if item.history:
            out.append(history_attributions(item, top=TOP_HISTORY))
    for fig in out:
        rows = len(fig.data[0].y) if fig.data and fig.data[0].y is not None else 1
        fig.update_layout(title_text="", font_size=_FONT_PX, margin={"t": 4, "b": 4},
                          height=_AXIS_PX + _ROW_PX * rows, width=_WIDTH_PX)
    return out
