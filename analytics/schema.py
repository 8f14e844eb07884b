"""The canonical data contract: table names, column names and event types, in one place.

Every adapter maps its source format onto these tables; every query and feature refers to the
constants here rather than to string literals, so a renamed column is a one-line change.
"""

from __future__ import annotations

__all__ = [
    "EVENTS", "ITEMS", "USERS", "REJECTS", "ITEM_TEXTS",
    "USER_ID", "ITEM_ID", "EVENT_TYPE", "TS", "SESSION_ID", "QUANTITY", "PRICE", "RATING",
    "TITLE", "CATEGORY", "BRAND", "DESCRIPTION", "COUNTRY", "FIRST_SEEN",
    "SOURCE", "LINE", "RAW", "REASON",
    "VIEW", "CLICK", "CART", "FAVORITE", "PURCHASE", "RETURN", "RATING_EVENT",
    "EVENT_TYPES", "RELEVANCE", "CATEGORY_SEPARATOR", "category_leaf",
    "EVENTS_COLUMNS", "ITEMS_COLUMNS", "USERS_COLUMNS", "REJECTS_COLUMNS", "ITEM_TEXTS_COLUMNS", "DDL",
    "ITEM_TEXTS_DDL",
    "create_tables",
]

# Tables
EVENTS = "events"
ITEMS = "items"
USERS = "users"
REJECTS = "rejects"
ITEM_TEXTS = "item_texts"  # optional: long item texts for search (see ITEM_TEXTS_COLUMNS)

# events
USER_ID = "user_id"
ITEM_ID = "item_id"
EVENT_TYPE = "event_type"
TS = "ts"
SESSION_ID = "session_id"
QUANTITY = "quantity"
PRICE = "price"
RATING = "rating"

# items
TITLE = "title"
CATEGORY = "category"
BRAND = "brand"

# item_texts
DESCRIPTION = "description"

# users
COUNTRY = "country"
FIRST_SEEN = "first_seen"

# rejects
SOURCE = "source"
LINE = "line"
RAW = "raw"
REASON = "reason"

# Event types
VIEW = "view"
CLICK = "click"
CART = "cart"
FAVORITE = "favorite"
PURCHASE = "purchase"
RETURN = "return"
RATING_EVENT = "rating"
EVENT_TYPES: tuple[str, ...] = (VIEW, CLICK, CART, FAVORITE, PURCHASE, RETURN, RATING_EVENT)

# Graded relevance for learning to rank: purchase > cart > favourite/click > view.
RELEVANCE: dict[str, int] = {VIEW: 1, CLICK: 2, FAVORITE: 2, RATING_EVENT: 2, CART: 3, PURCHASE: 4}

# Categories are paths "A > B > C".
CATEGORY_SEPARATOR = " > "


def category_leaf(category: object) -> str | None:
    """The last step of a category path ("C" of "A > B > C"): what a card or a sentence names."""
    return str(category).split(CATEGORY_SEPARATOR)[-1].strip() if category else None

EVENTS_COLUMNS: dict[str, str] = {
    USER_ID: "VARCHAR NOT NULL",
    ITEM_ID: "VARCHAR NOT NULL",
    EVENT_TYPE: "VARCHAR NOT NULL",
    TS: "TIMESTAMP NOT NULL",
    SESSION_ID: "VARCHAR",
    QUANTITY: "INTEGER",
    PRICE: "DOUBLE",
    RATING: "DOUBLE",
}
ITEMS_COLUMNS: dict[str, str] = {
    ITEM_ID: "VARCHAR PRIMARY KEY",
    TITLE: "VARCHAR",
    CATEGORY: "VARCHAR",
    BRAND: "VARCHAR",
    PRICE: "DOUBLE",
}
USERS_COLUMNS: dict[str, str] = {
    USER_ID: "VARCHAR PRIMARY KEY",
    COUNTRY: "VARCHAR",
    FIRST_SEEN: "TIMESTAMP",
}
REJECTS_COLUMNS: dict[str, str] = {
    SOURCE: "VARCHAR NOT NULL",
    LINE: "BIGINT",
    RAW: "VARCHAR",
    REASON: "VARCHAR NOT NULL",
}


# Long item texts (a product description) live in their own optional table rather than as a column
# of ``items``: the items table is rewritten by the live intake and by compaction with an explicit
# column list (analytics/live_sql.py, live_compact.py, live_read.py's ``SELECT *`` copies between
# items and live_items), so a new column there would be dropped or misaligned on every fold, and
# every store written before it would need a migration. A table of its own is written by ingest
# only where a format has descriptions (amazon-json), untouched by everything else, and absent from
# older stores: readers (the search index) use it only where it exists.
ITEM_TEXTS_COLUMNS: dict[str, str] = {
    ITEM_ID: "VARCHAR PRIMARY KEY",
    DESCRIPTION: "VARCHAR",
}


def _ddl(table: str, columns: dict[str, str]) -> str:
    body = ",\n    ".join(f"{name} {sql_type}" for name, sql_type in columns.items())
    return f"CREATE TABLE IF NOT EXISTS {table} (\n    {body}\n)"


DDL: dict[str, str] = {
    EVENTS: _ddl(EVENTS, EVENTS_COLUMNS),
    ITEMS: _ddl(ITEMS, ITEMS_COLUMNS),
    USERS: _ddl(USERS, USERS_COLUMNS),
    REJECTS: _ddl(REJECTS, REJECTS_COLUMNS),
}
# Not in DDL: ``create_tables`` makes the four contract tables; ingest creates this one on demand.
ITEM_TEXTS_DDL = _ddl(ITEM_TEXTS, ITEM_TEXTS_COLUMNS)


def create_tables(con) -> None:  # con: duckdb.DuckDBPyConnection
    """Create the four contract tables if they do not exist yet."""
    for statement in DDL.values():
        con.execute(statement)
