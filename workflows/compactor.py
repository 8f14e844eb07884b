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
from pathlib import Path

from analytics.live_compact import CompactResult
from analytics.live_segments import list_segments, live_folder
from errors import RecsightError
from workflows.intake import compact

__all__ = ["compact_once", "start"]

log = logging.getLogger(__name__)

_started: dict[Path, threading.Thread] = {}
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


def start(db_path: Path | str, minutes: float) -> threading.Thread | None:
    """Start the timer for ``db_path`` (once per process and shop file; ``minutes`` <= 0: none)."""
    if minutes <= 0:
        return None
    key = Path(db_path).resolve()
    with _lock:
        running = _started.get(key)
        if running is not None and running.is_alive():
            return running
        stop = threading.Event()
        thread = threading.Thread(target=_loop, args=(key, minutes * 60.0, stop), name=f"compactor-{key.name}",
                                  daemon=True)
        _started[key] = thread
        thread.start()
    log.info("compacting the live segment of %s every %g minute(s)", key, minutes)
    return thread


def _loop(db_path: Path, interval_s: float, stop: threading.Event) -> None:
    """Sleep ``interval_s``, compact, repeat (``stop`` is never set by the server: the thread is a
    daemon and ends with the process)."""
    while not stop.wait(interval_s):
        compact_once(db_path)
