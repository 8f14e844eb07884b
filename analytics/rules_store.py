"""Rule sets on disk, beside the shop: every save a new, immutable, numbered version.

The folder is ``<db>.rules/`` (``shop.duckdb`` -> ``shop.duckdb.rules``, as the live segment is
``<db>.live/``): the rules belong to the shop, whichever models serve it, and the shop file itself
is read-only for the app. It holds ``v000001.json``, ``v000002.json``, ... (the whole set, with
who saved it, when and why) and ``CURRENT``, the number of the version in force.

* **Immutable versions**: a save writes the next number, never over an existing file, so an
  experiment (phase 2) can name "rule set v3" and always get the same rules; going back is a new
  version with an old version's rules (:func:`save_rules` with them).
* **Atomic**: each file is written to a temporary name, fsynced and renamed (:mod:`atomic`); the
  version file first, then ``CURRENT``. Killed between the two, the new version is an orphan that
  nobody reads (``CURRENT`` still names the old one) and the next save numbers past it.
* **One writer at a time**: saves from every process take an ``fcntl`` lock on ``.lock`` in the
  folder; ``expected`` refuses a save built on a version that is no longer current (two
  merchandisers editing at once: the second reloads instead of silently dropping the first's rule).
* **Validated**: nothing invalid is saved (:func:`analytics.rule_set.check`: one line per problem).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import atomic
from analytics.rule_set import Rule, RuleSet, check
from errors import RecsightError

__all__ = ["RULES_SUFFIX", "CURRENT", "VersionInfo", "rules_folder", "current_version", "current_stamp",
           "load_rules", "versions", "save_rules", "version_path"]

log = logging.getLogger(__name__)

RULES_SUFFIX = ".rules"
CURRENT = "CURRENT"
_LOCK = ".lock"
_VERSION = re.compile(r"v([0-9]{6,9})\.json")
_LOCK_WAIT_S, _LOCK_POLL_S = 5.0, 0.05
MAX_COMMENT = 300


@dataclass(frozen=True)
class VersionInfo:
    """One saved version, as the history lists it."""

    version: int
    author: str | None
    saved_at: datetime | None
    comment: str
    n_rules: int
    current: bool


def rules_folder(db_path: Path | str) -> Path:
    """``shop.duckdb`` -> ``shop.duckdb.rules`` (created by the first save)."""
    path = Path(db_path)
    return path.with_name(path.name + RULES_SUFFIX)


def version_path(folder: Path, version: int) -> Path:
    return Path(folder) / f"v{version:06d}.json"


def current_version(folder: Path | str) -> int:
    """The version in force; 0 when nothing was saved yet."""
    path = Path(folder) / CURRENT
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise RecsightError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise RecsightError(f"{path} does not hold a version number: restore it or save the rules again")
    return int(text)


def current_stamp(folder: Path | str) -> tuple[int, int, int] | None:
    """What identifies the pointer file's state (inode, mtime, size), for caches: one ``stat``.
    None when nothing was saved."""
    try:
        st = (Path(folder) / CURRENT).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def load_rules(folder: Path | str, version: int | None = None) -> RuleSet:
    """The rule set of ``version`` (the current one when None; an empty set, version 0, when nothing
    was saved). A version that does not exist or does not read is a :class:`RecsightError`."""
    folder = Path(folder)
    number = current_version(folder) if version is None else version
    if number == 0:
        return RuleSet()
    if number < 0:
        raise RecsightError(f"rule-set versions are numbered from 1, not {number}")
    path = version_path(folder, number)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecsightError(f"there is no rule set v{number} in {folder}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecsightError(f"rule set v{number} in {folder} is unreadable ({_first_line(exc)})") from None
    rules = RuleSet.from_dict(data)
    if rules.version != number:
        raise RecsightError(f"{path.name} says it is version {rules.version}, not {number}")
    return rules


def versions(folder: Path | str) -> list[VersionInfo]:
    """Every saved version up to the current one, newest first (orphans of an interrupted save
    are left out)."""
    folder = Path(folder)
    current = current_version(folder)
    if current == 0:
        return []
    out = []
    for number in sorted(_numbers(folder), reverse=True):
        if number > current:
            continue
        try:
            rules = load_rules(folder, number)
        except RecsightError as exc:
            log.warning("rule-set history: %s", exc)
            continue
        out.append(VersionInfo(number, rules.author, rules.saved_at, rules.comment, len(rules), number == current))
    return out


def save_rules(folder: Path | str, rules: Sequence[Rule], author: str, comment: str = "", *,
               expected: int | None = None, before_commit: Callable[[int], None] | None = None,
               clock: datetime | None = None) -> RuleSet:
    """Validate ``rules`` and save them as the next version, which becomes current; return it.

    ``expected``: the version the caller's edit started from; when another save made a newer
    one current meanwhile, nothing is written (a :class:`RecsightError` saying to reload).
    ``before_commit(number)`` runs under the lock once the number is known and before anything is
    written (the page's audit row: if it raises, nothing is saved).
    """
    check(rules)
    if not author.strip():
        raise RecsightError("a rule set is saved by someone: the author is missing")
    comment = comment.strip()[:MAX_COMMENT]
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecsightError(f"cannot create the rules folder {folder}: {exc.strerror or exc}") from None
    with _locked(folder):
        current = current_version(folder)
        if expected is not None and expected != current:
            raise RecsightError(f"the rules changed since you opened them (now v{current}): "
                                "reload the page and make your change again")
        number = max([current, *_numbers(folder)]) + 1  # past any orphan of an interrupted save
        saved = RuleSet(tuple(rules), number, author, clock or _utc_now(), comment)
        if before_commit is not None:
            before_commit(number)
        try:
            target = version_path(folder, number)
            if target.exists():  # cannot happen under the lock, but a version is never overwritten
                raise RecsightError(f"rule set v{number} already exists in {folder}")
            atomic.write_text(target, json.dumps(saved.to_dict(), indent=1, ensure_ascii=False), private=False)
            atomic.write_text(folder / CURRENT, f"{number}\n", private=False)
        except OSError as exc:
            raise RecsightError(f"cannot save the rules in {folder}: {exc.strerror or exc}") from None
    log.info("rule set v%d saved by %s (%d rules)", number, author, len(rules))
    return saved


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """The folder's writer lock (every process), waited for up to :data:`_LOCK_WAIT_S` seconds."""
    fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RecsightError("another save of the rules is in progress: try again") from None
                time.sleep(_LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # releases the lock


def _numbers(folder: Path) -> list[int]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [int(m.group(1)) for m in map(_VERSION.fullmatch, names) if m]


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
