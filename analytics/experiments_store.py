"""A/B experiment definitions beside the shop, every change kept as a new immutable version.

An experiment compares two or more *variants* of what a customer is served: a model version
(None: whichever version is current) and a merchandising rule-set version (None: the current
rules; only the name is kept here, :mod:`analytics.rules_store` owns the rule sets). Each variant
takes a share of the customers (:mod:`models.assignment` turns a pseudonym into a variant); the
first variant is the control the others are compared with. The experiment runs from ``start`` to
``stop`` (UTC; no stop: until someone stops it), and its status follows from the clock: *draft*
before the start, *running* between, *stopped* after the stop.

Why versions: an analysis is only as good as the record of what ran when, and who changed it.
So ``<db>.experiments/`` (beside the shop, like ``<db>.live/``) holds one JSON file per change,
``<id>.v0001.json``, ``<id>.v0002.json``..., written under the folder's writer lock with
:mod:`atomic` and never rewritten; each names its author, time and kind of change.

What may change when (:func:`save`): a draft, anything but its id; a running experiment, only
its name, hypothesis and stop (its variants, shares, metric and start are what customers are
being assigned by: stop it and start another instead); a stopped experiment, nothing.

**One running experiment at a time.** Two experiments running at once would each assign every
customer, so a customer's list could not follow both variants, and neither analysis would be
clean. Rather than split customers between experiments (layers), this store refuses an
experiment whose window ``[start, stop)`` overlaps another's; an experiment without a stop
blocks every later start until it is stopped. The time windows are what is compared, so a draft
scheduled for next week is checked too.

Bad input is one :class:`~errors.RecsightError` line: fewer than two variants, repeated variant
names, shares that are not positive or do not add up to 1, a stop before the start, an unknown
metric, an unknown model version (when the caller passes the known ones: this layer does not
read the models folder) or rule-set version, an id that is not a slug.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import atomic
from analytics.live_segments import writer_lock
from errors import RecsightError

__all__ = [
    "METRICS", "DRAFT", "RUNNING", "STOPPED", "CREATED", "EDITED", "STOPPING", "MAX_VARIANTS",
    "Variant", "Experiment", "experiments_folder", "validate", "save", "check", "stop", "check_stop",
    "load_all", "get", "history", "running", "status_of",
]

log = logging.getLogger(__name__)

METRICS = ("click_through", "conversion", "revenue_per_mille")  # keys of analytics.experiment_stats.METRICS
DRAFT, RUNNING, STOPPED = "draft", "running", "stopped"
CREATED, EDITED, STOPPING = "created", "edited", "stopped"  # what a version changed
MAX_VARIANTS = 6
FORMAT = 1
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_VARIANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,31}")
_FILE = re.compile(r"([a-z0-9][a-z0-9-]{0,39})\.v([0-9]{4,})\.json")
_MAX_NAME, _MAX_HYPOTHESIS, _MAX_LABEL, _MAX_AUTHOR = 80, 2000, 64, 64
_SHARE_TOLERANCE = 1e-6
_PAST_SLACK = timedelta(minutes=5)  # a start or stop typed "now" on a page arrives a moment late
_LOCK_WAIT_S = 5.0


@dataclass(frozen=True)
class Variant:
    """One arm: its name, its share of customers (a fraction), and what serves it (None: current)."""

    name: str
    share: float
    model_version: str | None = None
    rules_version: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "share": self.share, "model_version": self.model_version,
                "rules_version": self.rules_version}


@dataclass(frozen=True)
class Experiment:
    """One version of an experiment. Times are naive UTC. ``author``, ``created``, ``version``,
    ``changed`` and ``change`` are filled by :func:`save` (what a caller passes there is ignored)."""

    id: str
    name: str
    hypothesis: str
    metric: str
    variants: tuple[Variant, ...]
    start: datetime
    stop: datetime | None = None
    author: str = ""
    created: datetime | None = None
    version: int = 0
    changed: datetime | None = None
    change: str = ""

    @property
    def control(self) -> Variant:
        """The first variant: the others are compared with it."""
        return self.variants[0]

    def status(self, now: datetime | None = None) -> str:
        """draft, running or stopped at ``now`` (default: the clock), from the start and stop."""
        return status_of(self.start, self.stop, _utc(now) if now is not None else _utc_now())

    def variant(self, name: str) -> Variant:
        """The variant called ``name``; a one-line error when there is none."""
        for v in self.variants:
            if v.name == name:
                return v
        raise RecsightError(f"experiment {self.id} has no variant {name[:40]!r}")

    def to_dict(self) -> dict[str, object]:
        """The stored form (and the page's): times as ISO 8601 text, UTC."""
        return {"format": FORMAT, "id": self.id, "name": self.name, "hypothesis": self.hypothesis,
                "metric": self.metric, "variants": [v.to_dict() for v in self.variants],
                "start": _iso(self.start), "stop": _iso(self.stop), "author": self.author,
                "created": _iso(self.created), "version": self.version, "changed": _iso(self.changed),
                "change": self.change}

    @classmethod
    def from_dict(cls, data: dict) -> Experiment:
        """The inverse of :meth:`to_dict`; a KeyError, TypeError or ValueError on a malformed one."""
        variants = tuple(Variant(str(v["name"]), float(v["share"]), v.get("model_version"), v.get("rules_version"))
                         for v in data["variants"])
        return cls(str(data["id"]), str(data["name"]), str(data["hypothesis"]), str(data["metric"]), variants,
                   _parse(data["start"]), _parse(data.get("stop")), str(data.get("author", "")),
                   _parse(data.get("created")), int(data.get("version", 0)), _parse(data.get("changed")),
                   str(data.get("change", "")))


def status_of(start: datetime, stop: datetime | None, now: datetime) -> str:
    """The status of a window ``[start, stop)`` at ``now`` (all naive UTC)."""
    if stop is not None and stop <= now:
        return STOPPED
    return RUNNING if start <= now else DRAFT


def experiments_folder(db_path: Path | str) -> Path:
    """``shop.duckdb`` -> ``shop.duckdb.experiments`` (beside the shop, like its live segment)."""
    path = Path(db_path)
    return path.with_name(path.name + ".experiments")


# --------------------------------------------------------------------------- validation


def validate(experiment: Experiment, *, known_models: Collection[str] | None = None,
             known_rules: Collection[str] | None = None) -> Experiment:
    """``experiment`` with its times in naive UTC and its text trimmed, or one RecsightError line
    for the first problem. ``known_models`` / ``known_rules``: the versions a variant may name
    (None: not checked, for callers that cannot list them)."""
    e = replace(experiment, name=str(experiment.name).strip(), hypothesis=str(experiment.hypothesis).strip(),
                start=_utc(experiment.start), stop=None if experiment.stop is None else _utc(experiment.stop))
    if not isinstance(e.id, str) or not _ID.fullmatch(e.id):
        raise RecsightError("an experiment id is 1 to 40 lower-case letters, digits or hyphens, "
                            "starting with a letter or digit (e.g. ranker-vs-hybrid)")
    _text(e.name, "the experiment's name", _MAX_NAME)
    _text(e.hypothesis, "the hypothesis", _MAX_HYPOTHESIS, multiline=True)
    if e.metric not in METRICS:
        raise RecsightError(f"unknown primary metric {str(e.metric)[:40]!r}: use one of {', '.join(METRICS)}")
    _check_variants(e.variants, known_models, known_rules)
    if e.stop is not None and e.stop < e.start:
        raise RecsightError("the stop is before the start: an experiment stops after it starts")
    return replace(e, variants=tuple(replace(v, name=v.name.strip()) for v in e.variants))


def _check_variants(variants: tuple[Variant, ...], known_models: Collection[str] | None,
                    known_rules: Collection[str] | None) -> None:
    if len(variants) < 2:
        raise RecsightError("an experiment needs at least two variants: a control and one to compare with it")
    if len(variants) > MAX_VARIANTS:
        raise RecsightError(f"at most {MAX_VARIANTS} variants: each needs enough customers to be read")
    names = [str(v.name).strip() for v in variants]
    for name in names:
        if not _VARIANT.fullmatch(name):
            raise RecsightError("a variant name is 1 to 32 letters, digits, spaces or _ . - "
                                "(starting with a letter or digit)")
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise RecsightError(f"variant names must differ: {', '.join(repeated)} is given twice")
    shares = [v.share for v in variants]
    if any(not isinstance(s, int | float) or isinstance(s, bool) or not math.isfinite(s) or s <= 0 for s in shares):
        raise RecsightError("every variant's share must be a fraction above 0 (e.g. 0.5 for half the customers)")
    if abs(sum(shares) - 1) > _SHARE_TOLERANCE:
        raise RecsightError(f"the variants' shares add up to {sum(shares):.4g}, not 1 (100 %)")
    for v in variants:
        for label, value, known, what in (("model version", v.model_version, known_models, "the models folder"),
                                          ("rule-set version", v.rules_version, known_rules, "the rule sets")):
            if value is None:
                continue
            if not isinstance(value, str) or not value or len(value) > _MAX_LABEL or not value.isprintable() \
                    or "/" in value:
                raise RecsightError(f"variant {v.name}: the {label} is not a version name")
            if known is not None and value not in known:
                raise RecsightError(f"variant {v.name}: {label} {value!r} is not in {what}")


def _text(value: object, what: str, limit: int, multiline: bool = False) -> None:
    if not isinstance(value, str) or not value:
        raise RecsightError(f"{what} is missing")
    if len(value) > limit:
        raise RecsightError(f"{what} is longer than {limit} characters")
    allowed = value.replace("\n", "").replace("\r", "").replace("\t", " ") if multiline else value
    if not allowed.isprintable():
        raise RecsightError(f"{what} holds control characters")


# --------------------------------------------------------------------------- writing


_write_lock = threading.Lock()  # one writer per process; the folder lock orders processes


def save(db_path: Path | str, experiment: Experiment, author: str, *, now: datetime | None = None,
         known_models: Collection[str] | None = None, known_rules: Collection[str] | None = None) -> Experiment:
    """Create the experiment, or write a new version of it; returns the version written.

    The rules of the module docstring apply: what may change at the experiment's status, and
    one experiment at a time (no overlapping windows). ``now``: the clock (tests pass one).
    """
    now = _utc(now) if now is not None else _utc_now()
    e = validate(experiment, known_models=known_models, known_rules=known_rules)
    folder = experiments_folder(db_path)
    with _write_lock, writer_lock(folder, _LOCK_WAIT_S):
        written = _next_version(_versions(folder), e, _author(author), now)
        _write(folder, written)
    log.info("experiment %s version %d (%s) written by %s", written.id, written.version, written.change, author)
    return written


def check(db_path: Path | str, experiment: Experiment, author: str, *, now: datetime | None = None,
          known_models: Collection[str] | None = None, known_rules: Collection[str] | None = None) -> Experiment:
    """The version :func:`save` would write now, without writing it (a caller that must record
    the change elsewhere first, such as the audit log, checks it here); the same errors."""
    now = _utc(now) if now is not None else _utc_now()
    e = validate(experiment, known_models=known_models, known_rules=known_rules)
    return _next_version(_versions(experiments_folder(db_path)), e, _author(author), now)


def _next_version(versions: dict[str, list[Experiment]], e: Experiment, author: str, now: datetime) -> Experiment:
    previous = _latest(versions.get(e.id, []))
    if previous is None:
        _check_new(e, now)
        written = replace(e, author=author, created=now, version=1, changed=now, change=CREATED)
    else:
        change = _check_change(previous, e, now)
        written = replace(e, author=author, created=previous.created, version=previous.version + 1,
                          changed=now, change=change)
    _check_overlap(written, [_latest(v) for k, v in versions.items() if k != e.id])
    return written


def stop(db_path: Path | str, experiment_id: str, author: str, *, now: datetime | None = None) -> Experiment:
    """Stop a running experiment now, or cancel a draft (its window becomes empty): a new version."""
    now = _utc(now) if now is not None else _utc_now()
    folder = experiments_folder(db_path)
    with _write_lock, writer_lock(folder, _LOCK_WAIT_S):
        written = _stopped(get(db_path, experiment_id), _author(author), now)
        _write(folder, written)
    log.info("experiment %s stopped by %s (version %d)", written.id, author, written.version)
    return written


def check_stop(db_path: Path | str, experiment_id: str, author: str, *, now: datetime | None = None) -> Experiment:
    """The version :func:`stop` would write now, without writing it."""
    now = _utc(now) if now is not None else _utc_now()
    return _stopped(get(db_path, experiment_id), _author(author), now)


def _stopped(current: Experiment, author: str, now: datetime) -> Experiment:
    status = current.status(now)
    if status == STOPPED:
        raise RecsightError(f"experiment {current.id} has already stopped")
    return replace(current, stop=now if status == RUNNING else current.start, author=author,
                   version=current.version + 1, changed=now, change=STOPPING)


def _author(author: str) -> str:
    author = str(author or "").strip()
    if not author or len(author) > _MAX_AUTHOR or not author.isprintable():
        raise RecsightError("an experiment change needs its author's name")
    return author


def _check_new(e: Experiment, now: datetime) -> None:
    if e.start < now - _PAST_SLACK:
        raise RecsightError("the start is in the past: a new experiment starts now or later")
    if e.stop is not None and e.stop <= e.start:
        raise RecsightError("the stop must be after the start")


def _check_change(previous: Experiment, e: Experiment, now: datetime) -> str:
    """What kind of change ``e`` is to ``previous``, or one line why it may not be made now."""
    status = previous.status(now)
    if status == STOPPED:
        raise RecsightError(f"experiment {e.id} has stopped: it is kept as it ran (start a new one instead)")
    if status == RUNNING:
        frozen = (e.metric, e.variants, e.start) != (previous.metric, previous.variants, previous.start)
        if frozen:
            raise RecsightError(f"experiment {e.id} is running: its variants, shares, metric and start cannot "
                                "change (stop it and start a new one)")
        if e.stop is not None and e.stop < now - _PAST_SLACK:
            raise RecsightError("the stop is in the past: stop the experiment now instead")
        return STOPPING if e.stop is not None and e.stop <= now else EDITED
    _check_new(e, now)
    return EDITED


def _check_overlap(e: Experiment, others: Iterable[Experiment | None]) -> None:
    """One experiment at a time: refuse a window that overlaps another experiment's."""
    end = e.stop or datetime.max
    if end <= e.start:
        return  # an empty window (a cancelled draft) runs nothing
    for other in others:
        if other is None:
            continue
        other_end = other.stop or datetime.max
        if other.start < end and e.start < other_end and other.start < other_end:
            until = f"until {_iso(other.stop)}" if other.stop else "with no stop set"
            raise RecsightError(f"experiment {other.id} runs from {_iso(other.start)} {until}: only one "
                                "experiment may run at a time, so start after it stops (or stop it first)")


def _write(folder: Path, e: Experiment) -> None:
    path = folder / f"{e.id}.v{e.version:04d}.json"
    if path.exists():  # the lock makes this impossible short of a hand-made file; never overwrite
        raise RecsightError(f"{path.name} already exists in {folder}: the experiment's history was changed by hand")
    try:
        atomic.write_text(path, json.dumps(e.to_dict(), indent=2, ensure_ascii=False) + "\n")
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)  # the new name, durable
        finally:
            os.close(fd)
    except OSError as exc:
        raise RecsightError(f"cannot write the experiment into {folder}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- reading


_cache: dict[Path, tuple[tuple[int, int, int], Experiment]] = {}
_cache_lock = threading.Lock()


def _versions(folder: Path) -> dict[str, list[Experiment]]:
    """Every stored version, per experiment id, oldest first. Files are immutable, so each is
    parsed once per process (keyed by its inode, time and size)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RecsightError(f"cannot read the experiments in {folder}: {exc.strerror or exc}") from None
    found: dict[str, list[Experiment]] = {}
    for entry in entries:
        match = _FILE.fullmatch(entry.name)
        if match is None:
            continue
        found.setdefault(match.group(1), []).append(_read(Path(entry.path), entry.stat(), match))
    for versions in found.values():
        versions.sort(key=lambda e: e.version)
    return found


def _read(path: Path, st: os.stat_result, match: re.Match[str]) -> Experiment:
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    with _cache_lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    try:
        e = Experiment.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise RecsightError(f"experiment file {path} is unreadable or corrupt: restore it from a backup") from None
    if e.id != match.group(1) or e.version != int(match.group(2)):
        raise RecsightError(f"experiment file {path} does not hold the version its name says")
    with _cache_lock:
        _cache[path] = (stamp, e)
    return e


def _latest(versions: list[Experiment]) -> Experiment | None:
    return versions[-1] if versions else None


def load_all(db_path: Path | str) -> list[Experiment]:
    """The newest version of every experiment, newest start first."""
    latest = [v[-1] for v in _versions(experiments_folder(db_path)).values()]
    return sorted(latest, key=lambda e: (e.start, e.id), reverse=True)


def get(db_path: Path | str, experiment_id: str) -> Experiment:
    """The newest version of one experiment; a one-line error when there is none."""
    return history(db_path, experiment_id)[-1]


def history(db_path: Path | str, experiment_id: str) -> list[Experiment]:
    """Every version of one experiment, oldest first: who changed what, when."""
    if not isinstance(experiment_id, str) or not _ID.fullmatch(experiment_id):
        raise RecsightError("no such experiment")
    versions = _versions(experiments_folder(db_path)).get(experiment_id)
    if not versions:
        raise RecsightError(f"no experiment {experiment_id!r} in {experiments_folder(db_path)}")
    return versions


def running(db_path: Path | str, now: datetime | None = None) -> Experiment | None:
    """The experiment running at ``now`` (default: the clock), or None. Read on every request
    that serves a customer, so it costs one directory listing while the files are unchanged."""
    now = _utc(now) if now is not None else _utc_now()
    live = [e for e in load_all(db_path) if e.status(now) == RUNNING]
    if len(live) > 1:  # only hand-made files can do this: the earliest start wins, said in the log
        log.warning("%d experiments run at once (%s): serving %s", len(live), ", ".join(e.id for e in live),
                    min(live, key=lambda e: e.start).id)
    return min(live, key=lambda e: e.start) if live else None


# --------------------------------------------------------------------------- time


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _utc(value: datetime) -> datetime:
    """Naive UTC to the second (what is stored): an aware time converted, a naive one taken as UTC."""
    if not isinstance(value, datetime):
        raise RecsightError("an experiment's start and stop are times (UTC)")
    value = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
    return value.replace(microsecond=0)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def _parse(text: object) -> datetime | None:
    if text is None:
        return None
    return _utc(datetime.fromisoformat(str(text).replace("Z", "+00:00")))
