"""The batch jobs (profiles, item stats, co-visitation) on DuckDB and on Spark, from one step list.

A small synthetic shop (60 customers) plus hand-made edge events (no price: the catalogue's is
used; no session; an item outside the catalogue, one without brand or price). DuckDB's batch must
give the very tables the product builds (build_profiles, build_index); Spark's, from the same
SQL transpiled, must equal DuckDB's column by column (floats to 1e-9, everything else exactly).
The Spark tests share one local[2] session (marker ``engines``; skipped without pyspark).
"""

from __future__ import annotations

import math
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

import cli
from analytics import schema as S
from analytics.db import connect_read_only
from analytics.event_dataset import export_events
from analytics.ingest import ingest_paths
from analytics.profile_build import build_profiles
from analytics.profiles import ITEM_STATS, USER_PROFILES
from analytics.synth import generate_shop
from models.candidates import CandidateConfig, build_index
from models.covis_steps import covis_table
from tests.conftest import TEST_SECRET
from workflows.batch_jobs import run_batch

AS_OF = datetime(2024, 1, 18)  # later events must not count
KEYS = {USER_PROFILES: [S.USER_ID], ITEM_STATS: [S.ITEM_ID],
        **{covis_table(c.name): ["src", "dst"] for c in CandidateConfig().covis}}
# C1 only: the JVM's warm-up dominates a small shop's run (about 40% faster here); not for big data.
SPARK_CONF = {"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "1g",
              "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}
EDGE_ITEMS = [("x1", "No brand", "Toys > Cars", None, None), ("x2", "Blank", "  ", "", 4.0)]
EDGE_EVENTS = [  # user, item, type, ts, session, quantity, price, rating
    ("edge-1", "x1", S.VIEW, datetime(2024, 1, 5, 9), None, None, None, None),
    ("edge-1", "x2", S.PURCHASE, datetime(2024, 1, 5, 9, 5), None, 3, None, None),
    ("edge-1", "ghost", S.CART, datetime(2024, 1, 6, 9), "e1", None, 2.5, None),
    ("edge-1", "x2", S.RETURN, datetime(2024, 1, 7, 9), "e2", -1, 4.0, None),
    ("edge-2", "x1", S.PURCHASE, datetime(2024, 1, 10), None, None, None, None),
    ("edge-2", "x2", S.PURCHASE, datetime(2024, 1, 19), None, 1, 4.0, None),  # after AS_OF
]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("batch_shop")
    generate_shop(folder / "synth", n_users=60, n_items=80, n_days=20, seed=5)
    db = folder / "shop.duckdb"
    ingest_paths(db, "generic", [folder / "synth"], secret=TEST_SECRET)
    with duckdb.connect(str(db)) as con:
        con.executemany(f"INSERT INTO {S.ITEMS} VALUES (?, ?, ?, ?, ?)", EDGE_ITEMS)
        con.executemany(f"INSERT INTO {S.EVENTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", EDGE_EVENTS)
    return db


@pytest.fixture(scope="module")
def lake(shop: Path) -> Path:
    export_events(shop, shop.parent / "lake")
    return shop.parent / "lake"


@pytest.fixture(scope="module")
def duckdb_out(lake: Path) -> Path:
    out = lake.parent / "out-duckdb"
    run_batch(lake, out, as_of=AS_OF)
    return out


def _rows(folder: Path, table: str) -> tuple[list, list]:
    rel = f"read_parquet('{folder / table}/*.parquet')"
    con = duckdb.connect()
    return (con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall(),
            con.execute(f"SELECT * FROM {rel} ORDER BY {', '.join(KEYS[table])}").fetchall())


def _same(a: object, b: object) -> bool:
    """Equal, floats to a relative 1e-9 (sums and interpolations may differ in the last bits)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def test_duckdb_batch_writes_the_tables_the_product_builds(shop: Path, duckdb_out: Path):
    con = connect_read_only(shop)
    build_profiles(con, AS_OF, user_table="up", item_table="st", temporary=True)
    con.execute(f"CREATE TEMP VIEW history AS SELECT * FROM {S.EVENTS} WHERE {S.TS} < TIMESTAMP '{AS_OF}'")
    index = build_index(con, "history", CandidateConfig(), "ix")
    built = {USER_PROFILES: "up", ITEM_STATS: "st",
             **{covis_table(name): table for name, table in index.covis_tables.items()}}
    for table, temp in built.items():
        _, rows = _rows(duckdb_out, table)
        assert rows == con.execute(f"SELECT * FROM {temp} ORDER BY {', '.join(KEYS[table])}").fetchall(), table
    assert "edge-2" in {r[0] for r in _rows(duckdb_out, USER_PROFILES)[1]}


def test_the_shop_file_and_its_exported_dataset_give_the_same_tables(shop: Path, duckdb_out: Path, tmp_path: Path):
    summary = run_batch(shop, tmp_path / "out", as_of=AS_OF)
    assert {t.name for t in summary.outputs} == set(KEYS)
    for table in KEYS:
        assert _rows(tmp_path / "out", table) == _rows(duckdb_out, table), table


def test_cli_exports_and_runs_the_batch(shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["export-events", "--db", str(shop), "--out", str(tmp_path / "lake")]) == 0
    assert cli.main(["batch", "--events", str(tmp_path / "lake"), "--out", str(tmp_path / "out"),
                     "--as-of", "2024-01-18T00:00:00"]) == 0
    out = capsys.readouterr().out
    assert "daily partitions" in out and "batch on duckdb as of 2024-01-18 00:00:00" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(KEYS)


def test_cli_spark_without_pyspark_says_what_to_install(shop: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark now raises ImportError
    code = cli.main(["batch", "--db", str(shop), "--out", str(tmp_path / "out"), "--engine", "spark"])
    assert code != 0
    assert capsys.readouterr().err == (
        "error: the spark engine needs pyspark: pip install -r requirements-engines.txt\n")
    assert not (tmp_path / "out").exists()  # nothing exported or half written


def test_cli_bad_as_of_is_one_line(shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["batch", "--db", str(shop), "--out", str(tmp_path / "o"), "--as-of", "yesterday"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# --------------------------------------------------------------------------- Spark


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    pytest.importorskip("sqlglot")
    from analytics.spark_engine import spark_session

    session = spark_session("local[2]", SPARK_CONF)
    yield session
    session.stop()


@pytest.mark.engines
def test_spark_batch_equals_duckdb_column_by_column(spark, lake: Path, duckdb_out: Path, tmp_path: Path):
    summary = run_batch(lake, tmp_path / "out", engine="spark", master="local[2]", as_of=AS_OF,
                        spark_conf=SPARK_CONF)
    assert [t.name for t in summary.tables] == [t.name for t in run_batch(lake, tmp_path / "d", as_of=AS_OF).tables]
    for table in KEYS:
        (types, rows), (spark_types, spark_rows) = _rows(duckdb_out, table), _rows(tmp_path / "out", table)
        assert spark_types == types, table
        assert len(spark_rows) == len(rows) > 0, table
        for i, (name, *_) in enumerate(types):
            column, spark_column = [r[i] for r in rows], [r[i] for r in spark_rows]
            assert all(_same(a, b) for a, b in zip(column, spark_column)), f"{table}.{name}"


@pytest.mark.engines
def test_each_rewrite_of_the_transpiler_keeps_duckdb_values(spark):
    """max(x, n), list(... ORDER BY), l[i] with a computed i and quantile_cont over a list: the
    four constructs sqlglot gets wrong for Spark (analytics.spark_sql)."""
    from analytics.spark_sql import to_spark_sql

    sql = """WITH t AS (SELECT g, k, name, x::DOUBLE AS x
                   FROM (VALUES (1, 3, 'c', 0.5), (1, 1, 'a', 2.0), (1, 2, 'b', 7.0),
                                (2, 5, 'y', 1.0), (2, 1, 'z', 1.0)) AS v(g, k, name, x)),
        agg AS (SELECT g, max(x, 2) FILTER (WHERE x > 1) AS top2, list(name ORDER BY k) AS names,
                       quantile_cont(x, [0.25, 0.5]) AS q FROM t GROUP BY g)
        SELECT g, top2, names, names[g] AS picked, q FROM agg ORDER BY g"""
    expected = duckdb.execute(sql).fetchall()
    assert expected == [(1, [7.0, 2.0], ["a", "b", "c"], "a", [1.25, 2.0]), (2, None, ["z", "y"], "y", [1.0, 1.0])]
    assert [tuple(row) for row in spark.sql(to_spark_sql(sql)).collect()] == expected


@pytest.mark.engines
def test_spark_refuses_a_dataset_off_the_contract_in_one_line(spark, tmp_path: Path):
    from analytics.spark_engine import register_dataset
    from errors import RecsightError

    (tmp_path / "lake" / "date=2024-01-01").mkdir(parents=True)
    duckdb.execute(f"COPY (SELECT 'u' AS user_id, 'i' AS item_id, 'view' AS event_type, 'soon' AS ts, "
                   f"NULL::VARCHAR AS session_id, 1 AS quantity, 1.0 AS price, 1.0 AS rating) "
                   f"TO '{tmp_path / 'lake' / 'date=2024-01-01' / 'part-0.parquet'}'")
    items = tmp_path / "items.parquet"
    duckdb.execute(f"COPY (SELECT 'i' AS item_id, 't' AS title, 'c' AS category, 'b' AS brand, 1.0 AS price) "
                   f"TO '{items}'")
    with pytest.raises(RecsightError, match="column ts is VARCHAR, the data contract says TIMESTAMP$"):
        register_dataset(spark, tmp_path / "lake", items=items)
