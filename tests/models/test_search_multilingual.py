"""A Chinese query for a kind of product finds items of that kind in the English Amazon Scientific
catalogue, by embedding similarity alone (no Chinese word is in the catalogue).

The vectors of a subset are computed once for the module (every 12th item plus the items of the
kinds asked for: about 470 items, 10-30 s on two cores), not of all 4,344.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from analytics import schema as S
from analytics.ingest import ingest_paths
from models.search_catalogue import read_catalogue
from models.search_index import SearchIndex, build_search_index
from tests.conftest import SHARED_DATA, TEST_SECRET

# query -> words of which one marks an item of that kind (title or category path)
KINDS = {
    "电容器": ("capacitor",),        # capacitor
    "订书钉": ("staple",),           # staples
    "温度计": ("thermometer",),      # thermometer
    "显微镜": ("microscope",),       # microscope
    "螺丝刀": ("screwdriver", "screw"),  # screwdriver: the catalogue has screwdriver holders and screws
}


@pytest.fixture(scope="module")
def scientific(tmp_path_factory: pytest.TempPathFactory) -> SearchIndex:
    folder = SHARED_DATA / "amazon_scientific"
    if not folder.exists():
        pytest.skip(f"real data not found at {folder}")
    db = tmp_path_factory.mktemp("scientific") / "shop.duckdb"
    ingest_paths(db, "amazon-json", [folder], secret=TEST_SECRET)
    con = duckdb.connect(str(db), read_only=True)
    try:
        catalogue = read_catalogue(con)
    finally:
        con.close()
    text = (catalogue[S.TITLE].fillna("") + " " + catalogue[S.CATEGORY].fillna("")).str.lower()
    of_kind = np.zeros(len(catalogue), dtype=bool)
    for words in KINDS.values():
        of_kind |= text.str.contains(words[0], regex=False).to_numpy()
    subset = catalogue[of_kind | (np.arange(len(catalogue)) % 12 == 0)]
    return build_search_index(subset, None)


def _is_kind(index: SearchIndex, row: int, words: tuple[str, ...]) -> bool:
    item = index.items.iloc[row]
    text = f"{item[S.TITLE] or ''} {item[S.CATEGORY] or ''}".lower()
    return any(word in text for word in words)


@pytest.mark.parametrize("query", list(KINDS))
def test_a_chinese_query_finds_english_items_of_its_kind_in_the_top_10(scientific: SearchIndex, query: str) -> None:
    scores = scientific.score_all(query)
    assert not any(s.any() for s in scores.field_scores.values())  # no keyword match: semantic only
    top = np.argsort(-scores.similarity, kind="stable")[:10]
    hits = [scientific.items.iloc[r][S.TITLE] for r in top if _is_kind(scientific, r, KINDS[query])]
    assert hits, f"{query}: nothing of its kind in the top 10"


def test_retrieval_of_a_chinese_query_returns_them_as_candidates(scientific: SearchIndex) -> None:
    result = scientific.retrieve("电容器", 10)
    assert sum(_is_kind(scientific, c.row, KINDS["电容器"]) for c in result.candidates) >= 3
    assert all(c.keyword_rank is None and c.matched == {} for c in result.candidates)


def test_english_queries_match_by_keyword_and_by_meaning(scientific: SearchIndex, shared_data: Path) -> None:
    result = scientific.retrieve("capacitors", 10)
    best = result.candidates[0]
    assert "capacitor" in (scientific.items.iloc[best.row][S.TITLE] or "").lower()
    assert best.keyword_rank is not None and best.semantic_rank <= 20
