"""The audit log: who did what, when, to which (pseudonymous) customer.

It lives in a DuckDB file of its own (``settings.audit_db``, ``RECSIGHT_AUDIT_DB``) because the
shop's database is read-only for the app. This module is the only code that touches it, and it
offers exactly two kinds of operation: append a row (:func:`record`) and read rows
(:func:`read_entries`, :func:`filter_choices`). Nothing here updates or deletes, so the app can
only ever add to the log.

Opening and closing the file is most of an append's cost (about 14 ms to open and 10 ms to
close, measured; the insert itself is about 1 ms), so a connection, once open, serves the
appends and reads of the next :data:`_HOLD_S` seconds and is then closed: nothing holds the file
for longer than that, so another process (the command line) that finds it locked waits briefly,
retries and gets it. Appends from concurrent requests also share one transaction (group
commit): the thread that finds no write in progress writes every row queued by then, and the
rows queued meanwhile, while the others wait for their own row to be committed; ``record``
returns only once its row is committed, or raises. The table is created only when an insert
finds it missing (a new or emptied file), not before every row.

The file is its owner's only (mode 0600, its write-ahead log too): it names who looked whom up.

Callers pass pseudonyms only: a ``customer`` that is not a pseudonym (``c_`` and 20 hex digits)
is refused, so a raw customer id can never land in the log by mistake. Free text (the typed
name of a failed sign-in, the detail) is cut to a fixed length and stripped of control
characters, since it may come from an attacker.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

import atomic
from analytics.privacy import PSEUDONYM_LENGTH
from errors import RecsightError

__all__ = [
    "AUDIT_LOG", "SEQ", "AT_UTC", "WHO", "ROLE", "ACTION", "CUSTOMER", "DETAIL",
    "SIGN_IN", "SIGN_IN_FAILED", "SIGN_OUT", "CUSTOMER_LOOKUP", "EXPLANATION_VIEW", "REPORT_EXPORT", "ACCESS_DENIED",
    "THROTTLED", "SEARCH", "EXPERIMENT_CHANGE", "RULES_CHANGE", "ACTIONS",
    "AuditEntry", "record", "read_entries", "filter_choices", "release", "MAX_ENTRIES",
]

log = logging.getLogger(__name__)

AUDIT_LOG = "audit_log"
SEQ, AT_UTC, WHO, ROLE, ACTION, CUSTOMER, DETAIL = "seq", "at_utc", "who", "role", "action", "customer", "detail"

SIGN_IN = "sign_in"
SIGN_IN_FAILED = "sign_in_failed"
SIGN_OUT = "sign_out"
CUSTOMER_LOOKUP = "customer_lookup"
EXPLANATION_VIEW = "explanation_view"
REPORT_EXPORT = "report_export"
ACCESS_DENIED = "access_denied"  # a signed-in user was refused a page (403)
THROTTLED = "throttled"  # a burst was throttled (service.throttle): one row per burst, an alert for admins
SEARCH = "search"  # an anonymous search (a search as a customer is a customer lookup or explanation view)
EXPERIMENT_CHANGE = "experiment_change"  # an A/B experiment created, edited or stopped (the Experiments page)
RULES_CHANGE = "rules_change"  # a merchandising rule set saved: a rule added or removed (the Rules page)
ACTIONS: tuple[str, ...] = (SIGN_IN, SIGN_IN_FAILED, SIGN_OUT, CUSTOMER_LOOKUP, EXPLANATION_VIEW, REPORT_EXPORT,
                            ACCESS_DENIED, THROTTLED, SEARCH, EXPERIMENT_CHANGE, RULES_CHANGE)

MAX_ENTRIES = 5000  # one screen of the admin page; filters narrow it down
_MAX_WHO, _MAX_ROLE, _MAX_DETAIL = 64, 16, 500
_PSEUDONYM = re.compile(rf"c_[0-9a-f]{{{PSEUDONYM_LENGTH}}}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LOCK_WAIT_S, _LOCK_POLL_S = 3.0, 0.05
_SEQUENCE = f"{AUDIT_LOG}_{SEQ}"
_DDL = (
    f"CREATE SEQUENCE IF NOT EXISTS {_SEQUENCE}",
    f"""CREATE TABLE IF NOT EXISTS {AUDIT_LOG} (
        {SEQ} BIGINT PRIMARY KEY DEFAULT nextval('{_SEQUENCE}'),
        {AT_UTC} TIMESTAMP NOT NULL,
        {WHO} VARCHAR NOT NULL,
        {ROLE} VARCHAR,
        {ACTION} VARCHAR NOT NULL,
        {CUSTOMER} VARCHAR,
        {DETAIL} VARCHAR
    )""",
)
_COLUMNS = f"{SEQ}, {AT_UTC}, {WHO}, {ROLE}, {ACTION}, {CUSTOMER}, {DETAIL}"
_in_process = threading.Lock()  # one use of a connection at a time within the app's threads
_HOLD_S = 1.0  # an opened connection serves this long, then is closed (the file is free again)
_held: dict[Path, tuple[duckdb.DuckDBPyConnection, int]] = {}  # open connection and file inode, per log


@dataclass(frozen=True)
class AuditEntry:
    """One row of the log; ``at_utc`` is a naive datetime in UTC."""

    seq: int
    at_utc: datetime
    who: str
    role: str | None
    action: str
    customer: str | None
    detail: str | None


class _Pending:
    """One row waiting to be written, and what became of it."""

    __slots__ = ("row", "done", "seq", "error")

    def __init__(self, row: tuple) -> None:
        self.row = row
        self.done = threading.Event()
        self.seq: int | None = None
        self.error: RecsightError | None = None


_queue_lock = threading.Lock()
_queues: dict[Path, list[_Pending]] = {}  # rows waiting per log file
_writing: set[Path] = set()  # log files a thread is writing now


def record(audit_db: Path | str, who: str, role: str | None, action: str, customer: str | None = None,
           detail: str | None = None) -> AuditEntry:
    """Append one row and return it. Raises :class:`RecsightError` when the row cannot be
    written, so the caller can refuse the action rather than let it go unrecorded."""
    if action not in ACTIONS:
        raise RecsightError(f"unknown audit action {action!r}")
    if customer is not None and not _PSEUDONYM.fullmatch(customer):
        raise RecsightError("the audit log takes customer pseudonyms only, never raw customer ids")
    row = (datetime.now(UTC).replace(tzinfo=None), _clean(who, _MAX_WHO),
           None if role is None else _clean(role, _MAX_ROLE), action, customer,
           None if detail is None else _clean(detail, _MAX_DETAIL))
    path = Path(audit_db)
    key = path.absolute()
    mine = _Pending(row)
    with _queue_lock:
        _queues.setdefault(key, []).append(mine)
        leader = key not in _writing
        if leader:
            _writing.add(key)
    if leader:
        _write_queued(key, path)
    mine.done.wait()
    if mine.error is not None:
        raise mine.error
    return AuditEntry(int(mine.seq), *row)


def _write_queued(key: Path, path: Path) -> None:
    """Write batches of queued rows until none is left, then let the next writer lead."""
    while True:
        with _queue_lock:
            batch = _queues.pop(key, [])
            if not batch:
                _writing.discard(key)
                return
        try:
            seqs = _insert(path, [pending.row for pending in batch])
        except RecsightError as exc:
            for pending in batch:
                pending.error = exc
        except BaseException as exc:  # noqa: BLE001 - never leave a waiting request hanging
            for pending in batch:
                pending.error = RecsightError(f"the audit log {path} cannot be written: {type(exc).__name__}")
        else:
            for pending, seq in zip(batch, seqs):
                pending.seq = seq
        for pending in batch:
            pending.done.set()


def _insert(path: Path, rows: list[tuple]) -> list[int]:
    """Insert ``rows`` in one transaction of one connection; their sequence numbers, in order."""
    sql = (f"INSERT INTO {AUDIT_LOG} ({AT_UTC}, {WHO}, {ROLE}, {ACTION}, {CUSTOMER}, {DETAIL}) "
           f"VALUES (?, ?, ?, ?, ?, ?) RETURNING {SEQ}")
    # private_files: the write-ahead log DuckDB creates for this write holds the same rows
    with _in_process, atomic.private_files():
        con = _connection(path, create=True)
        _make_private(path)
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                seqs = [con.execute(sql, rows[0]).fetchone()[0]]
            except duckdb.CatalogException:  # a new file: create the table (the failed insert left nothing)
                con.execute("ROLLBACK")
                con.execute("BEGIN TRANSACTION")
                for statement in _DDL:
                    con.execute(statement)
                seqs = [con.execute(sql, rows[0]).fetchone()[0]]
            seqs += [con.execute(sql, row).fetchone()[0] for row in rows[1:]]
            con.execute("COMMIT")
        except duckdb.Error as exc:
            log.warning("cannot append to audit log %s: %s", path, exc)
            _close(path.absolute())  # a fresh connection for the next append
            raise RecsightError(f"the audit log {path} cannot be written: {str(exc).splitlines()[0]}") from None
    return [int(seq) for seq in seqs]


def read_entries(audit_db: Path | str, who: str | None = None, action: str | None = None,
                 start: date | None = None, end: date | None = None, limit: int = MAX_ENTRIES) -> list[AuditEntry]:
    """Rows newest first, filtered by user, action and UTC days ``start``..``end`` (inclusive);
    at most ``limit`` of them. No log yet means no rows."""
    clauses, params = [], []
    for column, value in ((WHO, who), (ACTION, action)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if start is not None:
        clauses.append(f"{AT_UTC} >= ?")
        params.append(datetime.combine(start, datetime.min.time()))
    if end is not None:
        clauses.append(f"{AT_UTC} < ?")
        params.append(datetime.combine(end + timedelta(days=1), datetime.min.time()))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = _select(audit_db, f"SELECT {_COLUMNS} FROM {AUDIT_LOG} {where} ORDER BY {SEQ} DESC LIMIT ?",
                   [*params, max(0, int(limit))])
    return [AuditEntry(*row) for row in rows]


def filter_choices(audit_db: Path | str) -> tuple[list[str], list[str]]:
    """The user names and the actions that occur in the log, sorted, for filter menus."""
    rows = _select(audit_db, f"SELECT DISTINCT {WHO}, {ACTION} FROM {AUDIT_LOG}", [])
    return sorted({who for who, _ in rows}), sorted({action for _, action in rows})


# --------------------------------------------------------------------------- helpers


def _clean(text: str, limit: int) -> str:
    return _CONTROL.sub(" ", str(text))[:limit]


def _make_private(path: Path) -> None:
    """Mode 0600 for the log (also a log created before this rule): it names who looked whom up."""
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError as exc:
        raise RecsightError(f"cannot make the audit log {path} private: {exc.strerror or exc}") from None


def _select(audit_db: Path | str, sql: str, params: list[object]) -> list[tuple]:
    path = Path(audit_db)
    if not path.exists():
        return []
    with _in_process:
        con = _connection(path, create=False)
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                             [AUDIT_LOG]).fetchone()[0]
        return con.execute(sql, params).fetchall() if exists else []


def _connection(path: Path, create: bool) -> duckdb.DuckDBPyConnection:
    """The log's open connection, opened now if none is (caller holds ``_in_process``); it is
    closed :data:`_HOLD_S` seconds after opening. A file replaced or removed meanwhile (a rotated
    log, a test's fresh folder) is opened anew, never written through the old handle."""
    key = path.absolute()
    held = _held.get(key)
    if held is not None:
        try:
            same = path.stat().st_ino == held[1]
        except OSError:
            same = False
        if same:
            return held[0]
        _close(key)
    con = _open(path, create)
    try:
        inode = path.stat().st_ino
    except OSError:
        con.close()
        raise RecsightError(f"the audit log {path} vanished while it was opened") from None
    _held[key] = (con, inode)
    timer = threading.Timer(_HOLD_S, _close_later, [key, con])
    timer.daemon = True
    timer.start()
    return con


def release(audit_db: Path | str) -> None:
    """Close this process's open connection to the log now, rather than when its hold ends, so
    another process or a read-only connection can open the file at once."""
    with _in_process:
        _close(Path(audit_db).absolute())


def _close_later(key: Path, con: duckdb.DuckDBPyConnection) -> None:
    """Close ``con`` (the timer of :func:`_connection`) unless it was replaced meanwhile."""
    with _in_process:
        if _held.get(key, (None,))[0] is con:
            _close(key)


@atexit.register
def _close_all() -> None:
    """Close the open connections on the way out (the last rows are checkpointed into the file)."""
    with _in_process:
        for key in list(_held):
            _close(key)


def _close(key: Path) -> None:
    """Close the held connection of ``key`` if any (caller holds ``_in_process``)."""
    held = _held.pop(key, None)
    if held is not None:
        try:
            held[0].close()
        except duckdb.Error as exc:
            log.warning("closing audit log %s: %s", key, exc)


def _open(path: Path, create: bool) -> duckdb.DuckDBPyConnection:
    """A connection to the log, waiting up to a few seconds while another process holds it."""
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecsightError(f"cannot create folder {path.parent} for the audit log: {exc.strerror}") from None
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                log.warning("audit log %s unavailable: %s", path, exc)
                raise RecsightError(f"the audit log {path} cannot be opened: {str(exc).splitlines()[0]}") from None
            time.sleep(_LOCK_POLL_S)
        except duckdb.Error as exc:
            log.warning("audit log %s unavailable: %s", path, exc)
            raise RecsightError(f"the audit log {path} cannot be opened: {str(exc).splitlines()[0]}") from None
