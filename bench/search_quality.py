"""Benchmark: personalised product search quality on Amazon Scientific (issue 15, part 7).

Protocol (Van Gysel et al. 2016; Ai et al., SIGIR 2017): for each customer, the last item is the
target; the query is the target's category path, the words of the levels below the top one with
stopwords and repeated words removed (:func:`models.search_training.category_query`); the events
before it are the history; every catalogue item is ranked, items already chosen included.
Customers whose target has no category path have no query and are left out (counted).

Rows:

- **BM25**: weighted sum of the four fields' BM25 (``SearchIndex.score_all(q).keyword``), all items;
- **embeddings**: cosine of the e5 vectors, all items;
- **BM25 + embeddings (RRF)**: reciprocal-rank fusion of the two over all items (the retrieval's
  own candidate order);
- **LambdaRank, query features**: the anonymous booster over the top ``--candidates`` retrieved
  items (items outside them ranked below, in RRF order); popularity is one of its features;
- **LambdaRank, personalised**: the personal booster over the same candidates.

Ties (BM25 gives every item of a category path the same score) are counted at their expected
value under a random order among the tied items, so no row gains from how ties happen to break.
The rankers are trained on stages 3 and 4 (the third- and fourth-to-last items) and stopped on
stage 2; their features come from each stage's history only (:mod:`models.search_training`).

    .venv/bin/python bench/search_quality.py [--candidates 100] [--no-attention] [--users N] [--index-cache DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import rankdata

# One OpenMP thread for the embedding engine: on a shared 2-core machine its threads wait for each
# other and one query took 2.3 s instead of 0.05 s (the item vectors are cached: see --index-cache).
os.environ.setdefault("OMP_NUM_THREADS", "1")

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics import schema as S
from analytics.ingest import ingest_paths
from bench._common import format_table, load_line, machine_line
from models.search_index import SearchIndex, build_search_index
from models.search_query import RRF_K
from models.search_training import (
    SearchTrainingConfig,
    category_query,
    search_attention,
    stage_groups,
    train_search_ranker,
)

SCIENTIFIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon_scientific"
K = 10


def tie_metrics(greater: np.ndarray, tied: np.ndarray, k: int = K) -> dict[str, float]:
    """Mean NDCG@k, HR@k and MRR of targets whose rank is uniform on greater+1 .. greater+tied."""
    ndcg, hit, rr = [], [], []
    for g, t in zip(greater.tolist(), tied.tolist(), strict=True):
        ranks = np.arange(g + 1, g + t + 1, dtype=np.float64)
        ndcg.append(float(np.mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1), 0.0))))
        hit.append(float(np.mean(ranks <= k)))
        rr.append(float(np.mean(1.0 / ranks)))
    return {"NDCG@10": float(np.mean(ndcg)), "HR@10": float(np.mean(hit)), "MRR": float(np.mean(rr))}


def position(values: np.ndarray, target: int) -> tuple[int, int]:
    """(items scoring strictly higher than ``target``, items tied with it including itself)."""
    v = values[target]
    return int(np.count_nonzero(values > v)), int(np.count_nonzero(values == v))


def rrf(keyword: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """Reciprocal-rank fusion over all items; items no query word matched get no keyword part."""
    kw_rank = rankdata(-keyword, method="min")
    sem_rank = rankdata(-similarity, method="min")
    return np.where(keyword > 0, 1.0 / (RRF_K + kw_rank), 0.0) + 1.0 / (RRF_K + sem_rank)


def full_ranking_rows(index: SearchIndex, tests: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(greater, tied) per test customer for the three rows that rank every item by one score."""
    out = {name: (np.zeros(len(tests), np.int64), np.zeros(len(tests), np.int64))
           for name in ("BM25", "embeddings", "BM25 + embeddings (RRF)")}
    for query, part in tests.groupby("query", sort=False):
        scores = index.score_all(query)
        arrays = {"BM25": scores.keyword, "embeddings": scores.similarity,
                  "BM25 + embeddings (RRF)": rrf(scores.keyword, scores.similarity)}
        for i, target in zip(part.index, part["target_row"], strict=True):
            for name, values in arrays.items():
                out[name][0][i], out[name][1][i] = position(values, int(target))
    return out


def ranker_rows(index: SearchIndex, tests: pd.DataFrame, frame: pd.DataFrame, score: np.ndarray,
                n_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """(greater, tied) of each test target under a ranker over its group's candidates; a target
    outside them ranks after every candidate, by RRF among the rest."""
    frame = frame.assign(score=score)
    greater, tied = np.zeros(len(tests), np.int64), np.zeros(len(tests), np.int64)
    groups = dict(tuple(frame.groupby("group", sort=False)))
    for i, (group, query, target) in enumerate(zip(tests["group"], tests["query"], tests["target_row"], strict=True)):
        g = groups.get(group)
        if g is not None and (g["label"] > 0).any():
            values = g["score"].to_numpy()
            greater[i], tied[i] = position(values, int(np.flatnonzero(g["label"].to_numpy() > 0)[0]))
            continue
        scores = index.score_all(query)
        fused = rrf(scores.keyword, scores.similarity)
        if g is not None:
            fused[g["row"].to_numpy(np.int64)] = -np.inf
        rest_greater, rest_tied = position(fused, int(target))
        greater[i], tied[i] = (len(g) if g is not None else n_candidates) + rest_greater, rest_tied
    return greater, tied


def prepare(workdir: Path, max_users: int | None, cache: Path) -> tuple[duckdb.DuckDBPyConnection, SearchIndex]:
    """The shop in a fresh DuckDB file and its search index, written to ``cache`` so that a rerun
    reuses the item vectors (embedding the 4,344 items is most of the build: minutes on 2 cores)."""
    db = workdir / "scientific.duckdb"
    ingest_paths(db, "amazon-json", [SCIENTIFIC], secret="bench-secret-not-for-production")
    con = duckdb.connect(str(db))
    if max_users:
        con.execute(f"CREATE TEMP TABLE bench_events AS SELECT * FROM {S.EVENTS} WHERE {S.USER_ID} IN "
                     f"(SELECT DISTINCT {S.USER_ID} FROM {S.EVENTS} ORDER BY {S.USER_ID} LIMIT {int(max_users)})")
    else:
        con.execute(f"CREATE TEMP VIEW bench_events AS SELECT * FROM {S.EVENTS}")
    return con, build_search_index(con, cache)


def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    config = SearchTrainingConfig(k_candidates=args.candidates, with_attention=not args.no_attention)
    with tempfile.TemporaryDirectory(prefix="search-quality-") as tmp:
        con, index = prepare(Path(tmp), args.users, Path(args.index_cache))
        built = time.perf_counter() - started
        attention = search_attention(con, "bench_events", config) if config.with_attention else None
        ranker = train_search_ranker(con, index, "bench_events", config, attention)
        trained = time.perf_counter() - started - built
        cache: dict = {}

        def retrieve(query: str):
            if query not in cache:
                cache[query] = index.retrieve(query, config.k_candidates)
            return cache[query]

        frame = stage_groups(con, index, "bench_events", 1, retrieve, config, attention)
        targets = con.execute(f"SELECT t.{S.USER_ID}, t.{S.ITEM_ID}, i.{S.CATEGORY} FROM search_stage1_targets t "
                              f"LEFT JOIN {S.ITEMS} i USING ({S.ITEM_ID}) ORDER BY t.{S.USER_ID}").df()
        con.close()
    targets["query"] = [category_query(p) for p in targets[S.CATEGORY]]
    skipped = int(targets["query"].isna().sum())
    tests = targets.dropna(subset=["query"]).reset_index(drop=True)
    tests["group"] = tests[S.USER_ID] + "#1"
    tests["target_row"] = [index.row(i) for i in tests[S.ITEM_ID]]
    rows = {name: tie_metrics(*gt) for name, gt in full_ranking_rows(index, tests).items()}
    for name, personalised in (("LambdaRank, query features", False), ("LambdaRank, personalised", True)):
        score = ranker.predict(frame, personalised)
        rows[name] = tie_metrics(*ranker_rows(index, tests, frame, score, config.k_candidates))
    recall = float(frame.groupby("group")["label"].max().reindex(tests["group"]).fillna(0).mean())
    report(args, rows, len(tests), skipped, recall, ranker.info, built, trained)


def report(args: argparse.Namespace, rows: dict[str, dict[str, float]], n: int, skipped: int, recall: float,
           info: dict, built: float, trained: float) -> None:
    best_plain = max(v["NDCG@10"] for k, v in rows.items() if "personalised" not in k)
    personal = rows["LambdaRank, personalised"]["NDCG@10"]
    table = [[name, f"{m['NDCG@10']:.4f}", f"{m['HR@10']:.4f}", f"{m['MRR']:.4f}"] for name, m in rows.items()]
    print(f"# {machine_line()}\n# load {load_line()}")
    print(f"# command: .venv/bin/python bench/search_quality.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"Amazon Scientific, {n} customers ranked over all items ({skipped} without a category path left out); "
          f"targets retrieved among the top {args.candidates}: {recall:.1%}")
    print(format_table(["model", "NDCG@10", "HR@10", "MRR"], table))
    print(f"personalised vs best non-personalised NDCG@10: {personal / best_plain - 1:+.1%}")
    features = ", ".join(info.get("customer_features", []))
    print(f"ranker trained on {info.get('groups')} groups (stages {info.get('train_stages')}), "
          f"{info.get('valid_groups')} validation groups; customer features: {features}")
    print(f"index {built:.0f} s, training {trained:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=100, help="retrieved items the rankers order")
    parser.add_argument("--no-attention", action="store_true", help="leave out the attention score")
    parser.add_argument("--users", type=int, default=None, help="first N customers only (a quick look)")
    parser.add_argument("--index-cache", default=str(Path(tempfile.gettempdir()) / "recsight-search-quality-index"),
                        help="search index folder kept between runs (its item vectors are reused)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(args)


if __name__ == "__main__":
    main()
