"""Progress of the long commands: the library says which phase it is in and how far it got, the
interface decides how that looks.

``cli.py train`` runs for half an hour on a large shop; without a word on stderr nobody can tell a
slow phase from a hung one. So the long library functions (the ingest, training, the attention
network's epochs, the precomputed lists, the evaluation) take a ``progress`` argument and call
``progress.phase(name, total=None, unit="")`` when a phase starts and ``progress.advance(n)`` as its
units (batches, customers, files) are done. It defaults to :data:`SILENT`, so library callers
and tests stay quiet and nothing global is needed: the command line passes its reporter down
explicitly through the use cases of workflows/.

:class:`TerminalProgress` is the one place that renders, for ``cli.py`` and the benchmarks:

* stderr a terminal: one redrawn bar line per phase (count, percentage, elapsed, time left),
  left on screen as ``phase: done in ...`` when the next phase starts;
* otherwise (CI logs, files): plain time-stamped lines, a line per finished phase and a status
  line per ``interval`` seconds of a running one. Like git's delayed progress, nothing is
  written in the first ``delay`` seconds: a command that finishes or fails in them prints only
  what it always printed (its summary on stdout, or its one ``error:`` line that scripts and
  tests read); once the command takes longer, the lines held back are written and the rest
  follow as they happen.

Never both: the mode is chosen once, per stream. A time left is shown once a few units of a
counted phase are done, from that phase's own rate so far.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TextIO

__all__ = ["LINE_DELAY_S", "LINE_INTERVAL_S", "SILENT", "Progress", "TerminalProgress", "duration"]

LINE_DELAY_S = 10.0  # plain-line mode: quiet this long (a quick command's stderr stays as it was)
LINE_INTERVAL_S = 30.0  # plain-line mode: a running phase's status line at most this often
_REDRAW_S = 0.1  # bar mode: redraw at most this often on advance()
_TICK_S = 0.5  # the background redraw/heartbeat period (elapsed time moves while a phase blocks)
_BAR_WIDTH = 20
_SPINNER = "|/-\\"


class Progress(Protocol):
    """What long library code reports: phases, and the units of a counted phase."""

    def phase(self, name: str, total: int | None = None, unit: str = "") -> None:
        """Phase ``name`` starts (the one before it ends); ``total`` units of ``unit`` if counted."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units of the current phase are done."""


class _Silent:
    """The default reporter: says nothing (library callers, tests, the server)."""

    def phase(self, name: str, total: int | None = None, unit: str = "") -> None:
        return None

    def advance(self, n: int = 1) -> None:
        return None


SILENT: Progress = _Silent()


def duration(seconds: float) -> str:
    """``0.4 s``, ``42 s``, ``3m07s``, ``1h05m``: short enough for a status line."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass
class _Phase:
    name: str
    total: int | None
    unit: str
    started: float
    done: int = 0

    def status(self, now: float) -> str:
        """``153/612 batches (25%), 1m02s elapsed, about 3m06s left``, or ``45 s elapsed``."""
        elapsed = now - self.started
        if not self.total:
            return f"{duration(elapsed)} elapsed"
        done = min(self.done, self.total)
        text = f"{done:,}/{self.total:,} {self.unit} ({100 * done // self.total}%), {duration(elapsed)} elapsed"
        if done >= min(3, max(1, self.total // 10)) and done < self.total and elapsed > 0:
            text += f", about {duration((self.total - done) * elapsed / done)} left"
        return text

    def finished(self, now: float) -> str:
        counted = f" ({self.done:,} {self.unit})" if self.total else ""
        return f"done in {duration(now - self.started)}{counted}"

    def bar(self, now: float, fancy: bool) -> str:
        full, empty = ("\u2588", "\u2591") if fancy else ("#", "-")
        if not self.total:
            return _SPINNER[int(now / _TICK_S) % len(_SPINNER)]
        filled = _BAR_WIDTH * min(self.done, self.total) // self.total
        return "|" + full * filled + empty * (_BAR_WIDTH - filled) + "|"


class TerminalProgress:
    """Renders a :class:`Progress` on ``stream`` (stderr): a bar on a terminal, plain lines otherwise.

    Use it as a context manager around the command, so its last line is finished (and its
    background ticker stopped) before the command prints its summary or its error. ``bar`` None
    picks by ``stream.isatty()``; ``delay`` and ``interval`` (plain lines only) default to
    :data:`LINE_DELAY_S` and :data:`LINE_INTERVAL_S`; ``tick`` None runs no background thread
    (tests call :meth:`tick` themselves, with their own ``clock``).
    """

    def __init__(self, label: str, stream: TextIO | None = None, *, bar: bool | None = None,
                 delay: float | None = None, interval: float | None = None, tick: float | None = _TICK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._label = label
        self._stream = sys.stderr if stream is None else stream
        self._bar = _is_terminal(self._stream) if bar is None else bar
        self._fancy = "utf" in (getattr(self._stream, "encoding", "") or "").lower()
        self._delay = 0.0 if self._bar else (LINE_DELAY_S if delay is None else delay)
        self._interval = LINE_INTERVAL_S if interval is None else interval
        self._clock = clock
        self._started = self._last_line = self._last_draw = clock()
        self._live = self._delay <= 0  # plain lines: past the quiet start, writing as things happen
        self._held: list[str] = []  # plain lines of the quiet start, written if the command runs on
        self._current: _Phase | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handlers: list[logging.Handler] = []
        if self._bar:  # a log record written while the bar is drawn would land on the bar's line
            self._handlers = [h for h in logging.getLogger().handlers if getattr(h, "stream", None) is self._stream]
            for handler in self._handlers:
                handler.addFilter(self._clear_for_record)
        if tick:
            self._thread = threading.Thread(target=self._run, args=(tick,), name="progress", daemon=True)
            self._thread.start()

    @property
    def bar(self) -> bool:
        """True when drawing a bar (a terminal), False when writing plain lines."""
        return self._bar

    # ------------------------------------------------------------------ the Progress protocol

    def phase(self, name: str, total: int | None = None, unit: str = "") -> None:
        with self._lock:
            now = self._clock()
            self._end(now, failed=False)
            self._current = _Phase(name, total if total and total > 0 else None, unit, now)
            if self._bar:
                self._draw(now)
            else:
                self._due(now)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            if self._current is None:
                return
            self._current.done += n
            now = self._clock()
            if self._bar:
                if now - self._last_draw >= _REDRAW_S or self._current.done == self._current.total:
                    self._draw(now)
            else:
                self._due(now)

    # ------------------------------------------------------------------ rendering

    def tick(self) -> None:
        """Redraw the bar (its elapsed time moves while a phase blocks), or write a plain line
        that is due: the held lines once the quiet start is over, a status line per interval."""
        with self._lock:
            now = self._clock()
            if self._bar:
                if self._current is not None:
                    self._draw(now)
            else:
                self._due(now)

    def close(self, failed: bool = False) -> None:
        """End the last phase (``done``, or left as it stood when ``failed``) and stop the ticker.
        A quick command (still in the quiet start) writes nothing."""
        self._stop.set()
        for handler in self._handlers:
            handler.removeFilter(self._clear_for_record)
        self._handlers = []
        if self._thread is not None:
            self._thread.join(timeout=2 * _TICK_S + 1)
            self._thread = None
        with self._lock:
            self._end(self._clock(), failed=failed)

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close(failed=kind is not None)

    def _clear_for_record(self, record: logging.LogRecord) -> bool:
        """A filter on the log handlers of ``stream``: clear the bar's line so the record gets a
        line of its own (the bar is redrawn below it on the next tick)."""
        with self._lock:
            if self._current is not None:
                self._write("\r\x1b[K")
        return True

    def _run(self, period: float) -> None:
        while not self._stop.wait(period):
            self.tick()

    def _end(self, now: float, failed: bool) -> None:
        phase, self._current = self._current, None
        if phase is None:
            return
        if self._bar:
            if failed:
                self._write("\n")  # the bar stays as it stood: where the command stopped
            else:
                self._write("\r" + self._fit(f"{self._label}: {phase.name}: {phase.finished(now)}") + "\x1b[K\n")
            return
        if failed:
            if self._live:
                self._line(now, phase.name, f"stopped after {duration(now - phase.started)}")
            return
        self._line(now, phase.name, phase.finished(now))

    def _draw(self, now: float) -> None:
        phase = self._current
        assert phase is not None
        line = f"{self._label}: {phase.name} {phase.bar(now, self._fancy)} {phase.status(now)}"
        self._write("\r" + self._fit(line) + "\x1b[K")
        self._last_draw = now

    def _fit(self, line: str) -> str:
        """The line cut to the terminal's width: a wrapped line cannot be redrawn with ``\\r``."""
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (AttributeError, OSError, ValueError):  # not a real file
            columns = 0
        if columns <= 0:  # unknown (a pseudo-terminal without a size): COLUMNS, or 100
            columns = shutil.get_terminal_size((100, 24)).columns
        return line[:max(20, columns - 1)]

    def _due(self, now: float) -> None:
        """Plain lines: leave the quiet start once ``delay`` has passed; a status line per interval."""
        if not self._live:
            if now - self._started < self._delay:
                return
            self._live = True
            self._write("".join(self._held))
            self._held.clear()
            if self._current is not None:
                self._line(now, self._current.name, self._current.status(now))
            return
        if self._current is not None and now - self._last_line >= self._interval:
            self._line(now, self._current.name, self._current.status(now))

    def _line(self, now: float, name: str, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {self._label}: {name}: {text}\n"
        if self._live:
            self._write(line)
            self._last_line = now
        else:
            self._held.append(line)

    def _write(self, text: str) -> None:
        if not text:
            return
        with suppress(OSError, ValueError):  # stderr closed or gone (a broken pipe): progress is not worth a crash
            self._stream.write(text)
            self._stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
