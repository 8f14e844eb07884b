"""Searching the catalogue as a customer (or as nobody): the use case behind the search page, the
customer page's "search as this customer", ``GET /api/v1/search`` and ``cli.py search``.

A model version holds its search artifacts in ``<version>/search/`` (written by ``cli.py train``,
:func:`write_search`): the index of the catalogue (``index/``) and the search ranker. They are
loaded once per loaded recommender (:func:`searcher_for`), so a new model version brings its own.
Items that reached the shop through the live intake after training are added to the index on
the next search (their text embedded then), so a new product is findable at once.

Answers have the recommendations' shape (``items`` with ``rank``, ``item_id``, ``title``,
``score`` and, when asked, ``explanation``), plus the query as searched and whether the ranking
was personalised.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from analytics import schema as s
from analytics.customers import reference_pseudonym, resolve_customer
from errors import RecsightError
from explain.search import SearchComparison, SearchExplanation, compare_results, explain_results
from models.search_catalogue import read_catalogue
from models.search_features import ItemStats, PersonalContext, personal_context
from models.search_index import SearchIndex, build_search_index
from models.search_query import check_query
from models.search_ranker import SearchRanker, SearchResult, rank_search
from models.search_training import SearchTrainingConfig, train_search_ranker
from models.serving import Recommender
from progress import SILENT, Progress
from settings import Settings
from workflows import merchandising
from workflows.recommenders import recommender_for
from workflows.recommenders import resolve_customer as resolve_typed

__all__ = ["Searcher", "Searched", "searcher_for", "search", "explain_search", "search_payload", "compare_search",
           "write_search", "format_search", "SEARCH_DIR", "INDEX_DIR", "cli_search", "SearchPage", "page_search"]

log = logging.getLogger(__name__)

SEARCH_DIR = "search"
INDEX_DIR = "index"


@dataclass
class Searcher:
    """A model version's search artifacts, loaded: the ranker, and the index with its items'
    statistics (one pair, replaced whole when live items are added: a search reads it once, so it
    never pairs an index with another index's statistics)."""

    ranker: SearchRanker
    state: tuple[SearchIndex, ItemStats]
    lock: threading.Lock = field(default_factory=threading.Lock)  # one index replacement at a time

    @property
    def index(self) -> SearchIndex:
        return self.state[0]


@dataclass(frozen=True)
class Searched:
    """One ranked search with what explains it: the index it ran on and the customer's context."""

    result: SearchResult
    index: SearchIndex
    stats: ItemStats
    ranker: SearchRanker
    personal: PersonalContext | None


_searchers: weakref.WeakKeyDictionary[Recommender, Searcher] = weakref.WeakKeyDictionary()
_searchers_lock = threading.Lock()


# What ``cli.py train`` trains the search ranker with: a bounded number of targets per stage (its
# cost then stays minutes whatever the shop's size), and no attention feature: the network it
# would need is its own (trained before the stage targets), which serving does not load.
TRAINING = SearchTrainingConfig(with_attention=False, max_targets=3000)


def write_search(folder: Path, con: duckdb.DuckDBPyConnection, _tables: Any, _models: Any, _protocol: str,
                 progress: Progress = SILENT) -> None:
    """The search artifacts of a model version being written (a :data:`models.training.VersionExtra`):
    the catalogue's index, then the search ranker trained on the shop's events."""
    out = folder / SEARCH_DIR
    progress.phase("search: the catalogue's index")
    index = build_search_index(con, out / INDEX_DIR)
    ranker = train_search_ranker(con, index, config=TRAINING, progress=progress)
    ranker.save(out)


def searcher_for(recommender: Recommender) -> Searcher:
    """The search artifacts of ``recommender``'s model version (loaded on first use)."""
    with _searchers_lock:
        searcher = _searchers.get(recommender)
        if searcher is None:
            folder = recommender.artifact.path / SEARCH_DIR
            if not folder.is_dir():
                raise RecsightError(f"model version {recommender.artifact.path.name} has no search index: "
                                    "retrain with `python cli.py train`")
            index = SearchIndex.load(folder / INDEX_DIR)
            ranker = SearchRanker.load(folder)
            with recommender.connection() as con:
                stats = ItemStats.from_connection(con, index)
            searcher = Searcher(ranker, (index, stats))
            _searchers[recommender] = searcher
    _add_new_items(recommender, searcher)
    return searcher


def search(recommender: Recommender, query: str, user_id: str | None = None, k: int = 10, *,
           like: Searched | None = None) -> Searched:
    """Rank the catalogue for ``query``; personalised when ``user_id`` (a pseudonym) has events.
    ``like``: the same query searched already (for someone else): its index and retrieval are
    reused, so the query is embedded and matched once."""
    searcher = searcher_for(recommender)
    index, stats = (like.index, like.stats) if like is not None else searcher.state
    personal = _personal(recommender, user_id) if user_id is not None else None
    result = rank_search(index, searcher.ranker, query, k, stats=stats, personal=personal,
                         retrieval=like.result.retrieval if like is not None else None)
    result = merchandising.search_excluding(recommender, result, user_id, k)  # no excluded item is ever found
    return Searched(result, index, stats, searcher.ranker, personal)


def search_payload(recommender: Recommender, query: str, user_id: str | None = None, k: int = 10,
                   explain: bool = False) -> dict[str, Any]:
    """The search as JSON (what the API answers and ``search --json`` prints). A query with
    nothing to search in it (blank once control characters are out) finds nothing."""
    try:
        check_query(query)
    except RecsightError:
        return {"query": "", "truncated": False, "user_id": user_id, "personalised": False,
                "model_version": recommender.artifact.path.name, "items": []}
    return _payload(recommender, search(recommender, query, user_id, k), user_id, explain)


def _payload(recommender: Recommender, searched: Searched, user_id: str | None, explain: bool) -> dict[str, Any]:
    result = searched.result
    explained: dict[str, SearchExplanation] = {}
    if explain and result.hits:
        explained = {e.item_id: e for e in _explain(searched, [hit.item_id for hit in result.hits])}
    titles = _titles(searched.index, [hit.item_id for hit in result.hits])
    return {
        "query": result.query,
        "truncated": result.retrieval.truncated,
        "user_id": user_id,
        "personalised": result.personalised,
        "model_version": recommender.artifact.path.name,
        "items": [
            {"rank": hit.rank, "item_id": hit.item_id, "title": titles.get(hit.item_id) or hit.item_id,
             "score": hit.score, **({"explanation": explained[hit.item_id].to_dict()} if explain else {})}
            for hit in result.hits
        ],
    }


def explain_search(recommender: Recommender, query: str, user_id: str | None, item_ids: list[str],
                   k: int = 10) -> list[SearchExplanation]:
    """The explanations of ``item_ids`` among the results of ``query`` (any candidate, not only the top)."""
    return _explain(search(recommender, query, user_id, k), item_ids)


def _explain(searched: Searched, item_ids: list[str]) -> list[SearchExplanation]:
    return explain_results(searched.result, searched.ranker, searched.index, item_ids, searched.personal)


def compare_search(recommender: Recommender, query: str, user_id: str | None, item_a: str,
                   item_b: str) -> SearchComparison:
    """Why result ``item_a`` is above (or below) ``item_b`` for this query and searcher."""
    if item_a == item_b:
        raise RecsightError("pick two different results to compare")
    a, b = explain_search(recommender, query, user_id, [item_a, item_b])
    return compare_results(a, b)


@dataclass(frozen=True)
class SearchPage:
    """What the search page shows for one query: the anonymous results and, when a customer was
    named, theirs (or why not)."""

    anonymous: dict[str, Any]
    personalised: dict[str, Any] | None
    customer_problem: str | None = None


def page_search(settings: Settings, query: str, typed: str | None, k: int,
                record: Callable[[str | None, str], None]) -> SearchPage:
    """The search page's answer: both rankings explained, side by side.

    ``record(customer, detail)`` is called once: with the pseudonym when a customer was found
    (before anything of theirs is returned), with None otherwise (an anonymous search, or a
    customer nobody matched, named by its pseudonym).
    """
    recommender = recommender_for(settings)
    check_query(query)  # nothing to search in it: the page says so
    searched = search(recommender, query, None, k)
    anonymous = _payload(recommender, searched, None, explain=True)
    if not typed:
        record(None, f"search page ({len(query)} characters), anonymous")
        return SearchPage(anonymous, None)
    try:
        user_id = resolve_typed(recommender, typed, settings.secret)
    except RecsightError as exc:
        record(None, f"search page: no customer matched (searched "
                     f"{reference_pseudonym(typed, settings.secret) or 'a shop id'})")
        return SearchPage(anonymous, None, str(exc))
    record(user_id, f"search page ({len(query)} characters) as this customer, explained")
    return SearchPage(anonymous, _payload(recommender, search(recommender, query, user_id, k, like=searched),
                                          user_id, explain=True))


def cli_search(db_path: Path, models_dir: Path, query: str, user: str | None, k: int, explain: bool,
               secret: str) -> dict[str, Any]:
    """``cli.py search``: loads the model for this one call (servers keep a loaded recommender)."""
    recommender = Recommender.load(Path(db_path), Path(models_dir))
    try:
        user_id = None
        if user is not None:
            with recommender.connection() as con:
                user_id = resolve_customer(con, user, secret)
        return search_payload(recommender, query, user_id, k, explain)
    finally:
        recommender.close()


def format_search(result: dict[str, Any]) -> str:
    """A readable list: rank, score, item id and title (and the reasons, when explained)."""
    who = f"as customer {result['user_id']}" if result["user_id"] else "anonymous"
    lines = [f"search {result['query']!r} ({who}{', personalised' if result['personalised'] else ''})"]
    for item in result["items"]:
        lines.append(f"{item['rank']:>3}. {item['score']:>8.4f}  {item['item_id']}  {item['title']}")
        for reason in (item.get("explanation") or {}).get("reasons", []):
            lines.append(f"       - {reason}")
    if not result["items"]:
        lines.append("  (nothing found)")
    return "\n".join(lines)


def _personal(recommender: Recommender, user_id: str) -> PersonalContext | None:
    """The customer's context for the personal features (None: no events, so the search is anonymous)."""
    links = recommender.covis_links()
    with recommender.connection() as con:
        return personal_context(con, recommender.tables.history, user_id, links=links)


def _titles(index: SearchIndex, item_ids: list[str]) -> dict[str, str]:
    out = {}
    for item in item_ids:
        row = index.row(item)
        if row is not None:
            title = index.items[s.TITLE].iloc[row]
            if isinstance(title, str) and title.strip():
                out[item] = title
    return out


def _add_new_items(recommender: Recommender, searcher: Searcher) -> None:
    """Index the items that arrived through the live intake since the index was built (read from
    the serving connection's merged catalogue), so a new product is findable at once."""
    if all(searcher.index.row(item) is not None for item in recommender.cold_items):
        return
    with searcher.lock:
        cold = [item for item in recommender.cold_items if searcher.index.row(item) is None]
        with recommender.connection() as con:
            catalogue = read_catalogue(con)
        rows = catalogue[catalogue[s.ITEM_ID].isin(cold)]
        if rows.empty:
            return
        index = searcher.index.add_items(rows, persist=False)
        with recommender.connection() as con:
            stats = ItemStats.from_connection(con, index)
        searcher.state = (index, stats)  # one assignment: a search sees the old pair or the new one
        log.info("search index: %d item(s) from the live intake added", len(rows))
