"""Benchmark: building the search index and retrieving candidates for one query.

Catalogues:

- ``scientific``: the 4,344 items of Amazon Scientific (``../shared/data/amazon_scientific``,
  ingested with ``--format amazon-json``; titles, brands, category paths, descriptions);
- ``synthetic``: 12,000 items of the synthetic shop's catalogue (``analytics.synth_catalogue``;
  its titles repeat, so fewer distinct texts are embedded);
- ``distinct`` (``--distinct``): 12,000 items, the Scientific ones three times with a variant
  suffix, so every embedding text differs: the worst case for the build (several minutes).

Build: BM25 of four fields plus the item vectors (the embedding engine is most of it). Query:
``SearchIndex.retrieve(q, 200)`` over a mix of English and Chinese queries, after a warm-up, the
median and 90th percentile of ``--repeat`` rounds.

    .venv/bin/python bench/search_index_build.py [--distinct] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics import schema as S
from analytics.ingest import ingest_paths
from analytics.synth_catalogue import make_catalogue
from bench._common import format_table, load_line, machine_line
from models.search_catalogue import read_catalogue
from models.search_index import SearchIndex, build_search_index

SCIENTIFIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon_scientific"
QUERIES = ("capacitor", "stainless steel staples", "digital thermometer probe", "3d printer filament 1.75mm",
           "duct tape silver", "nitrile gloves large", "电容器", "订书钉", "螺丝刀", "温度计",
           "hard start kit for ac compressor", "wireless bluetooth speaker")


def scientific_catalogue(folder: Path) -> pd.DataFrame:
    db = folder / "scientific.duckdb"
    ingest_paths(db, "amazon-json", [SCIENTIFIC], secret="bench-secret-not-for-production")
    con = duckdb.connect(str(db), read_only=True)
    try:
        return read_catalogue(con)
    finally:
        con.close()


def synthetic_catalogue(n_items: int) -> pd.DataFrame:
    cat = make_catalogue(np.random.default_rng(7), n_items)
    return pd.DataFrame({
        S.ITEM_ID: [f"p{n}" for n in cat.item_number],
        S.TITLE: cat.titles,
        S.CATEGORY: [cat.leaf_paths[leaf] for leaf in cat.item_leaf],
        S.BRAND: [cat.brand_names[b] for b in cat.item_brand],
    })


def distinct_catalogue(scientific: pd.DataFrame, n_items: int) -> pd.DataFrame:
    copies = []
    for k in range(-(-n_items // len(scientific))):
        copy = scientific.copy()
        copy[S.ITEM_ID] = copy[S.ITEM_ID] + f"-v{k}"
        copy[S.TITLE] = copy[S.TITLE].fillna("") + f" (variant {k + 1})"
        copies.append(copy)
    return pd.concat(copies, ignore_index=True).head(n_items)


def measure(name: str, catalogue: pd.DataFrame, folder: Path, repeat: int) -> list[str]:
    started = time.perf_counter()
    built = build_search_index(catalogue, folder / name)
    build_s = time.perf_counter() - started
    index = SearchIndex.load(folder / name)
    index.warm()
    rounds: list[float] = []
    for _ in range(repeat):
        for query in QUERIES:
            t = time.perf_counter()
            index.retrieve(query, 200)
            rounds.append((time.perf_counter() - t) * 1000)
    rounds.sort()
    emb = built.manifest["embedding"]
    return [name, f"{len(catalogue):,}", f"{emb['embedded_now']:,}", f"{built.manifest['seconds']['keyword']:.1f}",
            f"{build_s:.1f}", f"{statistics.median(rounds):.1f}", f"{rounds[int(0.9 * (len(rounds) - 1))]:.1f}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds over the query list")
    parser.add_argument("--distinct", action="store_true", help="also 12,000 items with distinct texts (slow)")
    args = parser.parse_args(argv)
    print(machine_line())
    print(f"load average: {load_line()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="search-bench-") as tmp:
        folder = Path(tmp)
        catalogues = {"synthetic-12k": synthetic_catalogue(12_000)}
        if SCIENTIFIC.exists():
            scientific = scientific_catalogue(folder)
            catalogues = {"scientific": scientific, **catalogues}
            if args.distinct:
                catalogues["distinct-12k"] = distinct_catalogue(scientific, 12_000)
        for name, catalogue in catalogues.items():
            rows.append(measure(name, catalogue, folder, args.repeat))
            print(f"  {name}: done", flush=True)
    print(format_table(["catalogue", "items", "texts embedded", "BM25 s", "build s", "query p50 ms",
                        "query p90 ms"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
