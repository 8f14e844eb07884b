"""The catalogue text that search indexes: one row per item with its four searchable fields.

Read from the shop's ``items`` table, with each item's description from the optional
``item_texts`` table where the store has it (only formats with descriptions write it; a store
made before it existed simply has none: see ``analytics.schema.ITEM_TEXTS_COLUMNS``). Or taken
from a frame a caller already holds (the same columns; ``description`` may be absent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import duckdb
import pandas as pd

from analytics import schema as S
from errors import RecsightError

__all__ = ["FIELDS", "COLUMNS", "read_catalogue", "catalogue_frame", "merge_rows"]

# The searchable fields, in the order scores are reported.
FIELDS: tuple[str, ...] = (S.TITLE, S.CATEGORY, S.BRAND, S.DESCRIPTION)
COLUMNS: tuple[str, ...] = (S.ITEM_ID, *FIELDS)


def read_catalogue(con: duckdb.DuckDBPyConnection, items_table: str = S.ITEMS) -> pd.DataFrame:
    """Every item of ``items_table`` (the snapshot's ``items`` by default; ``all_items`` for a
    store read with its live appends) with its description where ``item_texts`` has one."""
    has_texts = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [S.ITEM_TEXTS]
    ).fetchone()[0]
    description = f"t.{S.DESCRIPTION}" if has_texts else f"NULL::VARCHAR AS {S.DESCRIPTION}"
    join = f"LEFT JOIN {S.ITEM_TEXTS} t USING ({S.ITEM_ID})" if has_texts else ""
    try:
        frame = con.execute(
            f"SELECT i.{S.ITEM_ID}, i.{S.TITLE}, i.{S.CATEGORY}, i.{S.BRAND}, {description} "
            f"FROM {items_table} i {join} ORDER BY i.{S.ITEM_ID}"
        ).df()
    except duckdb.CatalogException:
        raise RecsightError(f"the store has no {items_table} table: ingest a catalogue first") from None
    return catalogue_frame(frame)


def catalogue_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` reduced to :data:`COLUMNS` (text, None for missing), one row per item id.

    Missing optional fields become empty; a missing ``item_id`` column or a repeated id is an
    error (a search result must name one item).
    """
    if S.ITEM_ID not in frame.columns:
        raise RecsightError(f"the catalogue has no {S.ITEM_ID} column")
    out = pd.DataFrame({S.ITEM_ID: frame[S.ITEM_ID].astype(str)}).reset_index(drop=True)
    frame = frame.reset_index(drop=True)
    for field in FIELDS:
        values = frame[field] if field in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        # object dtype: pandas' string dtype would turn None into NaN, a float, for the analyser
        out[field] = pd.Series([_text(v) for v in values], index=out.index, dtype=object)
    duplicated = out[S.ITEM_ID].duplicated()
    if duplicated.any():
        raise RecsightError(f"the catalogue lists item {out[S.ITEM_ID][duplicated].iloc[0]!r} twice")
    return out.reset_index(drop=True)


def merge_rows(catalogue: pd.DataFrame, rows: pd.DataFrame | Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """``catalogue`` with ``rows`` added; a row for an item already there replaces it whole."""
    new_rows = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if new_rows.empty:
        return catalogue
    new = catalogue_frame(new_rows)
    kept = catalogue[~catalogue[S.ITEM_ID].isin(set(new[S.ITEM_ID]))]
    return pd.concat([kept, new], ignore_index=True)


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    return text or None
