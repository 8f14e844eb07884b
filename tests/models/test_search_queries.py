"""Any query a shopper or a script can send: a result, or the one clear error for an empty one.

The 1,000-query property runs the real analyser and BM25 with a stand-in for the embedding engine
(a hash of the text: the engine costs 10-30 ms a query, and what it is fed is checked here); a
second property sends 100 queries through the real engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import models.search_index
from errors import RecsightError
from models.search_embed import DIM
from models.search_index import SearchIndex, build_search_index
from models.search_text import MAX_QUERY_CHARS
from tests.models.search_support import small_catalogue

_PIECES = st.sampled_from([
    "capacitor", "Staples", "胶带", "螺丝刀", "😀", "🔥🔥", "\x00", "\x1b[31m", "\u200b", "\ud800", "' OR 1=1 --",
    "<script>alert(1)</script>", "%00", "../../etc/passwd", " ", "\t", "\n", "ß", "テープ", "Ω", "\u202e",
])
QUERIES = st.one_of(
    st.text(max_size=60),
    st.lists(_PIECES, max_size=8).map("".join),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30),
    st.integers(min_value=0, max_value=12_000).map(lambda n: "x" * n),
)


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return build_search_index(small_catalogue(), None)


@pytest.fixture
def stand_in_engine() -> Iterator[list[str]]:
    """Queries reach a hashing stand-in; the list records what it was given."""
    seen: list[str] = []

    def embed(text: str) -> np.ndarray:
        assert isinstance(text, str) and len(text) <= MAX_QUERY_CHARS
        assert "\x00" not in text and not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)
        text.encode("utf-8")  # what the C engine will be given
        seen.append(text)
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))
        vector = rng.standard_normal(DIM).astype(np.float32)
        return vector / np.linalg.norm(vector)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models.search_index, "embed_query", embed)
        yield seen


_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(max_examples=1_000, **_SETTINGS)
@given(query=QUERIES)
def test_a_query_gives_candidates_or_the_empty_query_error(index: SearchIndex, stand_in_engine: list[str],
                                                          query: str) -> None:
    _check(index, query)


@settings(max_examples=100, **_SETTINGS)
@given(query=QUERIES)
def test_the_real_engine_takes_any_query(index: SearchIndex, query: str) -> None:
    _check(index, query)


def _check(index: SearchIndex, query: str) -> None:
    if not query.strip():
        with pytest.raises(RecsightError, match="the search query is empty"):
            index.retrieve(query, 5)
        return
    result = index.retrieve(query, 5)
    assert len(result.candidates) <= 5 and len(result.query) <= MAX_QUERY_CHARS
    assert len({c.item_id for c in result.candidates}) == len(result.candidates)
    for candidate in result.candidates:
        assert all(score >= 0 for score in candidate.field_scores.values())
        assert -1.0001 <= candidate.similarity <= 1.0001


@pytest.mark.parametrize("query", [None, 42, b"capacitor"])
def test_a_query_that_is_not_text_is_a_clear_error(index: SearchIndex, query: object) -> None:
    with pytest.raises(RecsightError, match="must be text"):
        index.retrieve(query, 5)  # type: ignore[arg-type]


def test_k_candidates_must_be_positive(index: SearchIndex) -> None:
    with pytest.raises(RecsightError, match="k_candidates"):
        index.retrieve("tape", 0)
