"""The extraction loop: clips decoded ahead in background threads, features computed in batches,
one part written per clip, failures isolated per clip, work shared across processes.

Library use::

    from tapos.extract import extract
    report = extract("videos/", "feats.h5", modalities=("rgb", "flow"), weights="random")
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tapos.data.distributed import Distributed
from tapos.data.errors import TaposError
from tapos.data.features import ExtractionSettings, parse_modality
from tapos.data.options import apply_options
from tapos.data.videos import clips_from_annotations, clips_from_folder
from tapos.data.version import __version__

from .batching import Batcher, ClipRows
from .decode import Clip, ClipReader, Sampling
from .flow import flow_parameters
from .store import PartStore, write_failures

# One defaults dict; the CLI exposes each field as an option.
DEFAULTS = {
    "modalities": ("rgb",),   # "rgb", "flow" or both
    "weights": "imagenet",    # "imagenet" (download once), "random" (tests, demo) or a .pth path
    "flow_weights": None,     # flow net weights; None: cross-modality init from `weights` (TSN)
    "flow": "tvl1",           # tvl1 (the paper's), dis (fast on CPU) or farneback
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
    "flow_threads": None,     # threads computing flow fields per clip (None: CPU count)
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
        flow_params=flow_parameters(flow) if flow else {}, dtype=opts["dtype"], preprocessing=PREPROCESSING,
        tool_version=__version__)


def _produce(jobs, out_q, store, opts, stop):
    """Decode clips in order into ``out_q``; messages: (kind, clip, payload)."""
    sampling = Sampling(opts["stride"], opts["fps"])
    mods = opts["modalities"]

    def put(item):
        while not stop.is_set():
            try:
                out_q.put(item, timeout=0.2)
                return True
            except queue.Full:
                pass
        return False

    for clip in jobs:
        if stop.is_set():
            return
        claim = store.claim(clip.key)
        if claim is None:
            put(("busy", clip, None))
            continue
        if not opts["overwrite"] and store.is_complete(clip.key, mods):
            claim.release()
            put(("skip", clip, None))
            continue
        try:
            reader = ClipReader(clip, mods, sampling, opts["flow"], opts["flow_threads"] or os.cpu_count() or 1)
            for chunk in reader:
                if not put(("chunk", clip, chunk)):
                    claim.release()
                    return
            put(("end", clip, (reader.meta, claim)))
        except Exception as exc:  # isolate the failure to this clip (a bad video, a missing file)
            claim.release()
            msg = str(exc) if isinstance(exc, TaposError) else f"{type(exc).__name__}: {exc}"
            put(("error", clip, msg))


def _check_device(device: str, precision: str) -> None:
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise TaposError(f"device {device}: no CUDA device available (use --device cpu)")
    if precision != "fp32" and not str(device).startswith("cuda"):
        raise TaposError(f"precision {precision} needs a CUDA device (on {device} use fp32)")


def decoder_count(requested, device: str) -> int:
    """Decoder threads: ``requested``, else 2 on CPU, else half the cores of this process (cores
    divided among the torchrun processes of this node), between 2 and 8. One 256p RGB reader
    delivers about 750 frames/s for 1.6 CPU ms per frame (benchmarks/extract_throughput.py), so
    a GPU that computes thousands of frames/s needs several, each with a core to spare."""
    if requested:
        return max(1, int(requested))
    if not str(device).startswith("cuda"):
        return 2
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(2, min(8, per_process // 2))


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
    from tqdm import tqdm

    opts = apply_options(DEFAULTS, options, "extraction")
    opts["modalities"] = parse_modality(opts["modalities"])
    Sampling(opts["stride"], opts["fps"])  # validates
    _check_device(opts["device"], opts["precision"])
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
            _run(mine, store, opts, backbones, settings, report, tqdm, show=opts["progress"] and dist.rank == 0,
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


def _run(clips, store, opts, backbones, settings, report, tqdm, show, device):
    n_dec = decoder_count(opts["decoders"], device)
    queues = [queue.Queue(maxsize=4) for _ in range(n_dec)]
    stop = threading.Event()
    threads = [threading.Thread(target=_produce, args=(clips[k::n_dec], queues[k], store, opts, stop), daemon=True)
               for k in range(n_dec)]
    for t in threads:
        t.start()
    batcher = Batcher(backbones, opts["batch_size"])
    bar = tqdm(total=len(clips), desc="extract", unit="clip", disable=not show)
    dtype = np.float16 if opts["dtype"] == "float16" else np.float32
    open_clips = []
    started = time.perf_counter()

    def fail(state, msg):
        report.failed.append((state.clip.key, msg))
        bar.write(f"failed: {state.clip.key}: {msg}")

    def progress():
        bar.update(1)
        rate = report.frames / max(time.perf_counter() - started, 1e-9)
        bar.set_postfix({"done": len(report.done), "skipped": len(report.skipped), "failed": len(report.failed),
                         "frames/s": f"{rate:.0f}"})

    def write_part(state):
        """In the writer thread: one finished clip to its part file, then its claim released."""
        meta, claim = state.end
        try:
            features = {m: np.concatenate(v).astype(dtype) for m, v in state.out.items()}
            index = np.concatenate(state.index)
            store.write(state.clip.key, features, meta.fps, meta.num_frames, index, settings,
                        timestamps=meta.timestamps(index), frame_rate=meta.rate)
            report.done.append(state.clip.key)
            if meta.note:
                report.timing.append((state.clip.key, meta.note))
                bar.write(f"note: {state.clip.key}: {state.clip.path}: {meta.note}")
            report.frames += len(index)
        except Exception as exc:
            fail(state, str(exc) if isinstance(exc, TaposError) else f"{type(exc).__name__}: {exc}")
        finally:
            claim.release()
        progress()

    writer = _Writer(write_part)

    def finish_complete():
        for state in [s for s in open_clips if s.complete]:
            open_clips.remove(state)
            if state.failed is None:
                writer.put(state)
                continue
            claim = state.end[1]
            if claim is not None:
                claim.release()
            progress()

    try:
        for i, clip in enumerate(clips):
            q = queues[i % n_dec]
            state = ClipRows(clip)
            while True:
                kind, got, payload = q.get()
                assert got.key == clip.key, "decoder queues out of order"
                if kind == "chunk":
                    batcher.add(state, payload)
                    finish_complete()
                    continue
                if kind == "end":
                    state.end = payload
                    open_clips.append(state)
                else:
                    if kind == "skip":
                        report.skipped.append(clip.key)
                    elif kind == "busy":
                        report.busy.append(clip.key)
                    else:  # error: rows already queued are computed and dropped
                        state.failed = payload
                        fail(state, payload)
                    state.end = (None, None)
                    open_clips.append(state)
                    if state.failed is None and state.queued == 0:
                        open_clips.remove(state)
                        progress()
                break
            finish_complete()
        batcher.flush()
        finish_complete()
    finally:
        # clips computed before an interruption are still written; their claims are released there
        writer_error = writer.close()
        report.seconds = time.perf_counter() - started
        stop.set()
        for state in open_clips:  # interrupted: release what this process still holds
            if state.end and state.end[1] is not None:
                state.end[1].release()
        for q in queues:  # unblock producers waiting to put
            while True:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if item[0] == "end":
                    item[2][1].release()
        for t in threads:
            t.join(timeout=5)
        bar.close()
        if writer_error is not None:  # raised only once everything above is released
            raise writer_error
