"""Keyword retrieval: one BM25 index per item field (``bm25s``), and the words each match rests on.

Why per field: a query word in the title says more than the same word deep in a description, and
the search ranker learns how much more from the four scores side by side (title, category path,
brand, description) instead of one blended number.

Matched terms are exact. For every item and field the index keeps, per term, the surface words
the field really holds ("Capacitors", "CAPACITOR" for the term "capacitor"), taken from the same
analysis that built the BM25 index (``models.search_text.analyse``). A match is reported only
where BM25 found the term in that item's field, and it names those words, so an explanation that
highlights them highlights text that is there.

Storage per field: bm25s's own files, plus the per-item terms as two int32 arrays (CSR: item ->
sorted term ids with a surface id each) and the list of distinct surface words.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np

from errors import RecsightError
from models.search_text import analyse

__all__ = ["FieldIndex", "MatchedTerm", "build_field", "load_field"]

log = logging.getLogger(__name__)
# bm25s sets its own logger to DEBUG, so its "Building index from tokens" lines reached every
# command's stderr whatever the application's level; it follows the application's level instead.
logging.getLogger("bm25s").setLevel(logging.NOTSET)

_SURFACES_FILE = "surfaces.json"
_PAIRS_FILE = "pairs.npz"
_NO_TEXT = "\x00"  # analyse() never yields a control character


@dataclass(frozen=True)
class MatchedTerm:
    """A query term found in one field of one item: ``query_words`` as the query wrote it,
    ``field_words`` as the field holds it (each occurs in the field's text verbatim)."""

    term: str
    query_words: tuple[str, ...]
    field_words: tuple[str, ...]


@dataclass
class FieldIndex:
    """BM25 over one field of every item, plus each item's terms with their surface words."""

    bm25: bm25s.BM25
    indptr: np.ndarray       # int64 (n_items + 1,): item i's pairs are [indptr[i], indptr[i + 1])
    term_ids: np.ndarray     # int32: the term of each pair (bm25s vocabulary id), sorted per item
    surface_ids: np.ndarray  # int32: the surface word of each pair (index into ``surfaces``)
    surfaces: list[str]

    @property
    def n_items(self) -> int:
        return len(self.indptr) - 1

    def term_id(self, term: str) -> int | None:
        """The vocabulary id of ``term``, or None when no item's field holds it."""
        return self.bm25.vocab_dict.get(term) if term else None

    def term_scores(self, term_id: int) -> np.ndarray:
        """float32 (n_items,): BM25 of one term in this field for every item (0 where absent)."""
        return self.bm25.get_scores([int(term_id)])

    def surface_words(self, item: int, term_id: int) -> tuple[str, ...]:
        """The words of item ``item``'s field that analyse to ``term_id`` (empty if none)."""
        start, stop = self.indptr[item], self.indptr[item + 1]
        ids = self.term_ids[start:stop]
        lo, hi = np.searchsorted(ids, term_id, side="left"), np.searchsorted(ids, term_id, side="right")
        return tuple(self.surfaces[s] for s in self.surface_ids[start + lo:start + hi])

    def save(self, folder: Path) -> None:
        """bm25s files and the pairs into ``folder`` (created)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.bm25.save(str(folder), show_progress=False)
        np.savez(folder / _PAIRS_FILE, indptr=self.indptr, term_ids=self.term_ids, surface_ids=self.surface_ids)
        (folder / _SURFACES_FILE).write_text(json.dumps(self.surfaces, ensure_ascii=False), encoding="utf-8")


def build_field(texts: Sequence[str | None]) -> FieldIndex:
    """Analyse one field of every item (None for an item without it) and index it."""
    analysed = [analyse(text) for text in texts]
    corpus = [[t.term for t in tokens] for tokens in analysed]
    if not any(corpus):  # bm25s cannot index a corpus without a word: a sentinel no query produces
        corpus = [[_NO_TEXT]] * len(corpus)
    bm25 = bm25s.BM25()
    # every item gets a row, empty fields too (bm25s indexes them under its empty token)
    bm25.index(corpus, show_progress=False)
    vocab = bm25.vocab_dict
    surface_of: dict[str, int] = {}
    indptr = np.zeros(len(analysed) + 1, dtype=np.int64)
    term_ids: list[int] = []
    surface_ids: list[int] = []
    for i, tokens in enumerate(analysed):
        pairs = sorted({(vocab[t.term], surface_of.setdefault(t.surface, len(surface_of))) for t in tokens})
        term_ids.extend(p[0] for p in pairs)
        surface_ids.extend(p[1] for p in pairs)
        indptr[i + 1] = len(term_ids)
    return FieldIndex(bm25=bm25, indptr=indptr, term_ids=np.asarray(term_ids, dtype=np.int32),
                      surface_ids=np.asarray(surface_ids, dtype=np.int32), surfaces=list(surface_of))


def load_field(folder: Path, n_items: int) -> FieldIndex:
    """A field saved by :meth:`FieldIndex.save`; a RecsightError when it is missing or torn."""
    try:
        bm25 = bm25s.BM25.load(str(folder), mmap=False, load_corpus=False, show_progress=False)
        with np.load(folder / _PAIRS_FILE) as pairs:
            indptr, term_ids, surface_ids = pairs["indptr"], pairs["term_ids"], pairs["surface_ids"]
        surfaces = json.loads((folder / _SURFACES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise RecsightError(f"search index field {folder.name} is unreadable ({_short(exc)}): "
                            "rebuild the index") from None
    field = FieldIndex(bm25=bm25, indptr=indptr, term_ids=term_ids, surface_ids=surface_ids, surfaces=surfaces)
    consistent = (len(indptr) == n_items + 1 and int(indptr[-1]) == len(term_ids) == len(surface_ids)
                  and bm25.scores.get("num_docs") == n_items
                  and (not len(surface_ids) or int(surface_ids.max()) < len(surfaces)))
    if not consistent:
        raise RecsightError(f"search index field {folder.name} does not match its item list: rebuild the index")
    return field


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__
