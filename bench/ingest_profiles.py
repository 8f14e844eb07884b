"""Benchmark: ingest time, DuckDB profile-build time and peak memory, against the same profiles in pandas.

For each size it generates a synthetic shop, ingests it into a fresh DuckDB file, builds
``user_profiles`` and ``item_stats`` with ``analytics.profile_build.build_profiles`` (--repeat runs),
then computes the very same columns with pandas (``pandas_profiles`` below, a faithful port of the
SQL), checks that both agree, and prints the times and the pandas/DuckDB ratio from the same run.

Each measured step runs in its own child process, so "peak RSS" is that step's own peak resident
memory (interpreter and imports included). The pandas timing excludes loading the events into
pandas (DuckDB's includes reading its tables), which flatters pandas: the ratio is conservative.
The ratio is printed twice: of wall times (the target; DuckDB uses every core, pandas one) and of
CPU seconds (the work itself; steadier on a shared machine, where a busy neighbour takes cores
from DuckDB's threads while pandas' one thread still gets a whole core).

    .venv/bin/python bench/ingest_profiles.py --sizes 1000000 10000000 --repeat 3
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics import profiles as P
from analytics import schema as S
from analytics.ingest import ingest_paths
from analytics.profile_build import build_profiles
from analytics.synth import generate_shop
from bench._common import Timing, format_table, human_count, in_child, load_line, machine_line, time_runs

BENCH_SECRET = "bench-secret-not-for-production"
_LIST_COLUMNS = ((P.TOP_CATEGORIES, S.CATEGORY), (P.TOP_ROOT_CATEGORIES, S.CATEGORY), (P.TOP_BRANDS, S.BRAND))


# --------------------------------------------------------------------------- data


def generate(out_dir: Path, n_events: int, seed: int) -> int:
    """Write the project's synthetic shop with about ``n_events`` events; return the exact count.

    ``generate_shop`` is sized in users, so a small probe shop measures events per user first.
    """
    n_days = 90
    with tempfile.TemporaryDirectory() as probe_dir:
        probe_users = 2000
        generate_shop(Path(probe_dir), n_users=probe_users, n_items=2000, n_days=n_days, seed=seed)
        per_user = len(pd.read_parquet(Path(probe_dir) / "events.parquet", columns=[S.USER_ID])) / probe_users
    n_users = max(100, round(n_events / per_user))
    generate_shop(out_dir, n_users=n_users, n_items=max(2000, n_users // 10), n_days=n_days, seed=seed)
    return len(pd.read_parquet(out_dir / "events.parquet", columns=[S.USER_ID]))


# --------------------------------------------------------------------------- measured steps (child processes)


def step_ingest(db_path: str, folder: str) -> float:
    """Ingest the shop into a fresh DuckDB file with the project's own ``generic`` adapter."""
    started = time.perf_counter()
    ingest_paths(Path(db_path), "generic", [Path(folder)], secret=BENCH_SECRET)
    return time.perf_counter() - started


def step_duckdb(db_path: str, repeat: int, threads: int | None) -> tuple[Timing, int, int]:
    """Build both tables ``repeat`` times (CREATE OR REPLACE, then CHECKPOINT to disk)."""
    con = duckdb.connect(db_path)
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")

    def build() -> None:
        build_profiles(con)
        con.execute("CHECKPOINT")

    timing = time_runs(build, repeat)
    n_users = con.execute(f"SELECT count(*) FROM {P.USER_PROFILES}").fetchall()[0][0]
    n_items = con.execute(f"SELECT count(*) FROM {P.ITEM_STATS}").fetchall()[0][0]
    con.close()
    return timing, n_users, n_items


def step_pandas(db_path: str, repeat: int, check: bool) -> tuple[Timing, str]:
    """Time ``pandas_profiles`` on frames already in memory; optionally compare with DuckDB's tables."""
    con = duckdb.connect(db_path, read_only=True)
    con.execute("SET enable_progress_bar = false")
    events = con.execute(f"SELECT * FROM {S.EVENTS}").df()
    items = con.execute(f"SELECT * FROM {S.ITEMS}").df()
    result: list[tuple[pd.DataFrame, pd.DataFrame]] = []
    timing = time_runs(lambda: result.append(pandas_profiles(events, items)), repeat)
    users_pd, items_pd = result[-1]
    del result[:-1]
    verdict = "not checked"
    if check:
        del events
        problems = compare(con.execute(f"SELECT * FROM {P.USER_PROFILES}").df(), users_pd, S.USER_ID)
        problems += compare(con.execute(f"SELECT * FROM {P.ITEM_STATS}").df(), items_pd, S.ITEM_ID)
        verdict = "agree (all columns)" if not problems else "DIFFERENT: " + "; ".join(problems)
    con.close()
    return timing, verdict


# --------------------------------------------------------------------------- the pandas port


def _clean(s: pd.Series) -> pd.Series:
    s = s.astype(object).where(s.notna(), None)
    stripped = s.str.strip(" ")
    return stripped.where(stripped.notna() & (stripped != ""), None)


def _percent_score(values: pd.Series, ascending: bool) -> pd.Series:
    """SQL ``least(5, 1 + floor(5 * percent_rank()))`` over the non-null values."""
    ranks = values.rank(method="min", ascending=ascending)
    n = values.notna().sum()
    pr = (ranks - 1) / (n - 1) if n > 1 else ranks * 0.0
    return np.minimum(5, 1 + np.floor(5 * pr))


def _top_lists(ev: pd.DataFrame, key: str, field: str) -> pd.Series:
    sub = ev.loc[(ev["w"] > 0) & ev[key].notna(), [S.USER_ID, key, "w"]]
    g = sub.groupby([S.USER_ID, key], sort=False)["w"].sum().reset_index()
    g["share"] = g["w"] / g.groupby(S.USER_ID, sort=False)["w"].transform("sum")
    g = g.sort_values([S.USER_ID, "w", key], ascending=[True, False, True]).groupby(S.USER_ID, sort=False).head(P.TOP_K)
    g["entry"] = [{field: k, P.SHARE: s} for k, s in zip(g[key], g["share"])]
    return g.groupby(S.USER_ID, sort=False)["entry"].agg(list)


def pandas_profiles(events: pd.DataFrame, items: pd.DataFrame,
                    as_of: datetime | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same user_profiles and item_stats as analytics.profile_build, written with pandas."""
    as_of = events[S.TS].max() + pd.Timedelta(microseconds=1) if as_of is None else pd.Timestamp(as_of)
    ev = events.loc[events[S.TS] < as_of]
    cat = pd.DataFrame({
        "category_k": _clean(items[S.CATEGORY]).values,
        "root_k": _clean(items[S.CATEGORY].str.split(S.CATEGORY_SEPARATOR, n=1, regex=False).str[0]).values,
        "brand_k": _clean(items[S.BRAND]).values,
        "item_price": items[S.PRICE].values,
    }, index=items[S.ITEM_ID].values)
    return _pandas_users(ev, cat, as_of), _pandas_items(ev, cat, as_of)


def _masks(ev: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Purchase, return and view rows, and each row's quantity (missing = 1, returns positive)."""
    etype = ev[S.EVENT_TYPE]
    qty = ev[S.QUANTITY].astype("float64").fillna(1).abs()
    return etype == S.PURCHASE, etype == S.RETURN, etype == S.VIEW, qty


def _pandas_users(ev: pd.DataFrame, cat: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """user_profiles in pandas."""
    is_buy, is_ret, is_view, qty = _masks(ev)
    etype = ev[S.EVENT_TYPE]
    day = ev[S.TS].dt.normalize()
    ev_u = pd.concat([ev[[S.USER_ID]], cat.reindex(ev[S.ITEM_ID].values).set_axis(ev.index)], axis=1)
    price = ev[S.PRICE].fillna(ev_u["item_price"])
    ev_u["w"] = etype.map(S.RELEVANCE).fillna(0)
    by_user = ev.groupby(S.USER_ID, sort=False)
    users = ev.groupby([S.USER_ID, S.EVENT_TYPE], sort=False).size().unstack(fill_value=0)
    users = users.reindex(columns=list(S.EVENT_TYPES), fill_value=0).rename(columns=P.COUNT_COLUMNS)
    users[P.N_EVENTS] = by_user.size()
    has_session = ev[S.SESSION_ID].notna()
    users[P.N_SESSIONS] = (
        ev.loc[has_session].groupby(S.USER_ID)[S.SESSION_ID].nunique().reindex(users.index, fill_value=0)
        + day[~has_session].groupby(ev.loc[~has_session, S.USER_ID]).nunique().reindex(users.index, fill_value=0)
    )
    users[P.FIRST_ACTIVE] = by_user[S.TS].min()
    users[P.LAST_ACTIVE] = by_user[S.TS].max()
    buys_user = ev.loc[is_buy, S.USER_ID]
    users[P.LAST_PURCHASE] = ev.loc[is_buy, S.TS].groupby(buys_user).max()
    users[P.RECENCY_DAYS] = (as_of - users[P.LAST_PURCHASE]).dt.total_seconds() / 86400
    users[P.FREQUENCY] = day[is_buy].groupby(buys_user).nunique().reindex(users.index, fill_value=0)
    users[P.MONETARY] = _money(price, qty, is_buy, is_ret, ev[S.USER_ID], users.index)
    users[P.CONVERSION_RATE] = (users[P.COUNT_COLUMNS[S.PURCHASE]] / users[P.COUNT_COLUMNS[S.VIEW]]).where(
        users[P.COUNT_COLUMNS[S.VIEW]] > 0)
    for mask, names in ((is_view, (P.VIEW_PRICE_P25, P.VIEW_PRICE_MEDIAN, P.VIEW_PRICE_P75)),
                        (is_buy, (P.BUY_PRICE_P25, P.BUY_PRICE_MEDIAN, P.BUY_PRICE_P75))):
        q = price[mask].groupby(ev.loc[mask, S.USER_ID]).quantile([0.25, 0.5, 0.75]).unstack()
        for level, name in zip((0.25, 0.5, 0.75), names):
            users[name] = q[level] if len(q) else np.nan
    for column, key, field in ((P.TOP_CATEGORIES, "category_k", S.CATEGORY),
                               (P.TOP_ROOT_CATEGORIES, "root_k", S.CATEGORY), (P.TOP_BRANDS, "brand_k", S.BRAND)):
        tops = _top_lists(ev_u, key, field).reindex(users.index)
        users[column] = [t if isinstance(t, list) else [] for t in tops]
    buyers = users[P.LAST_PURCHASE].notna()
    users[P.R_SCORE] = _percent_score(users.loc[buyers, P.RECENCY_DAYS], ascending=False)
    users[P.F_SCORE] = _percent_score(users.loc[buyers, P.FREQUENCY], ascending=True)
    users[P.M_SCORE] = _percent_score(users.loc[buyers & users[P.MONETARY].notna(), P.MONETARY], ascending=True)
    r, f = users[P.R_SCORE], users[P.F_SCORE]
    users[P.RFM_SEGMENT] = np.select(
        [~buyers, (r >= 4) & (f >= 4), (r >= 3) & (f >= 3), (r >= 3) & (f == 2), r >= 3, f >= 3],
        [P.BROWSERS, P.CHAMPIONS, P.LOYAL, P.POTENTIAL, P.NEW, P.AT_RISK], default=P.HIBERNATING)
    users = users.rename_axis(S.USER_ID).reset_index()

    return users


def _pandas_items(ev: pd.DataFrame, cat: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """item_stats in pandas."""
    is_buy, is_ret, _, qty = _masks(ev)
    by_item = ev.groupby(S.ITEM_ID, sort=False)
    stats = ev.groupby([S.ITEM_ID, S.EVENT_TYPE], sort=False).size().unstack(fill_value=0)
    stats = stats.reindex(columns=list(S.EVENT_TYPES), fill_value=0).rename(columns=P.COUNT_COLUMNS)
    stats[P.N_EVENTS] = by_item.size()
    stats[P.UNIQUE_USERS] = by_item[S.USER_ID].nunique()
    stats[S.FIRST_SEEN] = by_item[S.TS].min()
    stats[P.LAST_SEEN] = by_item[S.TS].max()
    age = as_of - ev[S.TS]
    for days, recent in ((7, P.N_EVENTS_7D), (30, P.N_EVENTS_30D)):
        n_recent = (age <= pd.Timedelta(days=days)).groupby(ev[S.ITEM_ID]).sum()
        n_before = ((age > pd.Timedelta(days=days)) & (age <= pd.Timedelta(days=2 * days))).groupby(ev[S.ITEM_ID]).sum()
        stats[recent], stats["_before_" + recent] = n_recent, n_before
    own = ev[S.PRICE]
    sign = pd.Series(np.where(is_buy, 1.0, np.where(is_ret, -1.0, np.nan)), index=ev.index)
    money = is_buy | is_ret
    stats["own_sum"] = (_cents4(own * qty) * sign)[money].groupby(ev.loc[money, S.ITEM_ID]).sum(min_count=1) / 10_000
    stats["own_events"] = money.groupby(ev[S.ITEM_ID]).sum()
    unpriced = money & own.isna()
    stats["unpriced_qty"] = (qty * sign)[unpriced].groupby(ev.loc[unpriced, S.ITEM_ID]).sum()
    stats = stats.join(cat, how="outer")
    out = pd.DataFrame({
        S.ITEM_ID: stats.index, S.CATEGORY: stats["category_k"].values, P.ROOT_CATEGORY: stats["root_k"].values,
        S.BRAND: stats["brand_k"].values, S.PRICE: stats["item_price"].values,
    })
    for name in [*P.COUNT_COLUMNS.values(), P.N_EVENTS]:
        out[name] = stats[name].fillna(0).astype("int64").values
    out[P.CONVERSION] = (stats[P.COUNT_COLUMNS[S.PURCHASE]] / stats[P.COUNT_COLUMNS[S.VIEW]]).where(
        stats[P.COUNT_COLUMNS[S.VIEW]] > 0).values
    own_events = stats["own_events"].fillna(0)
    revenue = stats["own_sum"].fillna(0) + (stats["item_price"] * stats["unpriced_qty"]).fillna(0)
    revenue = revenue.where(stats["own_sum"].notna() | stats["item_price"].notna(), np.nan)
    out[P.REVENUE] = revenue.where(own_events > 0, 0.0).values
    out[P.UNIQUE_USERS] = stats[P.UNIQUE_USERS].fillna(0).astype("int64").values
    out[S.FIRST_SEEN], out[P.LAST_SEEN] = stats[S.FIRST_SEEN].values, stats[P.LAST_SEEN].values
    for recent, trend in ((P.N_EVENTS_7D, P.TREND_7D), (P.N_EVENTS_30D, P.TREND_30D)):
        n_recent, n_before = stats[recent].fillna(0), stats["_before_" + recent].fillna(0)
        out[recent] = n_recent.astype("int64").values
        out[trend] = ((n_recent + 1) / (n_before + 1)).values
    return out


def _cents4(amount: pd.Series) -> pd.Series:
    """Amounts in 1/10,000 currency units as whole numbers, so sums are exact (SQL: DECIMAL(18, 4))."""
    return np.round(amount * 10_000)


def _money(price: pd.Series, qty: pd.Series, is_buy: pd.Series, is_ret: pd.Series, key: pd.Series,
           index: pd.Index) -> pd.Series:
    money = is_buy | is_ret
    sign = np.where(is_buy[money], 1.0, -1.0)
    amount = _cents4(price[money] * qty[money]) * sign
    total = amount.groupby(key[money]).sum(min_count=1).reindex(index) / 10_000  # NaN when no price is known
    n = money.groupby(key).sum().reindex(index, fill_value=0)
    return total.where(n > 0, 0.0)


# --------------------------------------------------------------------------- checking


def compare(duck: pd.DataFrame, pand: pd.DataFrame, key: str) -> list[str]:
    """Column-by-column differences between the DuckDB and pandas tables (empty list = same)."""
    problems = []
    if set(duck.columns) != set(pand.columns):
        return [f"columns differ: {sorted(set(duck.columns) ^ set(pand.columns))}"]
    if len(duck) != len(pand):
        return [f"{len(duck)} rows in DuckDB vs {len(pand)} in pandas"]
    duck = duck.sort_values(key).reset_index(drop=True)
    pand = pand.sort_values(key).reset_index(drop=True)[duck.columns]
    lists = dict(_LIST_COLUMNS)
    for column in duck.columns:
        a, b = duck[column], pand[column]
        if column in lists:
            same = all(_same_list(x, y, lists[column]) for x, y in zip(a, b))
        elif pd.api.types.is_numeric_dtype(a) or pd.api.types.is_numeric_dtype(b):
            x, y = a.astype("float64").to_numpy(), b.astype("float64").to_numpy()
            same = bool(np.allclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True))
        elif pd.api.types.is_datetime64_any_dtype(a):
            same = bool(((a == b) | (a.isna() & b.isna())).all())
        else:
            same = bool(((a.astype(object) == b.astype(object)) | (a.isna() & b.isna())).all())
        if not same:
            problems.append(column)
    return problems


def _same_list(x, y, field: str) -> bool:
    x = list(x) if x is not None else []
    y = list(y) if y is not None else []
    return len(x) == len(y) and all(
        a[field] == b[field] and math.isclose(a[P.SHARE], b[P.SHARE], rel_tol=1e-9) for a, b in zip(x, y))


# --------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000], help="events per run")
    parser.add_argument("--repeat", type=int, default=3, help="profile builds per size (median/min/max)")
    parser.add_argument("--pandas-repeat", type=int, default=None, help="pandas runs per size (default: --repeat)")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    parser.add_argument("--no-check", action="store_true", help="skip comparing pandas with DuckDB")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="where to write data (default: a temp dir)")
    args = parser.parse_args(argv)
    pandas_repeat = args.pandas_repeat or args.repeat

    print(f"machine: {machine_line()}")
    print(f"load average at the start: {load_line()} (other work on the machine slows wall times)")
    print(f"DuckDB threads: {args.threads or 'default (all cores)'}; build = both tables incl. CHECKPOINT")
    rows = []
    root = Path(tempfile.mkdtemp(prefix="recsight-bench-", dir=args.workdir))
    try:
        for size in args.sizes:
            folder, db_path = root / f"shop_{size}", root / f"shop_{size}.duckdb"
            started = time.perf_counter()
            n_events = generate(folder, size, args.seed)
            gen_s = time.perf_counter() - started
            ingest_s, ingest_peak = in_child(step_ingest, str(db_path), str(folder))
            (duck, n_users, n_items), duck_peak = in_child(step_duckdb, str(db_path), args.repeat, args.threads)
            (pand, verdict), pd_peak = in_child(step_pandas, str(db_path), pandas_repeat, not args.no_check)
            print(f"\n{human_count(n_events)} events ({n_events:,}; {n_users:,} users, {n_items:,} items), "
                  f"synthetic shop generated in {gen_s:.1f} s")
            print(f"  ingest (generic)  {ingest_s:.2f} s (1 run), peak RSS {ingest_peak:,.0f} MiB")
            print(f"  DuckDB profiles   {duck}, peak RSS {duck_peak:,.0f} MiB")
            print(f"  pandas profiles   {pand}, peak RSS {pd_peak:,.0f} MiB (events already in memory)")
            print(f"  pandas / DuckDB   {pand.median / duck.median:.1f}x (medians of wall time; "
                  f"{pand.cpu_median / duck.cpu_median:.1f}x in CPU seconds); results {verdict}")
            rows.append([human_count(n_events), f"{ingest_s:.2f}", f"{duck.median:.2f}", f"{duck.min:.2f}",
                         f"{duck.max:.2f}", f"{duck.cpu_median:.2f}", f"{duck_peak:,.0f}", f"{pand.median:.2f}",
                         f"{pand.cpu_median:.2f}", f"{pd_peak:,.0f}", f"{pand.median / duck.median:.1f}x",
                         f"{pand.cpu_median / duck.cpu_median:.1f}x"])
            shutil.rmtree(folder, ignore_errors=True)
            db_path.unlink(missing_ok=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(format_table(["events", "ingest s", "duckdb med s", "min", "max", "cpu s", "duckdb MiB", "pandas med s",
                        "cpu s", "pandas MiB", "pandas/duckdb", "cpu ratio"], rows))
    print(f"load average at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
