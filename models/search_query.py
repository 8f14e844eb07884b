"""Scoring one query against a search index: per-field BM25, embedding similarity, candidates.

Two results for two users of them:

- :func:`score_all` gives every item's scores (arrays over the whole catalogue), for evaluation
  protocols that rank all items and for features;
- :func:`candidates` gives the top items, fused from the keyword and the semantic side, each
  with its per-field BM25 scores, its similarity and the query terms it matched per field (the
  words as they stand in the field), for the search ranker and its explanations.

Bad queries: an empty or whitespace-only query is a :class:`errors.RecsightError` (the one
refusal; say "type a word"), anything else is searched as given: cut at ``MAX_QUERY_CHARS``,
control characters removed, and a query with no indexable word (emoji only, punctuation) simply
matches nothing by keyword while the semantic side still ranks by similarity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from errors import RecsightError
from models.search_keyword import FieldIndex, MatchedTerm
from models.search_text import MAX_QUERY_CHARS, analyse, clean_text

__all__ = ["QueryTerm", "QueryScores", "Candidate", "Retrieval", "check_query", "query_terms", "score_all",
           "candidates", "KEYWORD_WEIGHTS", "MAX_QUERY_TERMS", "RRF_K"]

MAX_QUERY_TERMS = 32  # distinct terms kept from a query; more say nothing the first 32 did not
RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al. 2009): candidate order only
# How the four field scores are summed to pick keyword candidates (a BM25F-like prior). The ranker
# sees the four scores themselves and learns its own weights; these only decide who is fetched.
KEYWORD_WEIGHTS: dict[str, float] = {"title": 1.0, "category": 0.7, "brand": 0.7, "description": 0.4}


@dataclass(frozen=True)
class QueryTerm:
    """One distinct term of the query and the words of the query that produced it."""

    term: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class QueryScores:
    """Every item's scores for one query (arrays in the index's item order)."""

    query: str                                      # the text searched: cleaned and cut
    truncated: bool                                 # the query was longer than MAX_QUERY_CHARS
    terms: tuple[QueryTerm, ...]
    field_scores: dict[str, np.ndarray]             # field -> float32 (n_items,) BM25
    keyword: np.ndarray                             # KEYWORD_WEIGHTS-weighted sum of field_scores
    similarity: np.ndarray                          # float32 (n_items,) cosine of the e5 vectors
    term_scores: dict[str, dict[str, np.ndarray]]   # field -> term -> BM25 of that term alone


@dataclass(frozen=True)
class Candidate:
    """One retrieved item with what it was retrieved on."""

    item_id: str
    row: int                                           # the item's position in the index
    field_scores: dict[str, float]                     # BM25 per field (0.0: no query term there)
    keyword_score: float
    similarity: float
    keyword_rank: int | None                           # 1-based among keyword matches, None if none
    semantic_rank: int                                 # 1-based by similarity
    matched: dict[str, tuple[MatchedTerm, ...]]        # field -> terms found there (fields with any)


@dataclass(frozen=True)
class Retrieval:
    """The candidates of one query, best fused rank first."""

    query: str
    truncated: bool
    terms: tuple[QueryTerm, ...]
    candidates: tuple[Candidate, ...]


def check_query(query: object) -> tuple[str, bool]:
    """The query as searched (control characters out, cut at MAX_QUERY_CHARS) and whether it was
    cut; a RecsightError for a query with nothing but whitespace (or not text at all)."""
    if not isinstance(query, str):
        raise RecsightError("the search query must be text")
    if not query.strip():
        raise RecsightError("the search query is empty: type a word or two to search for")
    cleaned = clean_text(query)
    return cleaned[:MAX_QUERY_CHARS], len(cleaned) > MAX_QUERY_CHARS


def query_terms(text: str) -> tuple[QueryTerm, ...]:
    """The distinct terms of a query in order of first appearance (at most MAX_QUERY_TERMS)."""
    words: dict[str, list[str]] = {}
    for token in analyse(text):
        if token.term in words:
            if token.surface not in words[token.term]:
                words[token.term].append(token.surface)
        elif len(words) < MAX_QUERY_TERMS:
            words[token.term] = [token.surface]
    return tuple(QueryTerm(term, tuple(surfaces)) for term, surfaces in words.items())


def score_all(query: str, fields: Mapping[str, FieldIndex], vectors: np.ndarray,
              embed: Callable[[str], np.ndarray]) -> QueryScores:
    """Every item's per-field BM25 and similarity for ``query`` (see :func:`check_query`)."""
    text, truncated = check_query(query)
    terms = query_terms(text)
    n = len(vectors)
    field_scores: dict[str, np.ndarray] = {}
    term_scores: dict[str, dict[str, np.ndarray]] = {}
    keyword = np.zeros(n, dtype=np.float32)
    for name, field in fields.items():
        total = np.zeros(n, dtype=np.float32)
        per_term: dict[str, np.ndarray] = {}
        for qt in terms:
            term_id = field.term_id(qt.term)
            if term_id is not None:
                scores = field.term_scores(term_id)
                per_term[qt.term] = scores
                total += scores
        field_scores[name], term_scores[name] = total, per_term
        keyword += KEYWORD_WEIGHTS.get(name, 1.0) * total
    # einsum, not ``@``: a matrix-vector product through multithreaded BLAS right after the
    # embedding engine's OpenMP threads makes both spin for the two cores (p50 200 ms instead of
    # 17 ms measured at 12,000 items); einsum's own loop takes 1.5 ms on one core.
    similarity = np.einsum("ij,j->i", vectors, embed(text)) if n else np.zeros(0, dtype=np.float32)
    return QueryScores(query=text, truncated=truncated, terms=terms, field_scores=field_scores,
                       keyword=keyword, similarity=similarity.astype(np.float32, copy=False),
                       term_scores=term_scores)


def candidates(scores: QueryScores, fields: Mapping[str, FieldIndex], item_ids: list[str],
               k_candidates: int) -> Retrieval:
    """The top ``k_candidates`` items of the union of the keyword top and the semantic top,
    ordered by reciprocal-rank fusion of the two ranks."""
    if k_candidates < 1:
        raise RecsightError(f"k_candidates must be at least 1, not {k_candidates}")
    keyword_top = _top(scores.keyword, k_candidates, positive_only=True)
    semantic_top = _top(scores.similarity, k_candidates, positive_only=False)
    keyword_rank = {int(row): r for r, row in enumerate(keyword_top, start=1)}
    semantic_rank = {int(row): r for r, row in enumerate(semantic_top, start=1)}
    fused = {row: 1.0 / (RRF_K + r) for row, r in keyword_rank.items()}
    for row, r in semantic_rank.items():
        fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + r)
    chosen = sorted(fused, key=lambda row: (-fused[row], row))[:k_candidates]
    semantic = _ranks_of(scores.similarity, chosen, semantic_rank)
    keyword = _ranks_of(scores.keyword, [row for row in chosen if scores.keyword[row] > 0], keyword_rank)
    out = tuple(_candidate(scores, fields, item_ids, row, keyword.get(row), semantic[row]) for row in chosen)
    return Retrieval(query=scores.query, truncated=scores.truncated, terms=scores.terms, candidates=out)


def _candidate(scores: QueryScores, fields: Mapping[str, FieldIndex], item_ids: list[str], row: int,
               keyword_rank: int | None, semantic_rank: int) -> Candidate:
    matched: dict[str, tuple[MatchedTerm, ...]] = {}
    for name, per_term in scores.term_scores.items():
        found = []
        for qt in scores.terms:
            term_scores = per_term.get(qt.term)
            if term_scores is None or term_scores[row] <= 0:
                continue
            words = fields[name].surface_words(row, fields[name].term_id(qt.term))
            if words:  # always, for a positive score; kept as a guard: only real words are reported
                found.append(MatchedTerm(term=qt.term, query_words=qt.words, field_words=words))
        if found:
            matched[name] = tuple(found)
    return Candidate(item_id=item_ids[row], row=row,
                     field_scores={name: float(s[row]) for name, s in scores.field_scores.items()},
                     keyword_score=float(scores.keyword[row]), similarity=float(scores.similarity[row]),
                     keyword_rank=keyword_rank, semantic_rank=semantic_rank, matched=matched)


def _top(values: np.ndarray, k: int, positive_only: bool) -> np.ndarray:
    """Rows of the ``k`` largest values, largest first (ties: lower row first)."""
    rows = np.flatnonzero(values > 0) if positive_only else np.arange(len(values))
    if len(rows) > k:
        part = np.argpartition(-values[rows], k - 1)[:k]
        rows = rows[part]
    return rows[np.lexsort((rows, -values[rows]))]


def _ranks_of(values: np.ndarray, rows: list[int], known: dict[int, int]) -> dict[int, int]:
    """The 1-based rank by ``values`` of each row (counted only for rows outside the top)."""
    ranks = dict(known)
    for row in rows:
        if row not in ranks:
            ranks[row] = int(np.count_nonzero(values > values[row])) + 1
    return ranks
