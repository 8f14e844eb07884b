"""The loaded recommender a server process shares between requests, reloaded when the data changes.

Loading a model version (boosters, the attention network, the serving tables) takes seconds, so
each worker process loads it once and keeps it. A finished training run swaps the models folder's
``CURRENT`` pointer and an ingest replaces the shop file; both change the *stamp* below, and the
next request loads the new state while requests already running finish on the old one. A broken
or missing model, or models trained on a shop file that has since changed, is reported as a
:class:`RecsightError` with one clear line on every request until a good version is current again;
quietly serving the previous version instead would hide from the operator that the models on
disk are unusable.

The pages and the JSON API both take their recommender from here (it was ``service/engine.py``,
but the pages sit beside the service, not above it), and name customers through
:func:`resolve_customer`, so both accept the same typed ids.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from analytics import customers
from errors import RecsightError
from models import registry
from models.serving import Recommender
from settings import Settings

__all__ = ["recommender_for", "forget_all", "resolve_customer"]

log = logging.getLogger(__name__)

_Stamp = tuple[int, int, int, str]

_lock = threading.Lock()
# (shop, models folder, pinned version or None for the current one) -> (stamp, recommender);
# pinned versions are an experiment's variants (workflows.variants), kept in load order.
_loaded: dict[tuple[Path, Path, str | None], tuple[_Stamp, Recommender]] = {}
_MAX_PINNED = 6  # pinned versions kept loaded besides the current ones (an experiment has at most 6 variants)


def _stamp(db_path: Path, models_dir: Path) -> _Stamp:
    """What identifies the on-disk state: the shop file's identity and the current model version
    (read through the registry, the only reader of the models folder's pointer)."""
    try:
        db = db_path.stat()
    except FileNotFoundError:
        raise RecsightError(f"no shop database at {db_path}: run `python cli.py ingest` first") from None
    current = registry.current(models_dir)  # an unreadable pointer is its own RecsightError
    if current is None:
        raise RecsightError(f"no trained model in {models_dir}: run `python cli.py train` first")
    return db.st_ino, db.st_mtime_ns, db.st_size, current


def recommender_for(settings: Settings, version: str | None = None) -> Recommender:
    """The recommender for ``settings``' shop and models, loading or reloading it when needed.

    ``version``: a published model version to serve instead of the current one (an experiment's
    variant); None, or the current version's own name, is the current recommender. A pinned
    version is reloaded when the shop file changes, not when the current version does.
    """
    db, models = Path(settings.db_path).resolve(), Path(settings.models_dir).resolve()
    stamp = _stamp(db, models)
    pinned = None if version is None or version == stamp[-1] else version
    key = (db, models, pinned)
    if pinned is not None:
        stamp = (*stamp[:3], pinned)
    evicted: list[Recommender] = []
    with _lock:
        cached = _loaded.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        log.info("loading model version %s for %s", stamp[-1], db)
        recommender = Recommender.load(db, models, pinned).warm()  # the first explanation should not pay for it
        _loaded.pop(key, None)
        _loaded[key] = (stamp, recommender)
        if pinned is not None:
            extra = [k for k in _loaded if k[2] is not None]
            evicted = [_loaded.pop(k)[1] for k in extra[:max(0, len(extra) - _MAX_PINNED)]]
    # The replaced recommender is not closed here: a request may still be using it; its
    # connection closes when the last reference goes (its background thread stops now).
    for old in ([cached[1]] if cached is not None else []) + evicted:
        old.retire()
    return recommender


def forget_all() -> None:
    """Drop every loaded recommender (tests, and a server that is shutting down)."""
    with _lock:
        for _, recommender in _loaded.values():
            recommender.close()
        _loaded.clear()


def resolve_customer(recommender: Recommender, typed: object, secret: str) -> str:
    """The pseudonym of the customer ``typed`` names (a shop id hashed with ``secret``, or a
    pseudonym), checked against the recommender's shop; a RecsightError when nobody matches.

    A customer the recommender knows from memory (:meth:`Recommender.listed`) is answered without
    the store; the rest are read under the recommender's lock (its connection is shared by the
    process's requests, and each lookup taking it made every request queue behind the others).
    """
    for candidate in customers.candidate_pseudonyms(typed, secret):
        if recommender.listed(candidate):
            return candidate
    with recommender.connection() as con:
        return customers.resolve_customer(con, typed, secret)
