"""The one customer-id rule: typed ids are checked by shape, then found by pseudonym or keyed hash."""

from __future__ import annotations

import re

import duckdb
import pytest

from analytics import customers
from analytics import schema as s
from analytics.privacy import pseudonymise
from errors import RecsightError
from tests.conftest import TEST_SECRET

U = {raw: pseudonymise(raw, TEST_SECRET) for raw in ("u1", "u2", "u3", "u4", "u5")}
COLD = U["u5"]  # in the users table, without events


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    s.create_tables(con)
    con.executemany(f"INSERT INTO {s.EVENTS} ({s.USER_ID}, {s.ITEM_ID}, {s.EVENT_TYPE}, {s.TS}) "
                    "VALUES (?, 'i1', 'view', TIMESTAMP '2024-01-01')", [(U[u],) for u in ("u1", "u2", "u3", "u4")])
    con.executemany(f"INSERT INTO {s.USERS} ({s.USER_ID}) VALUES (?)", [(p,) for p in U.values()])
    return con


@pytest.mark.parametrize("typed, message", [
    (None, "type a customer id"), ("   ", "type a customer id"), ("x" * 129, "at most 128 characters"),
    ("u1\x00; DROP TABLE events", "control characters"), ("u1\n", None), (" u1 ", None),
])
def test_typed_ids_are_checked(typed, message):
    if message is None:
        assert customers.clean_customer_ref(typed) == "u1"
        return
    with pytest.raises(RecsightError, match=message):
        customers.clean_customer_ref(typed)
    assert customers.clean_customer_ref("x" * customers.MAX_ID_LENGTH) == "x" * 128


def test_the_api_pattern_states_the_same_limit():
    pattern = re.compile(customers.ID_PATTERN)
    assert pattern.fullmatch("U-000001@shop.example") and pattern.fullmatch("9" * customers.MAX_ID_LENGTH)
    assert not pattern.fullmatch("9" * (customers.MAX_ID_LENGTH + 1)) and not pattern.fullmatch("a b")


def test_resolve_finds_a_pseudonym_or_a_hashed_shop_id(con):
    assert customers.resolve_customer(con, U["u1"], TEST_SECRET) == U["u1"]
    assert customers.resolve_customer(con, " u2 ", TEST_SECRET) == U["u2"]
    assert customers.resolve_customer(con, "u5", TEST_SECRET) == COLD  # users table only: a cold start
    with pytest.raises(RecsightError, match="unknown customer 'u9': not in the shop's events or users$"):
        customers.resolve_customer(con, "u9", TEST_SECRET)
    with pytest.raises(RecsightError, match="RECSIGHT_SECRET is not set"):
        customers.resolve_customer(con, "u2", "")
    with pytest.raises(RecsightError, match="control characters"):
        customers.resolve_customer(con, "u1\x00' OR 1=1", TEST_SECRET)


def test_a_shop_without_a_users_table_still_resolves(con):
    con.execute(f"DROP TABLE {s.USERS}")
    assert customers.is_known_customer(con, U["u1"]) and not customers.is_known_customer(con, COLD)
    with pytest.raises(RecsightError, match="unknown customer"):
        customers.resolve_customer(con, "u5", TEST_SECRET)


def test_suggestions_complete_pseudonym_prefixes_only(con):
    target = U["u3"]
    start = target[:2 + customers.SUGGEST_MIN_HEX]  # the shortest prefix that is completed
    assert customers.suggest_customers(con, start) == sorted(
        p for p in U.values() if p.startswith(start) and p != COLD)
    assert customers.suggest_customers(con, start.upper()) == customers.suggest_customers(con, start) == [target]
    assert customers.suggest_customers(con, start[:-1]) == []  # one hex digit short
    assert customers.suggest_customers(con, target[:6]) == []  # 4 hex digits reached a slice of the shop
    assert customers.suggest_customers(con, "c_") == []  # too short: no slice of the customer base
    assert customers.suggest_customers(con, "c_12") == []
    assert customers.suggest_customers(con, "u1") == []  # shop ids are hashed: nothing to complete
    assert customers.suggest_customers(con, "c_zzzz") == []
    assert customers.suggest_customers(con, target) == [target]
    assert customers.suggest_customers(con, "c_", limit=2) == []


def test_a_shop_id_in_the_wrong_case_gets_a_hint(con):
    with pytest.raises(RecsightError, match="case-sensitive, and 'u1' is a customer"):
        customers.resolve_customer(con, "U1", TEST_SECRET)
    with pytest.raises(RecsightError) as nobody:
        customers.resolve_customer(con, "U9", TEST_SECRET)
    assert "case-sensitive" not in str(nobody.value)
