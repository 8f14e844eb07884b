"""A customer's report as one flat CSV table, for spreadsheets and pandas.

Numbers are written exactly, so a spreadsheet's sums match the scores the dashboard shows; shop
text that a spreadsheet would run as a formula is neutralised.
"""

from __future__ import annotations

import csv
import io

from explain.types import CustomerExplanation

__all__ = ["CSV_COLUMNS", "report_csv"]

CSV_COLUMNS = (
    # who, when, which model: repeated on every row so any filtered slice still says what it is
    "user_id", "generated_at", "model_version",
    # the recommended item
    "rank", "item_id", "title", "score", "base_value",
    # "contribution": one ranker feature's SHAP value; "history": one past event's attribution
    "kind",
    "feature", "label", "group", "value", "contribution",
    "event_item_id", "event_title", "event_type", "event_ts", "attribution", "attention", "score_share",
)
"""CSV layout: one row per user × item × feature (``kind == "contribution"``), then one row per
user × item × history event (``kind == "history"``). Per item, ``base_value`` plus the sum of
``contribution`` over its contribution rows equals ``score``; history rows leave ``contribution``
empty (their part of the attention feature is ``score_share``), so summing never double counts.
Numbers are written exactly (``repr``); titles and labels that a spreadsheet would run as a formula
(leading ``= + - @``) get a leading ``'``; ids are written as they are."""

_CSV_TEXT_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value: str) -> str:
    """Shop text a spreadsheet must not run as a formula (``=cmd|...``): prefixed with ``'``."""
    return "'" + value if value.startswith(_CSV_TEXT_TRIGGERS) else value


def _f(value: float) -> str:
    """A float exactly as stored (repr round-trips), so sums in a spreadsheet match the score."""
    return repr(float(value))


def report_csv(explanation: CustomerExplanation) -> bytes:
    """The customer's report as one flat UTF-8 table, laid out as :data:`CSV_COLUMNS` says."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    shared = {"user_id": explanation.user_id, "generated_at": explanation.generated_at.isoformat(),
              "model_version": explanation.model_version}
    for item in explanation.items:
        about = {**shared, "rank": item.rank, "item_id": item.item_id, "title": _csv_text(item.title),
                 "score": _f(item.score), "base_value": _f(item.base_value)}
        for c in item.contributions:
            writer.writerow({**about, "kind": "contribution", "feature": c.feature, "label": _csv_text(c.label),
                             "group": c.group, "value": "" if c.value is None else _f(c.value),
                             "contribution": _f(c.contribution)})
        for h in item.history:
            writer.writerow({**about, "kind": "history", "event_item_id": h.item_id,
                             "event_title": _csv_text(h.title), "event_type": h.event_type,
                             "event_ts": h.ts.isoformat(), "attribution": _f(h.attribution),
                             "attention": _f(h.attention), "score_share": _f(h.score_share)})
    return buffer.getvalue().encode("utf-8")
