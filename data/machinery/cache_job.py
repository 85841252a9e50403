"""The one job that writes a cache: ``tapos-extract`` (:mod:`tapos.extract.pipeline`) and
``tapos-data import-features`` (:mod:`tapos.data.importing`) are its two subclasses.

A template method: :meth:`CacheJob.run` fixes the steps, a subclass supplies what differs::

    run()
      check the output                 a merged or foreign cache is never rebuilt
      list_items()         subclass    what to make (and what is wanted but cannot be made)
      open_group()         optional    the processes sharing the items (torchrun); one by default
      decide_settings()    subclass    how this run makes features (None: the first item decides)
      for each item of this process, in order:
        refuse(item)       optional    a reason it cannot be made at all (a bad key)
        begin(key)                     claim it; skip it when another process holds it or
          is_finished(key) optional    its part is finished (it reads back whole)
        compute(item)      subclass    its features (extraction overrides outcomes() instead, to
                                       decode ahead and batch across clips)
        write(item, ...)   subclass    its part, atomically (behind, in a thread, if write_behind)
      index the parts; one failure report for every process

Every item ends in the one :class:`CacheReport`: done, skipped, busy or failed with a one-line
reason (announced on one line as it happens). One bad item never stops the others; a problem of
the whole output (:class:`OutputError`: other settings, a foreign file) stops the job.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from abc import ABC, abstractmethod
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

from ..errors import FeatureCacheError, TaposError
from ..features import ExtractionSettings
from ..parts import Claim, PartStore, write_failures
from .progress import is_terminal, track

BUSY, FINISHED = "busy", "finished"  # why begin() gave no claim


class OutputError(FeatureCacheError):
    """A problem of the whole output, not of one item (its parts were made with other settings):
    it stops the job instead of failing every item in turn."""


@dataclass
class CacheReport:
    """What a cache job did with each item, and the totals of every process."""

    done: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)   # finished before (the part reads back whole)
    busy: List[str] = field(default_factory=list)      # claimed by another process
    failed: List[Tuple[str, str]] = field(default_factory=list)  # (key, one-line reason)
    notes: List[Tuple[str, str]] = field(default_factory=list)   # (key, remark) of items done despite it
    paths: dict = field(default_factory=dict)          # key -> where the item comes from
    rows: int = 0                                       # rows this process wrote
    seconds: float = 0.0                                # wall time of this process's items
    indexed: int = 0                                    # instances the index links
    failures_file: Optional[Path] = None                # the JSON report of every process's failures
    run_failed: int = 0                                 # failures of every process (rank 0; else this one's)
    run_items: int = 0                                  # items of every process (likewise)


@dataclass
class Computed:
    """``item``'s ``result``, to be written while this process holds its ``claim``."""

    item: Any
    result: Any
    claim: Claim


@dataclass
class Skipped:
    """``item`` is not this process's to make: finished already, or ``busy`` in another process."""

    item: Any
    busy: bool


@dataclass
class Failed:
    """``item`` cannot be made; ``message`` says why in one line."""

    item: Any
    message: str


class Solo:
    """The group of one process (a job without torchrun)."""

    rank, world = 0, 1

    def barrier(self) -> None:
        pass

    def gather(self, obj) -> list:
        return [obj]

    def close(self) -> None:
        pass


def error_message(exc: Exception) -> str:
    """One line for an item's failure: a TaposError says it all; anything else names its type."""
    return str(exc) if isinstance(exc, TaposError) else f"{type(exc).__name__}: {exc}"


class CacheJob(ABC):
    """Writes the cache ``out`` (an index over crash-safe parts, :mod:`tapos.data.parts`); see
    the module for the steps. ``progress``: a progress bar (None: when stderr is a terminal)."""

    name, unit = "cache", "item"  # the progress bar's label and unit
    row_name = "rows"             # its rate: rows per second
    write_behind = False          # parts written by a thread while the next items are computed

    def __init__(self, out, overwrite: bool = False, progress: Optional[bool] = True):
        self.out, self.store = out, PartStore(out)
        self.overwrite, self.progress = overwrite, progress
        self.report = self.new_report()
        self.settings: Optional[ExtractionSettings] = None
        self.ranks: Any = Solo()
        self.bar = None

    # -- the steps a subclass supplies ----------------------------------------------------------
    @abstractmethod
    def list_items(self) -> Tuple[list, list]:
        """``(items, missing)``: the items to make, and ``(key, reason)`` of items wanted but
        impossible to make (rank 0 reports them, with no line of their own)."""

    @abstractmethod
    def key(self, item) -> str:
        """The instance key ``item`` is stored under."""

    @abstractmethod
    def decide_settings(self) -> Optional[ExtractionSettings]:
        """How this run makes features, or None when the first item computed decides (it then
        calls :meth:`fix_settings`)."""

    @abstractmethod
    def write(self, item, result) -> int:
        """Write ``item``'s part (``self.store.write``); returns the rows written."""

    def compute(self, item):
        """``item``'s result for :meth:`write`; raise to fail the item (the default
        :meth:`outcomes` calls it; a job that computes many items at once overrides that)."""
        raise NotImplementedError

    def source(self, item) -> str:
        """Where ``item`` comes from (failure lines and the failure report name it)."""
        return str(item.path)

    def refuse(self, item) -> Optional[str]:
        """Why ``item`` cannot be made at all (checked before it is claimed), or None."""
        return None

    def is_finished(self, key: str) -> bool:
        """Its part reads back whole, with this run's modalities (any, while none are fixed)."""
        return self.store.is_complete(key, self.settings.modalities if self.settings else None)

    def new_report(self) -> CacheReport:
        return CacheReport()

    def open_group(self):
        """The processes sharing the items: ``rank``, ``world``, ``barrier``, ``gather``, ``close``."""
        return Solo()

    def failure_summary(self, totals: dict) -> dict:
        """What the failure report says besides the failures (``totals``: done and rows of every process)."""
        return {"output": str(self.out), **totals, "indexed": self.report.indexed}

    def error_message(self, exc: Exception) -> str:
        return error_message(exc)

    def announce_failure(self, key: str, source: str, message: str) -> None:
        self.say(f"failed: {key}: {message}")

    # -- the fixed steps ---------------------------------------------------------------------
    def run(self) -> CacheReport:
        self.store.check_output()
        items, missing = self.list_items()
        self.ranks = ranks = self.open_group()
        try:
            if ranks.rank == 0:  # every rank finds them; one reports them
                self.report.failed.extend(missing)
            self.fix_settings(self.decide_settings())
            mine = list(items)[ranks.rank::ranks.world]
            try:
                self.process(mine)
            finally:
                ranks.barrier()
                if ranks.rank == 0 and self.settings is not None:
                    self.report.indexed = self.store.write_index(self.settings)
            self._report_failures(items, missing, mine)
            ranks.barrier()  # no process exits (maybe with an error status) before the report is written
        finally:
            ranks.close()
        return self.report

    def fix_settings(self, settings: Optional[ExtractionSettings]) -> None:
        """The output's settings are ``settings`` (rank 0 records them; a different run needs
        ``overwrite``); temporaries of dead processes go."""
        if settings is None:
            return
        try:
            if self.ranks.rank == 0:
                self.store.check_settings(settings, self.overwrite)
            self.ranks.barrier()
            if self.ranks.rank != 0:
                self.store.check_settings(settings, False)
        except OutputError:
            raise
        except FeatureCacheError as exc:
            raise OutputError(str(exc)) from None
        self.store.remove_stale_temporaries()
        self.settings = settings

    def begin(self, key: str):
        """This process's :class:`Claim` on ``key``, or BUSY (another process holds it) or
        FINISHED (:meth:`is_finished`, and not ``overwrite``). Thread-safe (decoder threads call it)."""
        claim = self.store.claim(key)
        if claim is None:
            return BUSY
        if not self.overwrite and self.is_finished(key):
            claim.release()
            return FINISHED
        return claim

    def outcomes(self, items) -> Iterator:
        """Each item's :class:`Computed`, :class:`Skipped` or :class:`Failed`, one item at a time."""
        for item in items:
            problem = self.refuse(item)
            if problem is not None:
                yield Failed(item, problem)
                continue
            claim = self.begin(self.key(item))
            if not isinstance(claim, Claim):
                yield Skipped(item, busy=claim == BUSY)
                continue
            yield self._compute(item, claim)

    def process(self, items) -> None:
        """Every item's outcome into the report, parts written, the progress bar advanced."""
        show = self.progress if self.ranks.rank == 0 else False
        # progress None: a bar on a terminal only (nothing in a log); True: lines in a log as well
        enabled = is_terminal(sys.stderr) if show is None else bool(show)
        self.bar = track(total=len(items), desc=self.name, unit=self.unit, enabled=enabled)
        self.started = time.perf_counter()
        writer = _Writer(self._write) if self.write_behind else _Inline(self._write)
        try:
            with closing(self.outcomes(items)) as outcomes:
                for outcome in outcomes:
                    self._record(outcome, writer)
        finally:
            error = writer.close()  # items computed before an interruption are still written
            self.report.seconds = time.perf_counter() - self.started
            self.bar.close()
            if error is not None:  # raised only once everything above is released
                raise error

    def note(self, key: str, remark: str, source) -> None:
        """``key`` is made despite ``remark`` (one line; the report keeps it)."""
        self.report.notes.append((key, remark))
        self.say(f"note: {key}: {source}: {remark}")

    def say(self, line: str, file=None) -> None:
        """One line beside the progress bar (stdout by default)."""
        self.bar.write(line, file=file)

    # -- inside ----------------------------------------------------------------------------------
    def _compute(self, item, claim: Claim):
        try:
            return Computed(item, self.compute(item), claim)
        except OutputError:
            claim.release()
            raise
        except Exception as exc:  # isolate the failure to this item
            claim.release()
            return Failed(item, self.error_message(exc))
        except BaseException:
            claim.release()
            raise

    def _record(self, outcome, writer) -> None:
        if isinstance(outcome, Computed):
            writer.put(outcome)  # the writer releases its claim
            return
        key = self.key(outcome.item)
        if isinstance(outcome, Skipped):
            (self.report.busy if outcome.busy else self.report.skipped).append(key)
        else:
            self._fail(key, self.source(outcome.item), outcome.message)
        self._progress()

    def _write(self, outcome: Computed) -> None:
        """One computed item to its part (in the writer thread with ``write_behind``), then its
        claim released."""
        key = self.key(outcome.item)
        try:
            rows = self.write(outcome.item, outcome.result)
            self.report.done.append(key)
            self.report.rows += rows
        except Exception as exc:
            self._fail(key, self.source(outcome.item), self.error_message(exc))
        finally:
            outcome.claim.release()
        self._progress()

    def _fail(self, key: str, source: str, message: str) -> None:
        self.report.failed.append((key, message))
        self.announce_failure(key, source, message)

    def _progress(self) -> None:
        r = self.report
        self.bar.update(1)
        rate = r.rows / max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix({"done": len(r.done), "skipped": len(r.skipped), "failed": len(r.failed),
                              f"{self.row_name}/s": f"{rate:.0f}"})

    def _report_failures(self, items, missing, mine) -> None:
        """Rank 0 writes one failure report for every process (the items each could not make)."""
        r = self.report
        for item in items:
            r.paths.setdefault(self.key(item), self.source(item))
        r.run_failed, r.run_items = len(r.failed), len(mine)
        everyone = self.ranks.gather((r.failed, len(r.done), r.rows, len(mine)))
        if self.ranks.rank == 0:
            failed = [f for part, _, _, _ in everyone for f in part]
            totals = {"done": sum(e[1] for e in everyone), "rows": sum(e[2] for e in everyone)}
            r.failures_file = write_failures(self.out, failed, r.paths, self.failure_summary(totals))
            r.run_failed, r.run_items = len(failed), sum(e[3] for e in everyone) + len(missing)


class _Inline:
    """Writes each item as it comes."""

    def __init__(self, write):
        self.put = write

    def close(self) -> None:
        return None


class _Writer:
    """Writes computed items in a background thread, in order: a part's write and fsync (slow on
    network file systems) overlap the next items instead of stalling the device. The queue is
    short, so a writer that falls behind holds the job back rather than memory growing."""

    def __init__(self, write, depth: int = 8):
        self._write, self._queue = write, queue.Queue(maxsize=depth)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._loop, daemon=True, name="tapos-part-writer")
        self._thread.start()

    def put(self, item) -> None:
        self._queue.put(item)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._write(item)
            except Exception as exc:  # keep draining (put must never block on a dead writer); raised in close
                self._error = self._error or exc

    def close(self) -> Optional[BaseException]:
        """Waits for the queued items; returns the first error of the thread itself, if any."""
        self._queue.put(None)
        self._thread.join()
        return self._error
