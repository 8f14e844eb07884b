"""Feature rows of the search ranker: one row per (query, customer or nobody, retrieved item).

Two sides, named in the registry (:data:`SEARCH_FEATURES`) so that explanations can group
TreeSHAP contributions the way a support agent talks about a result:

- **matches the query** (``side="query"``): the per-field BM25 scores, the embedding similarity,
  the share of the query's terms found in each field, whether every query term is in the item's
  category path and whether the query names the item's brand, the retrieval ranks, the item's
  popularity (distinct customers in the shop's events) and its price. Known for every search.
- **fits this customer** (``side="customer"``): the customer's share of (relevance-weighted)
  activity on the item's brand and category, by the definition of ``brand_share`` and
  ``category_share`` in :mod:`models.features` (an event weighs ``schema.RELEVANCE`` of its type;
  a share is the weight on this brand over the weight on every brand); how often they chose the
  brand; whether they already had the item; the co-visitation weight from their recent steps to
  the item (the candidate index's tables through :class:`models.live_covis.CovisLinks`, the recent
  steps weighted as in :func:`models.candidates.generate`); and the attention network's score of
  the item given their history. Anonymous search leaves them NaN.

Every customer figure is computed from the events handed to :class:`PersonalContext` only: a
training group passes the customer's events *before* its target, so nothing at or after the
target reaches a feature (:mod:`models.search_training` builds those; a test checks it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from analytics import schema as S
from models.attention import AttentionModel
from models.candidates import DEFAULT_COVIS
from models.live_covis import CovisLinks
from models.search_index import SearchIndex
from models.search_query import Retrieval
from models.sequences import Histories

__all__ = ["SearchFeatureSpec", "SEARCH_FEATURES", "SIDES", "QUERY_FEATURES", "CUSTOMER_FEATURES",
           "search_feature", "search_label_of", "ItemStats", "PersonalContext", "personal_context",
           "feature_rows", "query_rows", "with_customer", "recent_steps", "N_RECENT", "DECAY"]

log = logging.getLogger(__name__)

SIDES: dict[str, str] = {"query": "matches the query", "customer": "fits this customer"}
N_RECENT = 5    # recent steps that seed co-visitation, as models.candidates.CandidateConfig.n_recent
DECAY = 0.5     # weight of the step r back: DECAY ** (r - 1), as CandidateConfig.decay
_FIELDS = (S.TITLE, S.CATEGORY, S.BRAND, S.DESCRIPTION)
_FIELD_WORDS = {S.TITLE: "title", S.CATEGORY: "category path", S.BRAND: "brand", S.DESCRIPTION: "description"}


@dataclass(frozen=True)
class SearchFeatureSpec:
    """One search ranker feature: column name, the label an agent reads out, its side, what it is."""

    name: str
    label: str
    side: str
    description: str


def _query_specs() -> list[SearchFeatureSpec]:
    specs = [SearchFeatureSpec(f"bm25_{f}", f"Query words in the {w}", "query",
                               f"BM25 of the query in the item's {w}") for f, w in _FIELD_WORDS.items()]
    specs += [SearchFeatureSpec(f"terms_{f}", f"Share of the query's words found in the {w}", "query",
                                f"query terms present in the {w} / query terms") for f, w in _FIELD_WORDS.items()]
    return specs + [
        SearchFeatureSpec("terms_any", "Share of the query's words found anywhere", "query",
                          "query terms present in any field / query terms"),
        SearchFeatureSpec("category_all", "Every query word is in its category", "query",
                          "1 if every query term occurs in the item's category path"),
        SearchFeatureSpec("brand_named", "The query names its brand", "query",
                          "1 if every word of the item's brand occurs in the query"),
        SearchFeatureSpec("similarity", "Meaning close to the query", "query",
                          "cosine of the multilingual e5 vectors of the query and the item"),
        SearchFeatureSpec("keyword_rank", "Rank by keyword match", "query",
                          "1-based rank of the item by weighted BM25 (empty: no query word matched)"),
        SearchFeatureSpec("semantic_rank", "Rank by meaning", "query", "1-based rank of the item by similarity"),
        SearchFeatureSpec("item_users", "Number of customers who chose it", "query",
                          "distinct customers with an event on the item"),
        SearchFeatureSpec("price", "Price", "query", "the item's catalogue price (empty without one)"),
    ]


def _customer_specs() -> list[SearchFeatureSpec]:
    specs = [
        SearchFeatureSpec("brand_share", "Your affinity to its brand", "customer",
                          "share of the customer's relevance-weighted activity on the item's brand"),
        SearchFeatureSpec("category_share", "Your affinity to its category", "customer",
                          "share of the customer's activity in the item's category"),
        SearchFeatureSpec("brand_events", "Times you chose its brand", "customer",
                          "the customer's events on items of the item's brand"),
        SearchFeatureSpec("seen_before", "You already had it", "customer",
                          "1 if the item is in the customer's history"),
    ]
    specs += [SearchFeatureSpec(f"covis_{c.name}", f"Often chosen {words} your recent items", "customer",
                                f"co-visitation ({c.name}, {c.window} steps) from the customer's last "
                                f"{N_RECENT} steps, the step r back weighted {DECAY}**(r-1)")
              for c, words in zip(DEFAULT_COVIS, ("right after", "right before", "with"), strict=True)]
    specs += [
        SearchFeatureSpec("recent_similarity", "Like the items you chose lately", "customer",
                          "cosine of the item's e5 vector with the decay-weighted mean vector of the customer's "
                          f"last {N_RECENT} steps"),
        SearchFeatureSpec("recent_similarity_max", "Close to one of your recent items", "customer",
                          f"largest cosine of the item's e5 vector with an item of the last {N_RECENT} steps"),
    ]
    specs.append(SearchFeatureSpec("attention_score", "Fits your recent behaviour (deep interest)", "customer",
                                   "logit of the target-attention network over the customer's last behaviours"))
    return specs


SEARCH_FEATURES: tuple[SearchFeatureSpec, ...] = (*_query_specs(), *_customer_specs())
QUERY_FEATURES: tuple[str, ...] = tuple(f.name for f in SEARCH_FEATURES if f.side == "query")
CUSTOMER_FEATURES: tuple[str, ...] = tuple(f.name for f in SEARCH_FEATURES if f.side == "customer")
_BY_NAME = {f.name: f for f in SEARCH_FEATURES}


def search_feature(name: str) -> SearchFeatureSpec:
    """The registry entry of a search feature column."""
    return _BY_NAME[name]


def search_label_of(name: str) -> str:
    """The human label of a search feature (explanations show this, never the column name)."""
    return _BY_NAME[name].label


@dataclass(frozen=True)
class ItemStats:
    """Per indexed item (arrays in the index's row order): popularity, price, brand, category,
    and the index's item vectors (for the customer's similarity features)."""

    popularity: np.ndarray
    price: np.ndarray
    brand: np.ndarray      # object: brand or None
    category: np.ndarray   # object: category path or None
    vectors: np.ndarray | None = field(default=None, repr=False)
    row_of: Mapping[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_counts(cls, index: SearchIndex, popularity: Mapping[str, float],
                    prices: Mapping[str, float] | None = None) -> ItemStats:
        """Stats from per-item counts (items absent: 0 customers; no price: NaN)."""
        ids = index.item_ids
        pop = np.array([float(popularity.get(i, 0.0)) for i in ids], dtype=np.float64)
        prices = prices or {}
        price = np.array([_float(prices.get(i)) for i in ids], dtype=np.float64)
        return cls(pop, price, index.items[S.BRAND].to_numpy(object), index.items[S.CATEGORY].to_numpy(object),
                   index.vectors, {item: row for row, item in enumerate(ids)})

    @classmethod
    def from_connection(cls, con: duckdb.DuckDBPyConnection, index: SearchIndex,
                        events_table: str = S.EVENTS, items_table: str = S.ITEMS) -> ItemStats:
        """Popularity from ``events_table`` and prices from ``items_table`` of a shop connection
        (compute once per index and events snapshot: it scans the events)."""
        counts = dict(con.execute(f"SELECT {S.ITEM_ID}, count(DISTINCT {S.USER_ID}) FROM {events_table} "
                                  "GROUP BY ALL").fetchall())
        prices = dict(con.execute(f"SELECT {S.ITEM_ID}, {S.PRICE} FROM {items_table}").fetchall())
        return cls.from_counts(index, counts, prices)


@dataclass
class PersonalContext:
    """What the customer features need of one customer, from their events before a moment.

    ``links`` gives the co-visitation weights (None: those features stay NaN); ``attention``
    with ``histories`` scores the items (None: ``attention_score`` stays NaN, or a caller that
    scores many groups at once fills it in).
    """

    user_id: str
    brand_weight: dict[str, float]
    category_weight: dict[str, float]
    brand_events: dict[str, int]
    seen: frozenset[str]
    recent: dict[str, float]          # item -> DECAY ** (step - 1) of its latest recent step
    links: CovisLinks | None = None
    attention: AttentionModel | None = None
    histories: Histories | None = field(default=None, repr=False)

    @classmethod
    def from_events(cls, user_id: str, events: pd.DataFrame, brands: Mapping[str, object],
                    categories: Mapping[str, object], **models: object) -> PersonalContext:
        """A context from the customer's events (columns item_id, event_type, ts), with the
        brand and category of each item; ``models`` are ``links``, ``attention``, ``histories``."""
        items = events[S.ITEM_ID].astype(str).tolist()
        weights = [float(S.RELEVANCE.get(e, 0)) for e in events[S.EVENT_TYPE]]
        brand_w: dict[str, float] = {}
        cat_w: dict[str, float] = {}
        brand_n: dict[str, int] = {}
        for item, w in zip(items, weights, strict=True):
            brand, category = _key(brands.get(item)), _key(categories.get(item))
            if brand is not None:
                brand_w[brand] = brand_w.get(brand, 0.0) + w
                brand_n[brand] = brand_n.get(brand, 0) + 1
            if category is not None:
                cat_w[category] = cat_w.get(category, 0.0) + w
        return cls(user_id, brand_w, cat_w, brand_n, frozenset(items), recent_steps(events), **models)

    def features(self, item_ids: Sequence[str], rows: np.ndarray, stats: ItemStats) -> dict[str, np.ndarray]:
        """The customer columns for these items (in order; ``rows`` their index rows)."""
        n = len(item_ids)
        brands, categories = stats.brand[rows], stats.category[rows]
        brand_total, cat_total = sum(self.brand_weight.values()), sum(self.category_weight.values())
        out = {
            "brand_share": np.array([_share(self.brand_weight, _key(b), brand_total) for b in brands]),
            "category_share": np.array([_share(self.category_weight, _key(c), cat_total) for c in categories]),
            "brand_events": np.array([float(self.brand_events.get(_key(b) or "", 0)) for b in brands]),
            "seen_before": np.array([float(i in self.seen) for i in item_ids]),
        }
        out.update(self._covis(item_ids))
        out.update(self._similarity(rows, stats))
        out["attention_score"] = np.full(n, np.nan)
        if self.attention is not None and self.histories is not None and n:
            scores = self.attention.score(self.histories, [self.user_id] * n, list(item_ids))
            out["attention_score"] = scores.astype(np.float64)
        return out

    def _similarity(self, rows: np.ndarray, stats: ItemStats) -> dict[str, np.ndarray]:
        recent = [(stats.row_of[i], w) for i, w in self.recent.items() if i in stats.row_of]
        if stats.vectors is None or not recent or not len(rows):
            empty = np.full(len(rows), np.nan)
            return {"recent_similarity": empty, "recent_similarity_max": empty.copy()}
        mine = stats.vectors[[r for r, _ in recent]]
        profile = np.asarray([w for _, w in recent]) @ mine
        norm = float(np.linalg.norm(profile))
        cos = stats.vectors[rows] @ mine.T
        mean = stats.vectors[rows] @ (profile / norm) if norm > 0 else np.zeros(len(rows))
        return {"recent_similarity": mean.astype(np.float64),
                "recent_similarity_max": cos.max(axis=1).astype(np.float64)}

    def _covis(self, item_ids: Sequence[str]) -> dict[str, np.ndarray]:
        names = [c.name for c in DEFAULT_COVIS]
        out = {f"covis_{name}": np.full(len(item_ids), np.nan if self.links is None else 0.0) for name in names}
        if self.links is None or not self.recent or not len(item_ids):
            return out
        where = {item: i for i, item in enumerate(item_ids)}
        for target, found in self.links.links(names, list(self.recent), list(item_ids)).items():
            for variant, source, weight in found:
                out[f"covis_{variant}"][where[target]] += self.recent[source] * weight
        return out


def recent_steps(events: pd.DataFrame, n_recent: int = N_RECENT, decay: float = DECAY) -> dict[str, float]:
    """Item -> ``decay ** (step - 1)`` for the items of the last ``n_recent`` steps, a step being a
    timestamp and a run of events on one item counting once (:func:`models.candidates.build_sequences`)."""
    if events.empty:
        return {}
    ordered = events.sort_values([S.TS, S.ITEM_ID], kind="stable")
    items, ts = ordered[S.ITEM_ID].astype(str).to_numpy(), ordered[S.TS].to_numpy()
    keep = np.r_[True, items[1:] != items[:-1]]
    items, ts = items[keep], ts[keep]
    distinct = np.unique(ts)
    step = len(distinct) - np.searchsorted(distinct, ts)  # 1 = the last timestamp
    out: dict[str, float] = {}
    for item, st in zip(items.tolist(), step.tolist(), strict=True):
        if st <= n_recent:
            out[item] = max(out.get(item, 0.0), decay ** (st - 1))
    return out


def personal_context(con: duckdb.DuckDBPyConnection, history_table: str, user_id: str, *,
                     links: CovisLinks | None = None, attention: AttentionModel | None = None,
                     histories: Histories | None = None, items_table: str = S.ITEMS) -> PersonalContext | None:
    """The context of ``user_id`` from their events in ``history_table`` (None: no events, so
    the search is anonymous). For serving: ``rec.tables.history``, ``rec.covis_links()``,
    ``rec.attention`` and ``rec.histories([user_id])``, under ``rec.connection()``."""
    events = con.execute(
        f"""SELECT e.{S.ITEM_ID}, e.{S.EVENT_TYPE}, e.{S.TS}, i.{S.BRAND}, i.{S.CATEGORY}
        FROM {history_table} e LEFT JOIN {items_table} i USING ({S.ITEM_ID})
        WHERE e.{S.USER_ID} = ? ORDER BY e.{S.TS}, e.{S.ITEM_ID}""", [user_id]).df()
    if events.empty:
        return None
    brands = dict(zip(events[S.ITEM_ID], events[S.BRAND], strict=True))
    categories = dict(zip(events[S.ITEM_ID], events[S.CATEGORY], strict=True))
    return PersonalContext.from_events(user_id, events, brands, categories,
                                       links=links, attention=attention, histories=histories)


def feature_rows(retrieval: Retrieval, index: SearchIndex, stats: ItemStats,
                 personal: PersonalContext | None = None) -> pd.DataFrame:
    """One row per candidate of ``retrieval`` (retrieval order): item_id, row, cand_rank and every
    registry column; the customer columns are NaN without ``personal``."""
    return with_customer(query_rows(retrieval, index, stats), stats, personal)


def query_rows(retrieval: Retrieval, index: SearchIndex, stats: ItemStats) -> pd.DataFrame:
    """The query side of :func:`feature_rows` (the same for every customer searching it)."""
    cands = retrieval.candidates
    rows = np.array([c.row for c in cands], dtype=np.int64)
    n_terms = len(retrieval.terms)
    share = (lambda k: k / n_terms) if n_terms else (lambda k: 0.0)
    columns: dict[str, object] = {}
    for f in _FIELDS:
        columns[f"bm25_{f}"] = [c.field_scores.get(f, 0.0) for c in cands]
        columns[f"terms_{f}"] = [share(len(c.matched.get(f, ()))) for c in cands]
    columns["terms_any"] = [share(len({m.term for ms in c.matched.values() for m in ms})) for c in cands]
    columns["category_all"] = [float(n_terms > 0 and len(c.matched.get(S.CATEGORY, ())) == n_terms) for c in cands]
    columns["brand_named"] = [_brand_named(index, c.row, len(c.matched.get(S.BRAND, ()))) for c in cands]
    columns["similarity"] = [c.similarity for c in cands]
    columns["keyword_rank"] = [np.nan if c.keyword_rank is None else float(c.keyword_rank) for c in cands]
    columns["semantic_rank"] = [float(c.semantic_rank) for c in cands]
    columns["item_users"] = stats.popularity[rows] if len(rows) else np.zeros(0)
    columns["price"] = stats.price[rows] if len(rows) else np.zeros(0)
    # one frame built at once (a column assignment each costs pandas a block rebuild: a search
    # request builds this per query)
    features = {name: np.asarray(columns[name], dtype=np.float64) for name in QUERY_FEATURES}
    return pd.DataFrame({S.ITEM_ID: [c.item_id for c in cands], "row": rows,
                         "cand_rank": np.arange(1, len(cands) + 1, dtype=np.float64), **features})


def with_customer(query_frame: pd.DataFrame, stats: ItemStats, personal: PersonalContext | None) -> pd.DataFrame:
    """``query_frame`` (left as it is) with the customer columns added: NaN without ``personal``."""
    n = len(query_frame)
    if personal is None:
        customer = {name: np.full(n, np.nan) for name in CUSTOMER_FEATURES}
    else:
        found = personal.features(query_frame[S.ITEM_ID].tolist(), query_frame["row"].to_numpy(np.int64), stats)
        customer = {name: np.asarray(found[name], dtype=np.float64) for name in CUSTOMER_FEATURES}
    return pd.concat([query_frame, pd.DataFrame(customer, index=query_frame.index)], axis=1)


def _brand_named(index: SearchIndex, row: int, matched: int) -> float:
    """1.0 when the query holds every distinct term of the item's brand (and the brand has one)."""
    brand = index.fields[S.BRAND]
    terms = np.unique(brand.term_ids[brand.indptr[row]:brand.indptr[row + 1]])
    return float(len(terms) > 0 and matched >= len(terms))


def _share(weights: dict[str, float], key: str | None, total: float) -> float:
    if key is None or total <= 0:
        return 0.0
    return weights.get(key, 0.0) / total


def _key(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    return str(value)


def _float(value: object) -> float:
    try:
        return float(value) if value is not None else np.nan
    except (TypeError, ValueError):
        return np.nan
