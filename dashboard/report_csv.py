"""A customer's report as one flat CSV table, for spreadsheets and pandas.

Layout (:data:`CSV_COLUMNS`): one table; its first column is the customer's pseudonym and its
second, ``kind``, says what each row is.

- ``kind == "summary"``: the readable sheet, first, one row per recommended item in rank order:
  ``rank``, ``item_id``, ``title``, ``reasons`` (the reason sentences, one per line of the cell),
  ``what_would_change_it`` (the counterfactual sentences; empty where none were computed, e.g. a
  cold start) and ``as_of``, the data's reference date. A spreadsheet user reads these rows (the
  columns they fill come first, after the pseudonym); pandas reads them as
  ``frame[frame.kind == "summary"]``, and ``frame.reasons.str.split("\\n")`` gives the sentences back.
- ``kind == "contribution"``: the machine rows after them, one per item × ranker feature (its
  TreeSHAP value). Per item, ``base_value`` plus the sum of ``contribution`` over its contribution
  rows equals ``score`` (the ranker's raw score, in its own units: only the order means anything).
- ``kind == "history"``: one per item × past event that drove the attention network. They leave
  ``contribution`` empty (their part of the attention feature is ``score_share``), so summing
  ``contribution`` never double counts.

``as_of``, ``user_id`` (a pseudonym), ``model_version`` and ``generated_at`` are on every row, so
any filtered slice still says what it is. Numbers are written exactly (``repr``), so a
spreadsheet's sums match the scores the dashboard shows; times are ISO 8601 in UTC (``as_of`` and
event times without an offset, as the shop stores them). Shop text that a spreadsheet would run as
a formula (leading ``= + - @``) gets a leading ``'``; ids are written as they are.
"""

from __future__ import annotations

import csv
import io

from explain.types import CustomerExplanation

__all__ = ["CSV_COLUMNS", "KINDS", "report_csv"]

KINDS = ("summary", "contribution", "history")  # the values of ``kind``, in the order the rows come
CSV_COLUMNS = (
    # who (a pseudonym), then what the row is
    "user_id", "kind",
    # the recommended item and, on summary rows, what the reader gets
    "rank", "item_id", "title", "reasons", "what_would_change_it",
    # the reference date, which model, when written: on every row
    "as_of", "model_version", "generated_at",
    # the machine rows: the raw score and its parts, then the history behind the attention signal
    "score", "base_value",
    "feature", "label", "group", "value", "contribution",
    "event_item_id", "event_title", "event_type", "event_ts", "attribution", "attention", "score_share",
)
"""The columns, readable ones first; see the module docstring for what each kind of row fills."""

_CSV_TEXT_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value: str) -> str:
    """Shop text a spreadsheet must not run as a formula (``=cmd|...``): prefixed with ``'``."""
    return "'" + value if value.startswith(_CSV_TEXT_TRIGGERS) else value


def _f(value: float) -> str:
    """A float exactly as stored (repr round-trips), so sums in a spreadsheet match the score."""
    return repr(float(value))


def report_csv(explanation: CustomerExplanation) -> bytes:
    """The customer's report as one flat UTF-8 table, laid out as the module docstring says."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    shared = {"as_of": "" if explanation.as_of is None else explanation.as_of.isoformat(),
              "user_id": explanation.user_id, "model_version": explanation.model_version,
              "generated_at": explanation.generated_at.isoformat()}
    for item in explanation.items:
        writer.writerow({**shared, "kind": "summary", "rank": item.rank, "item_id": item.item_id,
                         "title": _csv_text(item.title),
                         "reasons": "\n".join(_csv_text(r) for r in item.reasons),
                         "what_would_change_it": _csv_text(item.counterfactual or "")})
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
