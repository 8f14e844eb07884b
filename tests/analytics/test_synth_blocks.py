"""The synthetic shop written in blocks of customers (big shops): same contract, still deterministic."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from analytics import schema as S
from analytics import synth
from analytics.synth import generate_shop

ARGS = dict(n_users=700, n_items=200, n_days=30, seed=5)
FILES = ("events.parquet", "items.parquet", "users.parquet", "truth/preferences.parquet")


@pytest.fixture()
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth, "BLOCK_USERS", 200)  # 700 customers > 2 x 200: four blocks


@pytest.fixture()
def blocked(tmp_path: Path, small_blocks) -> tuple[Path, synth.SynthSummary]:
    return tmp_path / "a", generate_shop(tmp_path / "a", **ARGS)


def test_blocks_are_deterministic_and_seed_dependent(tmp_path: Path, blocked) -> None:
    first, _ = blocked
    generate_shop(tmp_path / "b", **ARGS)
    generate_shop(tmp_path / "c", **{**ARGS, "seed": 6})
    for name in FILES:
        pd.testing.assert_frame_equal(pd.read_parquet(first / name), pd.read_parquet(tmp_path / "b" / name))
    assert not pd.read_parquet(first / "events.parquet").equals(pd.read_parquet(tmp_path / "c" / "events.parquet"))


def test_blocks_keep_the_contract_of_one_pass(tmp_path: Path, blocked, monkeypatch: pytest.MonkeyPatch) -> None:
    first, summary = blocked
    monkeypatch.setattr(synth, "BLOCK_USERS", 10_000)  # one pass
    generate_shop(tmp_path / "one", **ARGS)
    for name in FILES:
        assert pq.read_schema(first / name).equals(pq.read_schema(tmp_path / "one" / name)), name
    events = pd.read_parquet(first / "events.parquet")
    assert pq.ParquetFile(first / "events.parquet").metadata.num_row_groups == 4  # written block by block
    assert summary.n_events == len(events)
    assert dict(summary.events_by_type) == events[S.EVENT_TYPE].value_counts().reindex(
        list(S.EVENT_TYPES), fill_value=0).to_dict()
    # every customer of every block has behaviour, sorted by (user, ts) across blocks
    assert events[S.USER_ID].nunique() > 0.9 * ARGS["n_users"]
    assert events[S.USER_ID].is_monotonic_increasing
    assert (events.groupby(S.USER_ID)[S.TS].diff().dropna() >= pd.Timedelta(0)).all()


def test_session_ids_are_unique_across_blocks_and_first_seen_matches(blocked) -> None:
    first, _ = blocked
    events = pd.read_parquet(first / "events.parquet")
    sessions = events.dropna(subset=[S.SESSION_ID])
    assert (sessions.groupby(S.SESSION_ID)[S.USER_ID].nunique() == 1).all()
    assert sessions[S.SESSION_ID].str.len().nunique() == 1  # one padded width, sortable as text
    users = pd.read_parquet(first / "users.parquet").set_index(S.USER_ID)
    first_ts = events.groupby(S.USER_ID)[S.TS].min()
    assert (users.loc[first_ts.index, S.FIRST_SEEN] == first_ts).all()
    assert users.loc[~users.index.isin(first_ts.index), S.FIRST_SEEN].isna().all()
