"""Text analysis for product search: one function turns an item field or a query into terms.

Items and queries go through the same :func:`analyse`, so a term in a query can only match a term
an item field produced the same way. Each :class:`Token` keeps the exact words of the text it came
from (``surface``), so an explanation can highlight what really stands in the field, not a stem.

- Latin (and other space-separated) text: runs of letters and digits, case-folded, English
  stopwords removed, Snowball English stemming ("capacitors" and "Capacitor" -> "capacitor").
- Chinese: runs of CJK ideographs are segmented with jieba in its search mode, which emits the
  words and their dictionary sub-words (螺丝刀 -> 螺丝, 螺丝刀), so a query for either finds the
  title; Chinese stopwords are removed. Nothing is stemmed.

jieba logs to stderr through a handler of its own and writes a dictionary cache to ``/tmp`` on
first use: here it gets no handler (its records go to this process's logging, at WARNING and
above), its cache goes to ``recsight-jieba/`` in the system temp folder (``TMPDIR``), the same
path on every run, and it is loaded only when a text holds Chinese at all.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import jieba
import Stemmer
from bm25s.stopwords import STOPWORDS_CHINESE, STOPWORDS_EN_PLUS

__all__ = ["Token", "analyse", "terms", "clean_text", "MAX_QUERY_CHARS", "has_cjk"]

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 256  # longer queries are cut here: no shopper types more; keeps every query cheap
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<word>[^\W_{_CJK}]+)")
_HAS_CJK = re.compile(f"[{_CJK}]")
_STOP_EN = frozenset(STOPWORDS_EN_PLUS)
_STOP_ZH = frozenset(STOPWORDS_CHINESE)
_stemmer_local = threading.local()  # PyStemmer objects are not thread-safe
_jieba_lock = threading.Lock()
_jieba: jieba.Tokenizer | None = None


@dataclass(frozen=True)
class Token:
    """One term of a text: ``term`` is what the index matches on, ``surface`` the exact words
    of the text it came from (so ``surface in text`` always holds)."""

    term: str
    surface: str


def clean_text(text: str) -> str:
    """``text`` without control characters and lone surrogates (each becomes a space), for
    anything that leaves Python: the embedding engine reads C strings, and a NUL would cut them."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text)


def has_cjk(text: str) -> bool:
    """True when ``text`` holds Chinese ideographs (what jieba is loaded for)."""
    return _HAS_CJK.search(text) is not None


def analyse(text: str | None) -> list[Token]:
    """Every term of ``text`` in order, with its surface words (empty for None or no words)."""
    if not text:
        return []
    tokens: list[Token] = []
    for match in _TOKEN.finditer(text):
        if match.lastgroup == "cjk":
            tokens.extend(_chinese(match.group()))
            continue
        surface = match.group()
        folded = unicodedata.normalize("NFKC", surface).casefold()
        if folded in _STOP_EN:
            continue
        term = _stemmer().stemWord(folded)
        if term:
            tokens.append(Token(term, surface))
    return tokens


def terms(text: str | None) -> list[str]:
    """The terms of ``text`` (what BM25 indexes), in order, repeats kept."""
    return [token.term for token in analyse(text)]


def _chinese(run: str) -> list[Token]:
    words = _segmenter().lcut_for_search(run, HMM=True)
    return [Token(word, word) for word in words if word.strip() and word not in _STOP_ZH]


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_stemmer_local, "stemmer", None)
    if stemmer is None:
        stemmer = Stemmer.Stemmer("english")
        _stemmer_local.stemmer = stemmer
    return stemmer


def _segmenter() -> jieba.Tokenizer:
    """jieba, loaded once per process, quietly, with its cache in a folder of ours."""
    global _jieba
    with _jieba_lock:
        if _jieba is None:
            quiet = logging.getLogger("jieba")
            for handler in list(quiet.handlers):  # jieba's own stderr handler
                quiet.removeHandler(handler)
            quiet.setLevel(logging.WARNING)
            cache = _cache_dir()
            segmenter = jieba.Tokenizer()
            segmenter.tmp_dir = str(cache)
            segmenter.initialize()
            log.info("jieba dictionary loaded (cache in %s)", cache)
            _jieba = segmenter
        return _jieba


def _cache_dir() -> Path:
    path = Path(tempfile.gettempdir()) / "recsight-jieba"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
