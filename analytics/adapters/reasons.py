"""The reject reasons: short, stable strings an analyst can group by and a test can assert.

Row-level problems only; a problem with a whole file is a RecsightError instead.
"""

from __future__ import annotations

from analytics.adapters._files import BAD_ENCODING, STRAY_CR

__all__ = [
    "BAD_ENCODING", "STRAY_CR", "EMPTY_LINE", "MALFORMED_QUOTES", "WRONG_FIELD_COUNT", "TRUNCATED_LAST_LINE",
    "MISSING_CUSTOMER", "EMPTY_ITEM", "MISSING_TIMESTAMP", "BAD_TIMESTAMP", "BAD_UTC_OFFSET", "MISSING_EVENT_TYPE",
    "UNKNOWN_EVENT_TYPE", "BAD_PRICE", "MISSING_PRICE", "NEGATIVE_PRICE", "BAD_QUANTITY", "MISSING_QUANTITY",
    "NEGATIVE_QUANTITY", "BAD_RATING", "DUPLICATE_ITEM", "DUPLICATE_CUSTOMER",
]

# structural (found by the byte scan or the field split)
EMPTY_LINE = "empty line"
MALFORMED_QUOTES = "malformed quotes"
WRONG_FIELD_COUNT = "wrong number of fields"
TRUNCATED_LAST_LINE = "truncated last line"

# values
MISSING_CUSTOMER = "missing customer id"
EMPTY_ITEM = "empty item id"
MISSING_TIMESTAMP = "missing timestamp"
BAD_TIMESTAMP = "unparseable timestamp"
BAD_UTC_OFFSET = "time-zone offset outside -12:00..+14:00"  # see _sources.MIN_UTC_OFFSET_HOURS
MISSING_EVENT_TYPE = "missing event type"
UNKNOWN_EVENT_TYPE = "unknown event type"
BAD_PRICE = "unparseable price"
MISSING_PRICE = "missing price"
NEGATIVE_PRICE = "negative price"
BAD_QUANTITY = "unparseable quantity"
MISSING_QUANTITY = "missing quantity"
NEGATIVE_QUANTITY = "negative quantity"
BAD_RATING = "unparseable rating"
DUPLICATE_ITEM = "duplicate item id"
DUPLICATE_CUSTOMER = "duplicate customer id"
