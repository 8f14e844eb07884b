"""The server's compaction timer: folds the live segment into the shop file every few minutes.

With a live intake the segment grows by one file per acknowledged batch, and every reader pays
for reading the files above the snapshot; a server therefore compacts on its own, every
``RECSIGHT_COMPACT_MINUTES`` (0: never; ``cli.py compact`` still works). It calls the same use
case as ``cli.py compact`` (:func:`workflows.intake.compact`), whose lock serialises it with a
manual run and whose copy-and-rename keeps readers and appends going meanwhile; the loaded
recommender keeps serving through it (the model is recognised through the shop's lineage:
:mod:`analytics.fingerprint`) and the process's recommender cache reloads on the next request.

One thread per shop file per process (:func:`start`), a daemon, so it never holds up an exit. A
failed compaction is logged and retried at the next tick: the shop file and the segment are
unchanged by a failure, and serving must not stop because of one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from analytics.live_compact import CompactResult
from analytics.live_segments import list_segments, live_folder
from errors import RecsightError
from workflows.intake import compact

__all__ = ["compact_once", "start", "stop"]

log = logging.getLogger(__name__)

_started: dict[Path, tuple[threading.Thread, threading.Event]] = {}
_lock = threading.Lock()


def compact_once(db_path: Path | str) -> CompactResult | None:
    """One tick: fold the live segment when it holds at least one file; None when there was
    nothing to fold or the compaction failed (logged, never raised)."""
    db_path = Path(db_path)
    folder = live_folder(db_path)
    try:
        if not folder.is_dir() or not list_segments(folder):
            return None
        result = compact(db_path)
    except (RecsightError, OSError) as exc:
        log.warning("scheduled compaction of %s failed (retried at the next tick): %s", db_path, exc)
        return None
    except Exception:  # a bug must not stop the server's timer: log it whole
        log.exception("scheduled compaction of %s failed (retried at the next tick)", db_path)
        return None
    log.info("scheduled %s", result.render(db_path))
    return result


def start(db_path: Path | str, minutes: float, after: Callable[[], object] | None = None) -> threading.Thread | None:
    """Start the timer for ``db_path`` (once per process and shop file; ``minutes`` <= 0: none).

    ``after`` runs in the timer's thread after each compaction that folded something: the server
    loads the recommender of the new shop file there, so no request waits seconds for it.
    """
    if minutes <= 0:
        return None
    key = Path(db_path).resolve()
    with _lock:
        running = _started.get(key)
        if running is not None and running[0].is_alive():
            return running[0]
        stop = threading.Event()
        thread = threading.Thread(target=_loop, args=(key, minutes * 60.0, stop, after),
                                  name=f"compactor-{key.name}", daemon=True)
        _started[key] = (thread, stop)
        thread.start()
    log.info("compacting the live segment of %s every %g minute(s)", key, minutes)
    return thread


def stop(db_path: Path | str) -> None:
    """Stop the timer of ``db_path`` after its current tick (a server never does; tests do)."""
    with _lock:
        running = _started.pop(Path(db_path).resolve(), None)
    if running is not None:
        running[1].set()
        running[0].join(timeout=60)


def _loop(db_path: Path, interval_s: float, stop: threading.Event, after: Callable[[], object] | None) -> None:
    """Sleep ``interval_s``, compact, run ``after`` when something was folded, repeat until ``stop``
    (a server never sets it: the thread is a daemon and ends with the process)."""
    while not stop.wait(interval_s):
        if compact_once(db_path) is not None and after is not None:
            try:
                after()
            except Exception:  # the next request reports a broken model; the timer goes on
                log.exception("after compacting %s: loading the new state failed", db_path)
