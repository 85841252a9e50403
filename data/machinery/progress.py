"""Progress that reads well on a terminal and in a log file: every progress display of the library.

On a terminal, :func:`track` is a tqdm bar that redraws itself in place. Into a file (a cluster
job, ``make demo > log 2>&1``) each redraw would land as one more carriage-return update (the demo
once wrote 218 KB of them), so there it prints plain lines instead: one every ``every`` items
(by default every ~10 % of a known total, every 100 items of an unknown one) and the final count::

    extract: 36/120 clips (30%) [00:12] done=36 failed=0

A transient display (``leave=False``: a pass inside a larger step, whose end the enclosing display
reports) prints nothing into a file. ``enabled=False`` prints nothing anywhere.
"""
from __future__ import annotations

import contextlib
import math
import sys
from contextlib import contextmanager
from time import monotonic
from typing import Iterable, Optional

UNKNOWN_TOTAL_EVERY = 100  # items between lines when the total is not known
PLURALS = {"batch": "batches", "inst": "instances", "it": "items"}  # the rest take an "s"


def track(iterable: Optional[Iterable] = None, desc: str = "", total: Optional[int] = None, unit: str = "it",
             enabled: bool = True, leave: bool = True, every: Optional[int] = None, file=None):
    """A progress display over ``iterable`` (``for x in track(items, ...)``) or, without one,
    updated by hand (``with track(total=n, ...) as bar: ... bar.update(1)``). Both forms offer
    ``update``, ``set_postfix``, ``write`` and ``close``. ``file``: where it draws (stderr);
    ``every``: items between lines when ``file`` is not a terminal."""
    file = file or sys.stderr
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if enabled and is_terminal(file):
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, file=file)
    return LineProgress(iterable, desc, total, unit, file if enabled and leave else None, every)


def is_terminal(file) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def line_every(total: Optional[int], every: Optional[int] = None) -> int:
    """Items between two lines of a display into a file: ``every``, else ~10 % of ``total``."""
    if every:
        return max(1, int(every))
    return max(1, math.ceil(total / 10)) if total else UNKNOWN_TOTAL_EVERY


@contextmanager
def writing(file=None):
    """Write to ``file`` (stderr) in this block with every terminal bar cleared, then redrawn."""
    from tqdm import tqdm

    with tqdm.external_write_mode(file=file or sys.stderr):
        yield


class LineProgress:
    """The display into a file: a plain line each ``line_every`` items and at the end (when
    ``file`` is None, nothing: the display is off or transient)."""

    def __init__(self, iterable, desc: str, total: Optional[int], unit: str, file, every: Optional[int] = None):
        self.iterable, self.desc, self.total, self.unit, self.file = iterable, desc, total, unit, file
        self.every = line_every(total, every)
        self.n = 0
        self.shown: Optional[int] = None  # the count of the last line printed
        self.postfix = ""
        self.started = monotonic()
        self.closed = False

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + n
        if self.n // self.every > before // self.every or self.n == self.total:
            self._line()

    def set_postfix(self, ordered_dict: Optional[dict] = None, refresh: bool = True, **kwargs) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = "".join(f" {k}={_text(v)}" for k, v in items.items())

    @staticmethod
    def write(s: str, file=None) -> None:
        """As ``tqdm.write``: a line on ``file`` (stdout), shown whether the display is on or not."""
        print(s, file=file or sys.stdout, flush=True)

    def external_write_mode(self, file=None, nolock: bool = False):
        """As tqdm's: lines written meanwhile need no bar cleared (there is none)."""
        return contextlib.nullcontext()

    def close(self) -> None:
        if not self.closed and self.shown != self.n:
            self._line()  # the final count
        self.closed = True

    def line(self) -> str:
        units = self.unit if (self.total or self.n) == 1 else PLURALS.get(self.unit, self.unit + "s")  # 1/3 epochs
        count = f"{self.n}/{self.total} {units} ({100 * self.n // max(self.total, 1)}%)" if self.total else \
            f"{self.n} {units}"
        return f"{self.desc}: {count} [{_clock(monotonic() - self.started)}]{self.postfix}"

    def _line(self) -> None:
        self.shown = self.n
        if self.file is not None:
            print(self.line(), file=self.file, flush=True)


def _text(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _clock(seconds: float) -> str:
    """``mm:ss``, or ``h:mm:ss`` from an hour on (tqdm's elapsed time)."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
