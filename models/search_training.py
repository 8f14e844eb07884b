"""Training the search ranker on queries made from what customers chose next.

The personalised product search protocol (Van Gysel et al. 2016; Ai et al., SIGIR 2017): a
customer's chosen item is a search target, its query is built from the item's category path
(:func:`category_query`), and the customer's events before it are what the search knows of them.

Stages by position from the end, as leave-one-out does: stage 1 targets each customer's last
event (the test item: never used here), stage 2 the one before it (validation and early
stopping), stages 3, 4... the earlier ones (training). Everything a stage's features read comes
from that stage's history, the events of every customer strictly before their stage target
(:func:`stage_history`): their own events before the target, the co-visitation tables of the
candidate index built on it (:func:`models.candidates.build_index`), popularity, and an attention
network trained on the history of the earliest training stage (so it has seen no target of any
stage it scores). Nothing at or after a target reaches its features.

Candidates are the retrieval's top ``k_candidates``; a target that is not retrieved is not added
(the protocol ranks every item, and a ranker only reorders what retrieval found), so its group has
no positive and is left out of training, as :func:`models.ranker._trainable` does.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
from bm25s.stopwords import STOPWORDS_EN_PLUS

from analytics import schema as S
from errors import RecsightError
from models.attention import AttentionConfig, AttentionModel
from models.attention_training import train_attention
from models.candidates import CandidateConfig, build_index
from models.live_covis import CovisLinks
from models.ranker import Ranker, RankerConfig, boosting_progress
from models.search_features import (
    CUSTOMER_FEATURES,
    QUERY_FEATURES,
    SEARCH_FEATURES,
    ItemStats,
    PersonalContext,
    query_rows,
    with_customer,
)
from models.search_index import SearchIndex
from models.search_query import Retrieval
from models.search_ranker import K_CANDIDATES, SearchRanker
from progress import SILENT, Progress

__all__ = ["SearchTrainingConfig", "category_query", "stage_history", "stage_groups", "fit_lambdarank",
           "search_attention", "train_search_ranker"]

log = logging.getLogger(__name__)

_WORD = re.compile(r"[^\W_]+")
_STOP = frozenset(STOPWORDS_EN_PLUS)


@dataclass(frozen=True)
class SearchTrainingConfig:
    """Which stages train and validate, how many candidates, and the models' settings."""

    train_stages: tuple[int, ...] = (3, 4)
    valid_stage: int = 2
    k_candidates: int = K_CANDIDATES
    max_targets: int | None = None  # per stage, the first by pseudonym (a fixed random sample); None: all
    with_attention: bool = True
    attention: AttentionConfig = field(default_factory=lambda: AttentionConfig(epochs=6, threads=2))
    ranker: RankerConfig = field(default_factory=lambda: RankerConfig(max_candidates=None, min_data_in_leaf=20))
    candidates: CandidateConfig = field(default_factory=CandidateConfig)


def category_query(path: object) -> str | None:
    """The query of an item with category path ``path``: the words of the levels below the top
    one, stopwords and repeated words (case-folded) removed; None when none is left (or no path)."""
    if not isinstance(path, str) or not path:
        return None
    words: dict[str, str] = {}
    for level in path.split(S.CATEGORY_SEPARATOR)[1:]:
        for word in _WORD.findall(level):
            folded = word.casefold()
            if folded not in _STOP and folded not in words:
                words[folded] = word.lower()
    return " ".join(words.values()) or None


def stage_history(con: duckdb.DuckDBPyConnection, events_table: str, stage: int, out: str) -> str:
    """``out`` (history) and ``out_targets`` (user_id, item_id, ts): each customer's event at
    position n - stage + 1 (events ordered by time, then item) is the target when it has an
    event before it; the history is every customer's events strictly before their target's time."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {out}_targets AS
        SELECT {S.USER_ID}, {S.ITEM_ID}, {S.TS} FROM (
            SELECT {S.USER_ID}, {S.ITEM_ID}, {S.TS},
                   row_number() OVER (PARTITION BY {S.USER_ID} ORDER BY {S.TS}, {S.ITEM_ID}) AS pos,
                   count(*) OVER (PARTITION BY {S.USER_ID}) AS n
            FROM {events_table}) WHERE pos = n - {int(stage)} + 1"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {out} AS
        SELECT e.* FROM {events_table} e JOIN {out}_targets t USING ({S.USER_ID}) WHERE e.{S.TS} < t.{S.TS}"""
    )
    con.execute(f"DELETE FROM {out}_targets WHERE {S.USER_ID} NOT IN (SELECT DISTINCT {S.USER_ID} FROM {out})")
    return out


RetrieveFn = Callable[[str], Retrieval]


def stage_groups(con: duckdb.DuckDBPyConnection, index: SearchIndex, events_table: str, stage: int,
                 retrieve: RetrieveFn, config: SearchTrainingConfig,
                 attention: AttentionModel | None = None) -> pd.DataFrame:
    """Feature rows of every (customer, stage target) group: ``group`` (user_id#stage), user_id,
    ``query``, ``label`` (1 for the target) and every registry column, each group's candidates
    in retrieval order. ``retrieve(query)`` should cache: many targets share a query."""
    history = stage_history(con, events_table, stage, f"search_stage{stage}")
    started = time.perf_counter()
    cand_index = build_index(con, history, config.candidates, f"search_s{stage}")
    links = CovisLinks(con, cand_index.covis_tables)
    stats = ItemStats.from_connection(con, index, history)
    targets = con.execute(
        f"SELECT t.{S.USER_ID}, t.{S.ITEM_ID}, i.{S.CATEGORY} FROM {history}_targets t "
        f"LEFT JOIN {S.ITEMS} i USING ({S.ITEM_ID}) ORDER BY t.{S.USER_ID}").df()
    if config.max_targets is not None:  # pseudonyms are keyed hashes: their order is a fixed random one
        targets = targets.head(config.max_targets)
    events = con.execute(f"SELECT {S.USER_ID}, {S.ITEM_ID}, {S.EVENT_TYPE}, {S.TS} FROM {history}").df()
    by_user = dict(tuple(events.groupby(S.USER_ID, sort=False)))
    brands = dict(zip(index.item_ids, stats.brand, strict=True))
    categories = dict(zip(index.item_ids, stats.category, strict=True))
    query_frames: dict[str, pd.DataFrame] = {}
    parts = []
    for user, item, path in targets.itertuples(index=False):
        query = category_query(path)
        if query is None or user not in by_user:
            continue
        if query not in query_frames:
            query_frames[query] = query_rows(retrieve(query), index, stats)
        context = PersonalContext.from_events(user, by_user[user], brands, categories, links=links)
        frame = with_customer(query_frames[query], stats, context)
        frame.insert(0, "group", f"{user}#{stage}")
        frame.insert(1, S.USER_ID, user)
        frame.insert(2, "query", query)
        frame["label"] = (frame[S.ITEM_ID] == item).astype(np.int32)
        frame["target"] = item
        parts.append(frame)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if attention is not None and len(out):
        histories = attention.histories(con, history, sorted(out[S.USER_ID].unique()))
        out["attention_score"] = attention.score(histories, out[S.USER_ID].tolist(),
                                                 out[S.ITEM_ID].tolist()).astype(np.float64)
    for table in (*cand_index.tables, *(t + "_w" for t in cand_index.covis_tables.values())):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    log.info("search stage %d: %d groups, %d rows, %.1f s", stage, len(parts), len(out), time.perf_counter() - started)
    return out


def _groups(frame: pd.DataFrame) -> np.ndarray:
    values = frame["group"].to_numpy()
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    return np.diff(np.concatenate([[0], change, [len(values)]]))


def _with_positive(frame: pd.DataFrame) -> pd.DataFrame:
    """Groups whose target was retrieved, sorted by group then candidate rank."""
    positive = frame.loc[frame["label"] > 0, "group"].unique()
    return frame[frame["group"].isin(positive)].sort_values(["group", "cand_rank"], kind="stable")


def fit_lambdarank(train: pd.DataFrame, valid: pd.DataFrame, features: list[str], config: RankerConfig,
                   progress: Progress = SILENT, name: str = "search ranker") -> Ranker:
    """LambdaRank on ``train`` groups, trees chosen by NDCG on ``valid`` (groups without a
    retrieved target dropped from both); ``progress`` hears its boosting rounds as ``name``'s."""
    train, valid = _with_positive(train), _with_positive(valid)
    if train.empty or valid.empty:
        raise RecsightError("no search training target was retrieved among the candidates: nothing to learn")
    dtrain = lgb.Dataset(train[features].to_numpy(np.float64), label=train["label"].to_numpy(),
                         group=_groups(train), feature_name=features, free_raw_data=True)
    dvalid = lgb.Dataset(valid[features].to_numpy(np.float64), label=valid["label"].to_numpy(),
                         group=_groups(valid), reference=dtrain)
    booster = lgb.train(config.params(), dtrain, num_boost_round=config.max_rounds, valid_sets=[dvalid],
                        valid_names=["valid"], callbacks=[*boosting_progress(progress, name),
                                                          lgb.early_stopping(config.early_stopping, verbose=False)])
    best = max(booster.best_iteration, 1)
    log.info("search ranker (%d features): %d trees, valid ndcg@%d %.4f, %d training groups", len(features), best,
             config.eval_at, booster.best_score["valid"][f"ndcg@{config.eval_at}"], len(_groups(train)))
    return Ranker(lgb.Booster(model_str=booster.model_to_string(num_iteration=best)), features)


def _counted(progress: Progress, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``, one more stage of training queries told to ``progress``."""
    progress.advance()
    return frame


def search_attention(con: duckdb.DuckDBPyConnection, events_table: str = S.EVENTS,
                     config: SearchTrainingConfig = SearchTrainingConfig()) -> AttentionModel:
    """The attention network of the search features: trained on the history of the earliest
    training stage, so that no stage target it scores was among its training behaviours."""
    stage_history(con, events_table, max(config.train_stages), "search_attention_history")
    return train_attention(con, "search_attention_history", config.attention)


def train_search_ranker(con: duckdb.DuckDBPyConnection, index: SearchIndex, events_table: str = S.EVENTS,
                        config: SearchTrainingConfig = SearchTrainingConfig(),
                        attention: AttentionModel | None = None, progress: Progress = SILENT) -> SearchRanker:
    """Both boosters of a :class:`SearchRanker` from the shop's events (see the module docstring).

    ``con`` must allow TEMP tables (a read-only shop connection does). Stage 1 (each customer's
    last event) is never read. ``attention``: a network from :func:`search_attention` (trained
    here when None and ``config.with_attention``). ``progress`` hears the stages and the boosting rounds.
    """
    if config.valid_stage < 2 or min(config.train_stages, default=0) <= config.valid_stage:
        raise RecsightError("search training stages must lie before the validation stage, itself before the last")
    started = time.perf_counter()
    if attention is None and config.with_attention:
        progress.phase("search: its attention network")
        attention = search_attention(con, events_table, config)
    cache: dict[str, Retrieval] = {}

    def retrieve(query: str) -> Retrieval:
        if query not in cache:
            cache[query] = index.retrieve(query, config.k_candidates)
        return cache[query]

    progress.phase("search: training queries", total=len(config.train_stages) + 1, unit="stages")
    train = pd.concat([_counted(progress, stage_groups(con, index, events_table, s, retrieve, config, attention))
                       for s in config.train_stages], ignore_index=True)
    valid = _counted(progress, stage_groups(con, index, events_table, config.valid_stage, retrieve, config, attention))
    personal_features = [f.name for f in SEARCH_FEATURES
                         if attention is not None or f.name != "attention_score"]
    personal = fit_lambdarank(train, valid, personal_features, config.ranker, progress, "search ranker (personalised)")
    anonymous = fit_lambdarank(train, valid, list(QUERY_FEATURES), config.ranker, progress,
                               "search ranker (query only)")
    info = {"groups": int(train["group"].nunique()), "valid_groups": int(valid["group"].nunique()),
            "train_stages": list(config.train_stages), "valid_stage": config.valid_stage,
            "k_candidates": config.k_candidates, "attention": attention is not None,
            "customer_features": [f for f in CUSTOMER_FEATURES if f in personal_features],
            "seconds": round(time.perf_counter() - started, 1)}
    log.info("search ranker trained: %s", info)
    return SearchRanker(personal, anonymous, info)
