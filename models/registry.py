"""Trained model versions on disk: written atomically, loaded with one clear error when unusable.

Layout of ``models_dir``::

    CURRENT                 one line: the name of the version in use
    versions/<name>/        metadata.json, ranker.txt, hybrid.txt, attention.pt, serving/*.parquet

A training run fills a hidden staging folder, renames it into ``versions/`` and only then swaps
``CURRENT`` (temp file + ``os.replace``). A run that dies half-way leaves a staging folder that is
never read, and the previous version stays the current one. The metadata records a fingerprint of
the shop's events and items (:func:`analytics.fingerprint.fingerprint`) and the snapshot's folded
live sequence number (``live_seq``); a model trained on other data is refused rather than served
wrong. A shop file that differs only by compactions since the model's snapshot is *not* other
data: :func:`load_current` recognises it through the shop's lineage and says, in
:attr:`Artifact.base_seq`, which folded events the model has not seen (serving shows them as live).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

import duckdb

from analytics.fingerprint import fingerprint, lineage_seq
from atomic import write_text
from errors import RecsightError

__all__ = [
    "FORMAT_VERSION", "RANKER_FILE", "HYBRID_FILE", "ATTENTION_FILE", "METADATA_FILE",
    "Artifact", "fingerprint", "package_versions", "write_version", "load_current", "current", "versions",
    "load_version", "metadata", "served_model", "SERVABLE", "pin_versions", "pinned_versions",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CURRENT_FILE = "CURRENT"
PINNED_FILE = "PINNED"  # versions something still serves (an experiment's variants): never pruned
VERSIONS_DIR = "versions"
METADATA_FILE = "metadata.json"
RANKER_FILE = "ranker.txt"
HYBRID_FILE = "hybrid.txt"
ATTENTION_FILE = "attention.pt"
KEEP_VERSIONS = 3
_PACKAGES = ("lightgbm", "torch", "duckdb", "numpy", "pandas", "scikit-learn")


@dataclass(frozen=True)
class Artifact:
    """A loaded model version: its folder and its metadata.

    ``base_seq`` is set when the shop file was compacted since the model's snapshot: the folded
    sequence number that snapshot had (events folded after it are new to the model). None when
    the shop file is the model's own snapshot, or when no shop was checked.
    """

    path: Path
    metadata: dict
    base_seq: int | None = None


def package_versions(names: Sequence[str] = _PACKAGES) -> dict[str, str]:
    """The versions of the packages that shape a model (``names``), stored with it to explain a
    changed result."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def write_version(models_dir: Path, fill: Callable[[Path], dict]) -> Path:
    """Stage a new version with ``fill(folder) -> metadata``, publish it, and make it current."""
    models_dir = Path(models_dir)
    versions = models_dir / VERSIONS_DIR
    try:
        versions.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecsightError(f"cannot create models folder {models_dir}: {exc.strerror}") from None
    try:
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=versions))
    except OSError as exc:
        raise RecsightError(_write_error(models_dir, exc)) from None
    try:
        meta = dict(fill(staging))
        meta["format_version"] = FORMAT_VERSION
        meta.setdefault("packages", package_versions())
        write_text(staging / METADATA_FILE, json.dumps(meta, indent=2, default=str))
        name = time.strftime("%Y%m%d-%H%M%S") + "-" + hashlib.sha256(staging.name.encode()).hexdigest()[:6]
        final = versions / name
        os.replace(staging, final)
    except (OSError, duckdb.IOException) as exc:  # a full disk or a folder gone read-only: not a bug
        shutil.rmtree(staging, ignore_errors=True)
        raise RecsightError(_write_error(models_dir, exc)) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        write_text(models_dir / CURRENT_FILE, name + "\n")
    except OSError as exc:
        shutil.rmtree(final, ignore_errors=True)
        raise RecsightError(_write_error(models_dir, exc)) from None
    _prune(versions, keep=name)
    log.info("model version %s written to %s", name, final)
    return final


def _write_error(models_dir: Path, exc: BaseException) -> str:
    """One line for a model version that could not be written; the previous one stays current."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason = "the disk is full"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason = "the folder is read-only or not writable for this user"
    else:
        text = str(getattr(exc, "strerror", None) or exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
    return f"cannot write a model version into {models_dir}: {reason}; the previous version stays in use"


def _prune(versions: Path, keep: str) -> None:
    """Keep the newest few versions, the one just made current and every pinned one."""
    pinned = pinned_versions(versions.parent)
    done = sorted(p for p in versions.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in done[:-KEEP_VERSIONS]:
        if old.name != keep and old.name not in pinned:
            shutil.rmtree(old, ignore_errors=True)


def pin_versions(models_dir: Path | str, names: Sequence[str]) -> None:
    """Replace the set of pinned versions: training keeps them however many versions come after.

    Why: an experiment serves its variants' model versions for weeks; pruning one would break its
    customers' lists midway (they would get an error, never quietly another model). The
    experiments workflow pins the versions of every experiment that is not over.
    """
    folder = Path(models_dir)
    text = "".join(f"{name}\n" for name in sorted(set(names)))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / PINNED_FILE, text)
    except OSError as exc:
        raise RecsightError(f"cannot pin model versions in {folder}: {exc.strerror or exc}") from None


def pinned_versions(models_dir: Path | str) -> frozenset[str]:
    """The pinned version names (empty when nothing is pinned)."""
    try:
        text = (Path(models_dir) / PINNED_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return frozenset()
    except OSError as exc:
        raise RecsightError(f"cannot read the pinned model versions of {models_dir}: {exc.strerror or exc}") from None
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def current(models_dir: Path | str) -> str | None:
    """The name of the version in use, or None when nothing was trained yet (no pointer, or an
    empty one). An unreadable pointer is an error, not "no model": the operator must see it."""
    name = _read_pointer(Path(models_dir))
    return name or None


def versions(models_dir: Path | str) -> list[str]:
    """The published versions in ``models_dir``, newest first (staging folders are not versions).

    Names start with the training time, so their order is the training order. A version may
    still be unreadable: :func:`metadata` says so for each.
    """
    folder = Path(models_dir) / VERSIONS_DIR
    if not folder.is_dir():
        return []
    return sorted((p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True)


def metadata(models_dir: Path | str, version: str | None = None) -> dict:
    """The metadata of ``version`` (default: the one in use, checked as :func:`load_current` does).

    Only a listed version is read: a typo or a path such as ``../..`` is refused.
    """
    models_dir = Path(models_dir)
    if version is None:
        return load_current(models_dir).metadata
    if version not in versions(models_dir):
        raise RecsightError(f"model version {str(version)[:60]!r} is not in {models_dir}")
    return _read_metadata(models_dir / VERSIONS_DIR / version)


def _read_pointer(models_dir: Path) -> str | None:
    """The pointer's text (stripped; may be empty), or None when there is no pointer."""
    pointer = models_dir / CURRENT_FILE
    try:
        return pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a version name"
        raise RecsightError(f"cannot read {pointer}: {reason}") from None


SERVABLE = ("hybrid", "ranker")  # the rankers a version can serve (Models.served)


def served_model(meta: dict) -> str:
    """Which ranker a version serves (``metadata["served"]["model"]``); a version trained before
    the choice existed served the hybrid. Anything else is a corrupt version, said in one line."""
    served = (meta.get("served") or {}).get("model", "hybrid")
    if served not in SERVABLE:
        raise RecsightError(f"model metadata names an unknown served model {served!r}; retrain")
    return served


def _read_metadata(folder: Path) -> dict:
    """A version folder's metadata as a dict; missing or garbled is one clear line."""
    try:
        meta = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecsightError(f"model version {folder.name} has no {METADATA_FILE}; retrain") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RecsightError(f"model metadata {folder / METADATA_FILE} is corrupt; retrain") from None
    except OSError as exc:
        raise RecsightError(f"cannot read {folder / METADATA_FILE}: {exc.strerror}") from None
    if not isinstance(meta, dict):
        raise RecsightError(f"model metadata {folder / METADATA_FILE} is corrupt; retrain")
    return meta


def load_current(models_dir: Path, con: duckdb.DuckDBPyConnection | None = None, *,
                 follow_compactions: bool = False) -> Artifact:
    """The current version; with ``con``, also checks it was trained on this database's data.

    ``follow_compactions``: also accept a shop file that descends from the model's snapshot by
    compactions only (:func:`analytics.fingerprint.lineage_seq`), setting
    :attr:`Artifact.base_seq`. Serving asks for it (it shows the folded events as live); evaluation
    does not: its split of the compacted file would not be the one the model was trained on.
    """
    models_dir = Path(models_dir)
    pointer = models_dir / CURRENT_FILE
    name = _read_pointer(models_dir)
    if name is None:
        raise RecsightError(f"no trained model in {models_dir}: run `python cli.py train` first")
    folder = models_dir / VERSIONS_DIR / name
    if not name or "/" in name or not folder.is_dir():
        raise RecsightError(f"model pointer {pointer} names a missing version {name!r}; retrain")
    return _load(folder, con, follow_compactions)


def load_version(models_dir: Path, version: str, con: duckdb.DuckDBPyConnection | None = None, *,
                 follow_compactions: bool = False) -> Artifact:
    """A published version by name, checked as :func:`load_current` checks the current one (an
    experiment's variant serves it beside the current version). Only a listed version is read."""
    models_dir = Path(models_dir)
    if version not in versions(models_dir):
        raise RecsightError(f"model version {str(version)[:60]!r} is not in {models_dir} "
                            f"(the newest {KEEP_VERSIONS} versions are kept)")
    return _load(models_dir / VERSIONS_DIR / version, con, follow_compactions)


def _load(folder: Path, con: duckdb.DuckDBPyConnection | None, follow_compactions: bool) -> Artifact:
    """The version in ``folder``: its metadata checked, and with ``con`` its data (see :func:`load_current`)."""
    name = folder.name
    meta = _read_metadata(folder)
    if meta.get("format_version") != FORMAT_VERSION:
        raise RecsightError(f"model version {name} has format {meta.get('format_version')}, "
                            f"this code reads {FORMAT_VERSION}; retrain")
    for required in ("fingerprint", "protocol", "features", "config"):
        if required not in meta:
            raise RecsightError(f"model metadata of {name} lacks {required!r}; retrain")
    base_seq = None
    if con is not None:
        current = fingerprint(con)
        if current != meta["fingerprint"]:
            if follow_compactions:
                base_seq = lineage_seq(con, meta["fingerprint"], _live_seq(meta), current)
            if base_seq is None:
                raise RecsightError(
                    f"the model was trained on other data (fingerprint {meta['fingerprint']}, "
                    f"database has {current}): run `python cli.py train` again"
                )
            log.info("model %s predates compactions of the shop (its snapshot held segments through %d): "
                     "the events folded since serve as live events", name, base_seq)
    return Artifact(folder, meta, base_seq)


def _live_seq(meta: dict) -> int | None:
    """The folded sequence number recorded at training; None for versions written before it."""
    value = meta.get("live_seq")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
