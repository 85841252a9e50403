"""The extraction loop: clips decoded ahead in background threads, features computed in batches,
one part written per clip, failures isolated per clip, work shared across processes.

Library use::

    from tapos.extract import extract
    report = extract("videos/", "feats.h5", modalities=("rgb", "flow"), weights="random")
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tapos.data.machinery.distributed import Distributed
from tapos.data.machinery.progress import track
from tapos.data.errors import TaposError
from tapos.data.features import ExtractionSettings, parse_modality
from tapos.data.options import apply_options
from tapos.data.videos import clips_from_annotations, clips_from_folder
from tapos.data.version import __version__

from .batching import Batcher, ClipRows
from .decoders import Decoded, Decoders, Rows, Skipped, decoder_count, error_message
from .decode import Clip, Sampling
from .flow import flow_parameters
from .store import PartStore, write_failures

# One defaults dict; the CLI exposes each field as an option.
DEFAULTS = {
    "modalities": ("rgb",),   # "rgb", "flow" or both
    "weights": "imagenet",    # "imagenet" (download once), "random" (tests, demo) or a .pth path
    "flow_weights": None,     # flow net weights; None: cross-modality init from `weights` (TSN)
    "flow": "tvl1",           # tvl1 (the paper's), tvl1-torch (the same in PyTorch, on the device),
                              # dis (fast on CPU) or farneback
    "flow_options": None,     # tvl1-torch's parameters over its defaults (tapos.extract.tvl1.DEFAULTS)
    "stride": 1,              # keep every S-th frame
    "fps": None,              # or rows at this rate (nearest frames)
    "split": None,            # with annotations: only this subset
    "batch_size": 32,         # frames per forward pass
    "device": "cpu",          # cpu, cuda, cuda:1; under torchrun "cuda" means cuda:LOCAL_RANK
    "precision": "fp32",      # fp16/bf16 autocast on CUDA
    "dtype": "float16",       # stored features (float16 halves the cache; pooled features lose nothing)
    "decoders": None,         # clips decoded ahead, each by its own thread and ffmpeg processes
                              # (None: 2 on CPU, where the model is the bottleneck; on CUDA enough
                              # to feed the GPU, see decoder_count)
    "flow_threads": None,     # threads computing flow fields per clip (None: CPU count; tvl1-torch on
                              # CPU: 1 torch thread per clip, the decoders computing clips in parallel)
    "overwrite": False,       # redo instances already extracted
    "progress": True,
}


@dataclass
class Report:
    done: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)   # already complete
    busy: List[str] = field(default_factory=list)      # claimed by another process
    failed: List[Tuple[str, str]] = field(default_factory=list)
    timing: List[Tuple[str, str]] = field(default_factory=list)  # clips whose frame count and duration disagree
    indexed: int = 0
    frames: int = 0
    seconds: float = 0.0                                # wall time of this process's extraction
    failures_file: Optional[Path] = None                # the JSON report of every rank's failures
    run_failed: int = 0                                 # failures of every rank (rank 0; else this rank's)
    run_clips: int = 0                                  # clips of every rank (likewise)


PREPROCESSING = ("rgb: short side 256 bilinear, centre crop 224, BGR minus (104,117,128); "
                 "flow: 340x256 gray, clip +-20 -> 0..255, crop 224, 5 fields stacked, minus 128")


def _settings(opts, backbones) -> ExtractionSettings:
    """The record of how this run makes features (its parts must all agree on it)."""
    flow = opts["flow"] if "flow" in opts["modalities"] else None
    return ExtractionSettings(
        backbone="bninception", weights={m: b.description for m, b in backbones.items()},
        modalities=opts["modalities"], stride=opts["stride"], fps=opts["fps"], flow=flow,
        flow_params=flow_parameters(flow, opts["flow_options"]) if flow else {}, dtype=opts["dtype"], preprocessing=PREPROCESSING,
        tool_version=__version__)


def _check_device(device: str, precision: str) -> None:
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise TaposError(f"device {device}: no CUDA device available (use --device cpu)")
    if precision != "fp32" and not str(device).startswith("cuda"):
        raise TaposError(f"precision {precision} needs a CUDA device (on {device} use fp32)")


def build_backbones(opts, device: str) -> dict:
    from .backbone import Backbone

    out = {}
    for m in opts["modalities"]:
        spec = opts["flow_weights"] or opts["weights"] if m == "flow" else opts["weights"]
        out[m] = Backbone(m, weights=str(spec), device=device, precision=opts["precision"],
                          progress=opts["progress"])
    return out


def extract(videos, out, annotations=None, clips: Optional[Sequence[Clip]] = None, **options) -> Report:
    """Extract features of every video below ``videos`` (or the TAPOS instances of ``annotations``
    cut from their source videos there) into the cache ``out``; see :data:`DEFAULTS`."""
    opts = apply_options(DEFAULTS, options, "extraction")
    opts["modalities"] = parse_modality(opts["modalities"])
    Sampling(opts["stride"], opts["fps"])  # validates
    _check_device(opts["device"], opts["precision"])
    if "flow" in opts["modalities"]:
        flow_parameters(opts["flow"], opts["flow_options"])  # bad flow options fail here, in one line
    report = Report()
    missing = []  # (key, reason) of annotated instances without a source video
    store = PartStore(out)
    store.check_output()
    if clips is None:
        if annotations is not None:
            clips, missing = clips_from_annotations(annotations, videos, opts["split"])
            if not clips and not missing:
                raise TaposError(f"{annotations}: no instances{' in split ' + opts['split'] if opts['split'] else ''}")
        else:
            clips = clips_from_folder(videos)
    # gloo with a long timeout: it only coordinates, and ranks may finish days apart
    dist = Distributed(opts["device"], backend="gloo", timeout=timedelta(days=30))
    if dist.rank == 0:  # every rank finds them; one reports them
        report.failed.extend(missing)
    try:
        backbones = build_backbones(opts, dist.device)
        settings = _settings(opts, backbones)
        if dist.rank == 0:
            store.check_settings(settings, opts["overwrite"])
        dist.barrier()
        if dist.rank != 0:
            store.check_settings(settings, False)
        store.remove_stale_temporaries()
        mine = list(clips)[dist.rank::dist.world]
        try:
            _run(mine, store, opts, backbones, settings, report, show=opts["progress"] and dist.rank == 0,
                 device=dist.device)
        finally:
            dist.barrier()
            if dist.rank == 0:
                report.indexed = store.write_index(settings)
        # rank 0 writes one report for all ranks (the clips each rank could not extract)
        report.run_failed, report.run_clips = len(report.failed), len(mine)
        everyone = dist.gather((report.failed, len(report.done), report.frames, len(mine)))
        if dist.rank == 0:
            failed = [f for part, _, _, _ in everyone for f in part]
            summary = {"output": str(out), "extracted": sum(e[1] for e in everyone),
                       "rows": sum(e[2] for e in everyone), "indexed": report.indexed}
            report.failures_file = write_failures(out, failed, {c.key: str(c.path) for c in clips}, summary)
            report.run_failed, report.run_clips = len(failed), sum(e[3] for e in everyone) + len(missing)
        dist.barrier()  # no rank exits (maybe with an error status) before the report is written
    finally:
        dist.close()
    return report


class _Writer:
    """Writes finished clips in a background thread, in order: a part's write and fsync (slow on
    network file systems) overlap the next batches instead of stalling the device. The queue is
    short, so a writer that falls behind holds the extraction back rather than memory growing."""

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
        """Waits for the queued parts; returns the first error of the thread itself, if any."""
        self._queue.put(None)
        self._thread.join()
        return self._error


class _Consumer:
    """The consuming side of the loop: decoded rows into batches, finished clips to the part
    writer, every clip's outcome into the report and the progress bar."""

    def __init__(self, store, opts, backbones, settings, report, bar):
        self.store, self.settings, self.report, self.bar = store, settings, report, bar
        self.dtype = np.float16 if opts["dtype"] == "float16" else np.float32
        self.batcher = Batcher(backbones, opts["batch_size"])
        self.open: List[ClipRows] = []  # clips whose last rows are still being computed
        self.started = time.perf_counter()
        self.writer = _Writer(self._write_part)

    def consume(self, messages) -> None:
        """One clip's messages, in order."""
        state = None
        for msg in messages:
            state = state or ClipRows(msg.clip)
            if isinstance(msg, Rows):
                self.batcher.add(state, msg.chunk)
            elif isinstance(msg, Decoded):
                state.meta, state.claim, state.ended = msg.meta, msg.claim, True
                self.open.append(state)
            elif isinstance(msg, Skipped):
                (self.report.busy if msg.busy else self.report.skipped).append(msg.clip.key)
                state.ended = True
                if state.queued == 0:
                    self._progress()
                else:
                    self.open.append(state)
            else:  # Failed: rows already queued are computed and dropped
                state.failed, state.ended = msg.message, True
                self._fail(msg.clip.key, msg.message)
                self.open.append(state)
            self._finish_complete()

    def finish(self) -> None:
        """Compute the rows still batched and hand over every clip that is complete."""
        self.batcher.flush()
        self._finish_complete()

    def close(self) -> Optional[BaseException]:
        """Write what is finished, release the claims still held; the writer's error, if any."""
        error = self.writer.close()  # clips computed before an interruption are still written
        self.report.seconds = time.perf_counter() - self.started
        for state in self.open:
            if state.claim is not None:
                state.claim.release()
        return error

    def _finish_complete(self) -> None:
        for state in [s for s in self.open if s.complete]:
            self.open.remove(state)
            if state.failed is None and state.meta is not None:
                self.writer.put(state)  # the writer thread releases its claim
                continue
            if state.claim is not None:
                state.claim.release()
            self._progress()

    def _write_part(self, state: ClipRows) -> None:
        """In the writer thread: one finished clip to its part file, then its claim released."""
        key, meta = state.clip.key, state.meta
        try:
            features = {m: np.concatenate(v).astype(self.dtype) for m, v in state.out.items()}
            index = np.concatenate(state.index)
            self.store.write(key, features, meta.fps, meta.num_frames, index, self.settings,
                             timestamps=meta.timestamps(index), frame_rate=meta.rate)
            self.report.done.append(key)
            if meta.note:
                self.report.timing.append((key, meta.note))
                self.bar.write(f"note: {key}: {state.clip.path}: {meta.note}")
            self.report.frames += len(index)
        except Exception as exc:
            self._fail(key, error_message(exc))
        finally:
            state.claim.release()
            state.claim = None
        self._progress()

    def _fail(self, key: str, message: str) -> None:
        self.report.failed.append((key, message))
        self.bar.write(f"failed: {key}: {message}")

    def _progress(self) -> None:
        r = self.report
        rate = r.frames / max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix({"done": len(r.done), "skipped": len(r.skipped), "failed": len(r.failed),
                              "frames/s": f"{rate:.0f}"}, refresh=False)  # before the count: a log's line shows it
        self.bar.update(1)


def _run(clips, store, opts, backbones, settings, report, show, device):
    """Extract ``clips``: decoders ahead, batches across clips, parts written behind."""
    decoders = Decoders(clips, store, opts, decoder_count(opts["decoders"], device), device)
    bar = track(total=len(clips), desc="extract", unit="clip", enabled=show)
    consumer = _Consumer(store, opts, backbones, settings, report, bar)
    try:
        for i, clip in enumerate(clips):
            consumer.consume(decoders.messages(i, clip))
        consumer.finish()
    finally:
        writer_error = consumer.close()
        decoders.close()
        bar.close()
        if writer_error is not None:  # raised only once everything above is released
            raise writer_error
