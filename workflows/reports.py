"""Exporting reports: find the customers, explain them, render, and write the files atomically.

What ``cli.py report`` runs, and what the API and the lookup page call for a report. Rendering is
:mod:`dashboard.reports`; here are the steps around it: one customer or a list of them (batch
mode), ids resolved before anything is written, each explanation completed with what a report
states and the interactive views do not compute (the counterfactual sentences, verified by
re-scoring: :mod:`workflows.report_counterfactuals`; the data's reference date), charts of a chunk
of customers drawn by one browser start, every file written through :mod:`atomic`. The shop's
currency (``settings.currency``) goes into the profile a report prints (``profile["currency"]``),
so its spend and price band say what they are in.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from analytics.customers import resolve_customer
from atomic import write_bytes
from dashboard.reports import check_format, render_many, render_report
from errors import RecsightError
from explain.types import CustomerExplanation
from settings import DEFAULT_CURRENCY

if TYPE_CHECKING:
    from models.serving import Recommender

__all__ = ["write_report", "report_bytes", "complete_for_report", "in_currency", "BATCH_CHUNK",
           "INTERACTIVE_COUNTERFACTUALS"]

log = logging.getLogger(__name__)

BATCH_CHUNK = 25  # customers whose charts are drawn by one browser start in batch mode
INTERACTIVE_COUNTERFACTUALS = 5  # items of an API or page report that get "what would change it" (seconds each)


def write_report(db: Path | str, models: Path | str, user: str, fmt: str, out: Path | str, secret: str = "",
                 k: int = 10, currency: str = DEFAULT_CURRENCY) -> Path:
    """Explain ``user``'s top ``k`` and write the report to ``out``; return the path written.

    ``user`` is a shop customer id (looked up with ``secret``) or a pseudonym. If ``out`` is an
    existing folder, the file is named ``<pseudonym>.<fmt>`` inside it.

    Batch mode: if ``user`` names an existing file, it is a list of customers, one id or pseudonym
    per line (blank lines and lines starting with ``#`` are skipped). ``out`` is then a folder
    (created if missing) that receives one ``<pseudonym>.<fmt>`` per customer, and the folder is
    returned. Every id is resolved before anything is written, so one unknown id stops the batch
    with the line numbers to fix instead of leaving half a folder.

    Files are written atomically (a temporary file in the same folder, then a rename) and are
    readable by their owner only, as they describe a customer's behaviour. Amounts are in
    ``currency`` (``settings.currency``).
    """
    check_format(fmt)
    # Imported here: the models (torch) are only needed to explain, not to check the arguments.
    from models.serving import Recommender
    from workflows.explaining import explain_customer

    batch = Path(user).is_file()
    typed = _read_user_list(Path(user)) if batch else [user]
    out = Path(out)
    if batch or out.is_dir():
        folder: Path | None = _prepare_folder(out)
    else:
        _prepare_folder(out.parent)  # fail before any model is loaded if the file cannot be written
        folder = None
    recommender = Recommender.load(Path(db), Path(models))
    try:
        pseudonyms = _resolve_all(recommender, typed, secret, Path(user) if batch else None)
        written: list[Path] = []
        for start in range(0, len(pseudonyms), BATCH_CHUNK):
            started = time.perf_counter()
            explanations = [in_currency(explain_customer(recommender, p, k=k, counterfactuals=True), currency)
                            for p in pseudonyms[start:start + BATCH_CHUNK]]
            for explanation, data in zip(explanations, render_many(explanations, fmt, "svg")):
                target = folder / f"{explanation.user_id}.{fmt}" if folder is not None else out
                _write_atomic(target, data)
                written.append(target)
            log.info("wrote %d %s report(s) in %.1f s", len(explanations), fmt, time.perf_counter() - started)
    finally:
        recommender.close()
    return folder if batch else written[0]


def complete_for_report(recommender: Recommender, explanation: CustomerExplanation, k: int,
                        limit: int | None = None) -> CustomerExplanation:
    """``explanation`` with what a report states and the interactive views leave out: each item's
    counterfactual sentences (what would take it out of the top ``k``, what would lift it) and the
    data's reference date.

    For an explanation already computed (the lookup page's cached one, explained for the same top
    ``k``): nothing is explained again, only the counterfactual searches run (several seconds for ten
    items: :mod:`workflows.report_counterfactuals`); items that carry sentences keep them. A cold
    start has no history to take away, so its items get none. ``limit``: only the first ``limit``
    items get sentences.
    """
    as_of = explanation.as_of if explanation.as_of is not None else recommender.as_of(explanation.user_id)
    items = explanation.items
    if not explanation.cold_start and any(item.counterfactual is None for item in items):
        # Imported here, as in write_report: the models (torch) only when there is something to search.
        from workflows.report_counterfactuals import with_counterfactuals

        items = with_counterfactuals(recommender, items, k, limit=limit)
    return dataclasses.replace(explanation, items=items, as_of=as_of)


def report_bytes(recommender: Recommender, user_id: str, fmt: str, k: int = 10, charts: str = "css",
                 explanation: CustomerExplanation | None = None, currency: str = DEFAULT_CURRENCY) -> bytes:
    """One customer's report in ``fmt``, complete (counterfactual sentences, reference date): what
    the API and the lookup page's export send. ``explanation`` is the customer's explained top
    ``k`` where the caller holds it already; ``charts`` as :func:`dashboard.reports.render_report`
    (``"css"``, the default, needs no browser for HTML and answers at once). Someone waits on this
    answer, so only the first :data:`INTERACTIVE_COUNTERFACTUALS` items get their verified "what
    would change it" sentences (a few seconds); ``cli.py report`` gives every item its own. Amounts
    are in ``currency`` (``settings.currency``)."""
    check_format(fmt)
    started = time.perf_counter()
    if explanation is None:
        from workflows.explaining import explain_customer

        explanation = explain_customer(recommender, user_id, k)
    complete = complete_for_report(recommender, explanation, k, limit=INTERACTIVE_COUNTERFACTUALS)
    data = render_report(in_currency(complete, currency), fmt, charts=charts)
    log.info("%s report of %s in %.1f s", fmt, user_id, time.perf_counter() - started)
    return data


def in_currency(explanation: CustomerExplanation, currency: str) -> CustomerExplanation:
    """``explanation`` whose profile names the shop's ``currency``: the data holds bare amounts, and
    the report's profile card (:mod:`dashboard.report_profile`) writes its spend and prices with it."""
    return dataclasses.replace(explanation, profile={**explanation.profile, "currency": currency})


def _read_user_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RecsightError(f"cannot read the customer list {path}: {exc}") from None
    users = [line.strip() for line in lines]
    if not any(u and not u.startswith("#") for u in users):
        raise RecsightError(f"the customer list {path} has no customer ids (one per line)")
    return users


def _resolve_all(recommender: Recommender, typed: list[str], secret: str, listing: Path | None) -> list[str]:
    """Pseudonyms of every typed id, in order and without repeats; unknown ids fail together."""
    with recommender.connection() as con:
        return _resolve_with(con, typed, secret, listing)


def _resolve_with(con: duckdb.DuckDBPyConnection, typed: list[str], secret: str, listing: Path | None) -> list[str]:
    if listing is None:
        return [resolve_customer(con, typed[0], secret)]
    pseudonyms: dict[str, None] = {}
    unknown: list[int] = []
    for number, entry in enumerate(typed, start=1):
        if not entry or entry.startswith("#"):
            continue
        try:
            pseudonyms[resolve_customer(con, entry, secret)] = None
        except RecsightError:
            unknown.append(number)
    if unknown:
        lines = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise RecsightError(f"{len(unknown)} customer(s) in {listing} are unknown (line {lines}); "
                            "no reports written")
    return list(pseudonyms)


def _prepare_folder(folder: Path) -> Path:
    if folder.exists() and not folder.is_dir():
        raise RecsightError(f"cannot write into {folder}: it is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecsightError(f"cannot create the report folder {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK):
        raise RecsightError(f"cannot write into {folder}: permission denied")
    return folder


def _write_atomic(path: Path, data: bytes) -> None:
    """Through :mod:`atomic` (readers never see half a report), with a one-line error."""
    try:
        write_bytes(path, data)
    except OSError as exc:
        raise RecsightError(f"cannot write {path}: {exc.strerror or exc}") from None
