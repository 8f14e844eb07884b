"""Every customer's list, ranked at training time: what is expensive per request is done once.

:func:`precompute_top_items` runs the serving path for every customer of the shop in batch (SQL
over all users at once is far cheaper per user than one at a time) and stores each one's first
:data:`K_PRECOMPUTED` items with their feature rows and scores in the model version
(``serving/top_items.parquet``). :class:`models.serving.Recommender` answers ``recommend(user, k)``
from that table when it can (a customer in it, ``k`` within what was stored) and runs the live
path otherwise (cold starts, larger ``k``, a model version written before the table existed);
``rescore`` always runs the live path.

This module owns the file: its name, its metadata key, its columns and how it is written; the
serving side (:class:`models.serving.TopItems`) reads it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from analytics import schema as s
from models.batch import HistoryTables, Models, feature_frame
from progress import SILENT, Progress

__all__ = ["K_PRECOMPUTED", "TOP_ITEMS_FILE", "TOP_ITEMS_META", "TITLE", "precompute_top_items", "customers",
           "rank_customers", "write_top_items", "item_titles"]

log = logging.getLogger(__name__)

# Items stored per customer at training time. Every list the product shows is the top 10 (the
# lookup page, reports, the API's default k); 50 also covers the API's larger k up to half its
# maximum (100; beyond 50 the live path answers). The cost is memory in the server: 50 rows x ~48
# float64 columns is ~19 KB per customer (~100 MB for the 5,000-customer demo shop, ~430 MB for
# Amazon Beauty's 22,363), and ~10 s of training per 4,000 customers.
K_PRECOMPUTED = 50
TOP_ITEMS_FILE = "top_items.parquet"  # in the version's serving/ folder
TOP_ITEMS_META = "top_items"  # the metadata key describing it
TITLE = "title"  # the column holding the title each stored item is shown with
_PRECOMPUTE_CHUNK = 4000  # customers per batch: bounds the feature frame (~4000 x 100 rows x 48 columns)


def precompute_top_items(
    con: duckdb.DuckDBPyConnection, tables: HistoryTables, models: Models, out: Path,
    k: int = K_PRECOMPUTED, chunk: int = _PRECOMPUTE_CHUNK, progress: Progress = SILENT,
) -> dict[str, Any]:
    """Rank every customer of the shop with the serving path and write each one's top ``k`` to ``out``.

    ``tables`` are the serving tables as :meth:`models.serving.Recommender.load` binds them (the
    shop's events, the serving ``as_of``, the saved index and item table); the candidate, feature
    and ranker code of the live path runs over customers in batches of ``chunk``, each customer's
    network scores computed alone as at request time, so the stored rows are the live answer.
    ``progress`` counts the customers, a batch at a time. Returns what the model's metadata
    records under ``top_items``. The same over a Dask cluster's workers is
    :func:`models.precompute_dask.precompute_top_items_dask`.
    """
    started = time.perf_counter()
    users = customers(con, tables)
    progress.phase("precompute: ranking every customer", total=len(users), unit="customers")
    top = rank_customers(con, tables, models, users, k, chunk, progress.advance)
    return write_top_items(con, top, out, k, len(users), started, progress)


def customers(con: duckdb.DuckDBPyConnection, tables: HistoryTables) -> list[str]:
    """Every customer with a behaviour in the serving history, in order: who gets a list."""
    return [row[0] for row in con.execute(
        f"SELECT DISTINCT {s.USER_ID} FROM {tables.history} ORDER BY {s.USER_ID}").fetchall()]


def rank_customers(con: duckdb.DuckDBPyConnection, tables: HistoryTables, models: Models, users: list[str],
                   k: int = K_PRECOMPUTED, chunk: int = _PRECOMPUTE_CHUNK,
                   done: Callable[[int], None] | None = None) -> pd.DataFrame:
    """The top ``k`` feature rows and scores of each of ``users`` (in their order), ranked in
    batches of ``chunk``; ``done(n)`` hears each batch's customers."""
    parts = []
    for begin in range(0, len(users), chunk):
        con.execute("CREATE OR REPLACE TEMP TABLE pre_users (user_id VARCHAR)")
        con.execute("INSERT INTO pre_users SELECT unnest(?::VARCHAR[])", [users[begin:begin + chunk]])
        frame = feature_frame(con, tables, "pre_users", "pre", attention=models.attention, attention_per_user=True)
        if not frame.empty:
            frame = frame.assign(score=models.serving.predict(frame))
            frame = frame.sort_values([s.USER_ID, "score", "cand_rank"], ascending=[True, False, True], kind="stable")
            parts.append(frame[frame.groupby(s.USER_ID, sort=False).cumcount() < k])
        if done is not None:
            done(min(chunk, len(users) - begin))
    con.execute("DROP TABLE IF EXISTS pre_users")
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def write_top_items(con: duckdb.DuckDBPyConnection, top: pd.DataFrame, out: Path, k: int, users: int,
                    started: float, progress: Progress = SILENT) -> dict[str, Any]:
    """The ranked rows of every customer, with each item's title, into ``out``; returns the
    metadata's ``top_items`` (``started``: when the precompute began, for its ``seconds``)."""
    progress.phase("precompute: writing the lists")
    if not top.empty:
        titles = item_titles(con, top[s.ITEM_ID].unique().tolist())
        top[TITLE] = [titles.get(item) or item for item in top[s.ITEM_ID].tolist()]
    top.to_parquet(out, index=False)
    seconds = time.perf_counter() - started
    log.info("precomputed the top %d of %d customers in %.1f s", k, users, seconds)
    return {"file": f"serving/{Path(out).name}", "k": k, "customers": int(top[s.USER_ID].nunique()) if len(top) else 0,
            "rows": len(top), "seconds": round(seconds, 2)}


def item_titles(con: duckdb.DuckDBPyConnection, item_ids: list[str]) -> dict[str, str]:
    """{item_id: title} from the catalogue, for the items that have one (the rest show their id)."""
    return dict(con.execute(
        f"SELECT {s.ITEM_ID}, {s.TITLE} FROM {s.ITEMS} WHERE {s.ITEM_ID} IN (SELECT unnest(?::VARCHAR[]))",
        [item_ids]).fetchall())
