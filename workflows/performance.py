"""Live recommendation performance: the shown lists coming in (``POST /api/v1/impressions``) and
the figures going out (the Performance page; next, experiment analysis and the simulator).

In: :func:`append_impressions` validates and stores a batch through the shop's impression writer
(:mod:`analytics.impressions`), with the event intake's limits and errors (:class:`BatchTooLarge`
for over :data:`MAX_IMPRESSIONS_PER_BATCH`, :class:`~workflows.intake.IntakeBusy` when the
writer lock stays busy): durable when it returns, so the API may answer 200 then.

Out: every read opens the shop as a reader sees it (snapshot and live segment,
:func:`analytics.live_read.open_live`), loads the impressions, attributes clicks, carts and
purchases to them by last touch within the window (:mod:`analytics.attribution`), sums, and
closes; one short-lived read-only connection per question, as the Overview's reads. Nothing is
cached: a page's figures are as fresh as the last acknowledged batch of either kind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from analytics import attribution as A
from analytics import schema as S
from analytics.impressions import (
    EXPERIMENT,
    MODEL_VERSION,
    POSITION,
    VARIANT,
    attach_shown,
    impression_store_for,
    shown_folder,
)
from analytics.live_read import open_live
from analytics.live_segments import list_segments, live_folder
from errors import RecsightError
from workflows.intake import APPEND_TIMEOUT_S, BatchTooLarge, IntakeResult

__all__ = [
    "MAX_IMPRESSIONS_PER_BATCH", "HOURLY_UP_TO_DAYS", "VARIANT_KEYS", "append_impressions", "has_impressions",
    "PerformanceChoices", "PerformanceFigures", "performance_choices", "performance_figures", "customer_outcomes",
    "choose_bucket", "attributed_connection",
]

log = logging.getLogger(__name__)

MAX_IMPRESSIONS_PER_BATCH = 1_000
HOURLY_UP_TO_DAYS = 3  # a selection of at most this many days is drawn per hour, longer ones per day
VARIANT_KEYS = (MODEL_VERSION, EXPERIMENT, VARIANT)


def append_impressions(db_path: Path | str, impressions: Sequence[object], secret: str, *,
                       timeout: float | None = APPEND_TIMEOUT_S) -> IntakeResult:
    """Validate and store a batch of impressions (see :mod:`analytics.impressions` for the
    fields); refused ones come back with a reason each, repeated ones as duplicates."""
    if not isinstance(impressions, list | tuple):
        raise RecsightError(f"impressions must be a list of objects, got {type(impressions).__name__}")
    if len(impressions) > MAX_IMPRESSIONS_PER_BATCH:
        raise BatchTooLarge("impressions", len(impressions), MAX_IMPRESSIONS_PER_BATCH)
    result = impression_store_for(db_path).append(impressions, secret, timeout=timeout)
    log.info("impressions: %d accepted, %d duplicates, %d rejected", result.accepted, result.duplicates,
             len(result.rejected))
    return result


def has_impressions(db_path: Path | str) -> bool:
    """Whether any impression was stored for the shop (a directory listing, no SQL)."""
    return bool(list_segments(shown_folder(db_path)))


# --------------------------------------------------------------------------- reads


@contextmanager
def attributed_connection(db_path: Path | str, window: timedelta = A.DEFAULT_WINDOW
                          ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection with the temp tables ``shown`` and ``attributed`` (every impression
    row with its attributed outcomes), closed on leaving; database errors become one line."""
    try:
        con = _open_events(Path(db_path))
    except duckdb.Error as exc:
        log.warning("performance: cannot read %s: %s", db_path, exc)
        raise RecsightError(f"the shop database {db_path} could not be read") from None
    try:
        attach_shown(con, db_path)
        A.attribute(con, window=window)
        yield con
    except duckdb.Error as exc:
        log.warning("performance query on %s failed: %s", db_path, exc)
        raise RecsightError(f"the impressions of {db_path} could not be read") from None
    finally:
        con.close()


def _open_events(db_path: Path) -> duckdb.DuckDBPyConnection:
    """The shop as a reader sees it; a shop without any event yet (no file, no live segment)
    reads as an empty one, so impressions still show, with nothing attributed."""
    if db_path.exists() or live_folder(db_path).is_dir():
        return open_live(db_path)[0]
    con = duckdb.connect(":memory:")
    S.create_tables(con)
    for table in (S.EVENTS, S.ITEMS):
        con.execute(f"CREATE TEMP VIEW all_{table} AS SELECT * FROM {table}")
    return con


@dataclass(frozen=True)
class PerformanceChoices:
    """What the page's filters can offer: the list names, the model versions (None: impressions
    sent without one) and the first and last day with an impression."""

    lists: list[str]
    versions: list[str | None]
    bounds: tuple[date, date]


def performance_choices(db_path: Path | str) -> PerformanceChoices | None:
    """The filters' choices, or None when no impression was stored yet."""
    if not has_impressions(db_path):
        return None
    con = duckdb.connect(":memory:")
    try:
        attach_shown(con, db_path)
        bounds = A.shown_bounds(con)
        lists, versions = A.shown_labels(con)
    except duckdb.Error as exc:
        log.warning("performance: cannot read the impressions of %s: %s", db_path, exc)
        raise RecsightError(f"the impressions of {db_path} could not be read") from None
    finally:
        con.close()
    return None if bounds is None else PerformanceChoices(lists, versions, bounds)


def choose_bucket(first: date, last: date) -> str:
    """"hour" for a selection of at most :data:`HOURLY_UP_TO_DAYS` days, else "day"."""
    return "hour" if (last - first).days < HOURLY_UP_TO_DAYS else "day"


@dataclass(frozen=True)
class PerformanceFigures:
    """The sums behind the page for one filter (frames of :func:`analytics.attribution.figures`):
    the selection's total (one row), per model version and variant, per position, and over time
    per model version and variant in ``bucket`` periods."""

    flt: A.PerformanceFilter
    window: timedelta
    bucket: str
    total: pd.DataFrame
    by_variant: pd.DataFrame
    by_position: pd.DataFrame
    over_time: pd.DataFrame
    span: tuple[date, date] | None = None  # the days the selection covers (None: no impression)


def performance_figures(db_path: Path | str, flt: A.PerformanceFilter = A.EVERYTHING, *,
                        window: timedelta = A.DEFAULT_WINDOW) -> PerformanceFigures:
    """Every figure of the Performance page for ``flt``, from one attribution."""
    with attributed_connection(db_path, window) as con:
        bounds = A.shown_bounds(con)
        span = None if bounds is None else (max(bounds[0], flt.start or bounds[0]),
                                            min(bounds[1], flt.end or bounds[1]))
        bucket = "day" if span is None else choose_bucket(*span)
        return PerformanceFigures(
            flt=flt, window=window, bucket=bucket, span=span,
            total=A.figures(con, (), flt),
            by_variant=A.figures(con, VARIANT_KEYS, flt),
            by_position=A.figures(con, (POSITION,), flt),
            over_time=A.figures(con, VARIANT_KEYS, flt, bucket=bucket),
        )


def customer_outcomes(db_path: Path | str, *, experiment: str | None = None,
                      flt: A.PerformanceFilter = A.EVERYTHING,
                      window: timedelta = A.DEFAULT_WINDOW) -> pd.DataFrame:
    """Per customer and (model version, experiment, variant): lists, item impressions, clicks,
    carts, purchases, revenue (:func:`analytics.attribution.customer_outcomes`), for experiment
    statistics; ``experiment`` narrows to that experiment's impressions."""
    with attributed_connection(db_path, window) as con:
        return A.customer_outcomes(con, flt, experiment=experiment)
