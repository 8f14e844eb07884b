"""The one customer-id rule of the product: what a typed id may be, and which customer it names.

Every way in to a customer (the lookup page, the JSON API, the command line, batch reports) goes
through here, so they accept and refuse the same input with the same words. An agent types a
shop customer id (hashed with the shop's secret, so the raw id is never stored or searched for)
or a pseudonym (``c_`` + 20 hex). Nothing ever lists every customer; an unknown pseudonym-like
prefix of at least :data:`SUGGEST_MIN_HEX` hex digits gets at most a handful of suggestions, so
a truncated copy costs one click, while short prefixes (4 hex digits reached a slice of the
customers each, 65,536 of them the whole shop) suggest nothing.

The API states the same limit in its contract: :data:`ID_PATTERN` is its path pattern (a stricter
shape than :func:`clean_customer_ref` accepts; ids of another shape can still be looked up by
their pseudonym).
"""

from __future__ import annotations

import re

import duckdb

from analytics import schema as s
from analytics.privacy import PSEUDONYM_LENGTH, pseudonymise
from errors import RecsightError

__all__ = [
    "MAX_ID_LENGTH", "ID_PATTERN", "MAX_SUGGESTIONS", "SUGGEST_MIN_HEX", "clean_customer_ref",
    "candidate_pseudonyms", "is_known_customer",
    "resolve_customer", "suggest_customers", "reference_pseudonym",
]

MAX_ID_LENGTH = 128  # longer than any shop id we ingest; anything longer is not an id
# Letters, digits and the punctuation real shop ids use (numbers, UUIDs, e-mail-like ids, ASINs).
ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._:@+-]{{0,{MAX_ID_LENGTH - 1}}}$"
MAX_SUGGESTIONS = 5
_MIN_PREFIX = 6  # "c_" + 4 hex digits before suggesting pseudonyms
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PSEUDONYM_PREFIX = re.compile(rf"c_[0-9a-f]{{{_MIN_PREFIX - 2},{PSEUDONYM_LENGTH}}}")
# Hex digits typed before pseudonyms are suggested: 48 bits, so a guessed prefix finds nobody and
# only an agent holding most of a real pseudonym (a truncated copy) is helped.
SUGGEST_MIN_HEX = 12
_SUGGESTIBLE = re.compile(rf"c_[0-9a-f]{{{SUGGEST_MIN_HEX},{PSEUDONYM_LENGTH}}}")


def clean_customer_ref(typed: object) -> str:
    """What the agent typed, trimmed and checked: one clear error for empty, huge or odd input.

    Checked before anything is hashed or queried, so hostile input is refused by its shape and
    never reaches the database.
    """
    text = "" if typed is None else str(typed).strip()
    if not text:
        raise RecsightError("type a customer id to look a customer up")
    if len(text) > MAX_ID_LENGTH:
        raise RecsightError(f"a customer id has at most {MAX_ID_LENGTH} characters")
    if _CONTROL.search(text):
        raise RecsightError("a customer id cannot contain control characters")
    return text


def is_known_customer(con: duckdb.DuckDBPyConnection, user_id: str) -> bool:
    """Whether the pseudonym ``user_id`` has events or a row in the users table (if the shop has one).

    A customer in ``users`` without events is a real cold start, not a typo.
    """
    if con.execute(f"SELECT 1 FROM {s.EVENTS} WHERE {s.USER_ID} = ? LIMIT 1", [user_id]).fetchone():
        return True
    try:
        return bool(con.execute(f"SELECT 1 FROM {s.USERS} WHERE {s.USER_ID} = ? LIMIT 1", [user_id]).fetchone())
    except duckdb.CatalogException:
        return False


def resolve_customer(con: duckdb.DuckDBPyConnection, typed: object, secret: str = "") -> str:
    """The pseudonym of what an agent typed: a shop customer id (hashed with ``secret``) or a pseudonym.

    ``con`` must not be used by another thread meanwhile (a served recommender's connection is
    taken with ``Recommender.connection()``, which holds its lock).
    """
    text = clean_customer_ref(typed)
    for candidate in candidate_pseudonyms(text, secret):
        if is_known_customer(con, candidate):
            return candidate
    hint = "" if secret else " (RECSIGHT_SECRET is not set, so shop ids cannot be looked up)"
    other_case = _other_case(con, text, secret)
    if other_case is not None:
        hint = f"; shop ids are case-sensitive, and {other_case!r} is a customer"
    raise RecsightError(f"unknown customer {text!r}: not in the shop's events or users{hint}")


def candidate_pseudonyms(typed: object, secret: str = "") -> list[str]:
    """The pseudonyms ``typed`` may name, in the order tried: itself (a pseudonym), then the
    pseudonym of it as a shop id (hashed with ``secret``). Raises for input of no id's shape."""
    text = clean_customer_ref(typed)
    return [text] + ([pseudonymise(text, secret)] if secret else [])


def _other_case(con: duckdb.DuckDBPyConnection, text: str, secret: str) -> str | None:
    """The same shop id in upper or lower case when that one is a customer (an agent who typed
    ``u000117`` for ``U000117`` gets a hint, not just "unknown"), else None."""
    if not secret:
        return None
    for variant in sorted({text.upper(), text.lower()} - {text}):
        if is_known_customer(con, pseudonymise(variant, secret)):
            return variant
    return None


def suggest_customers(con: duckdb.DuckDBPyConnection, typed: str, limit: int = MAX_SUGGESTIONS) -> list[str]:
    """Up to ``limit`` known pseudonyms starting with ``typed``, if it looks like the start of one.

    Shop ids are hashed, so only pseudonyms (from a report or the audit log) can be completed;
    a prefix of fewer than :data:`SUGGEST_MIN_HEX` hex digits suggests nothing rather than a
    slice of the customers (the page also limits suggestions per login: ``service.throttle``).
    """
    prefix = typed.strip().lower()
    if not _SUGGESTIBLE.fullmatch(prefix):
        return []
    rows = con.execute(
        f"SELECT DISTINCT {s.USER_ID} FROM {s.EVENTS} WHERE starts_with({s.USER_ID}, ?) "
        f"ORDER BY {s.USER_ID} LIMIT ?", [prefix, max(0, int(limit))]).fetchall()
    return [row[0] for row in rows]


def reference_pseudonym(typed: str, secret: str) -> str | None:
    """How an address or an audit row may name what an agent typed, without a raw id: a pseudonym
    (or the start of one) as typed, anything else (a shop id) as its pseudonym under ``secret``;
    None when there is no secret to hash with.

    Used where a lookup is named but not (yet) resolved: a failed lookup's audit row records what
    was searched this way, so an admin can still tell who searched for a given customer (by
    hashing that customer's id) while the log never holds the id itself; a ``/user/<id>`` deep
    link is rewritten to ``/user/<pseudonym>``.
    """
    text = typed.strip()
    if _PSEUDONYM_PREFIX.fullmatch(text):
        return text
    return pseudonymise(text, secret) if secret else None
