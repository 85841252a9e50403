"""The extraction job: clips decoded ahead in background threads, features computed in batches
across clips, one part written per clip behind them, failures isolated per clip, work shared
across torchrun processes. The steps every cache job shares (claims, skipping finished clips,
the report, the index, the failure report) are :class:`tapos.data.machinery.cache_job.CacheJob`'s.

Library use::

    from tapos.extract import extract
    report = extract("videos/", "feats.h5", modalities=("rgb", "flow"), weights="random")
"""
from __future__ import annotations

from datetime import timedelta
from typing import Iterator, List, Optional, Sequence

import numpy as np

from tapos.data.errors import TaposError
from tapos.data.features import ExtractionSettings, parse_modality
from tapos.data.machinery import cache_job as job
from tapos.data.machinery.cache_job import CacheJob, CacheReport
from tapos.data.machinery.distributed import Distributed
from tapos.data.videos import clips_from_annotations, clips_from_folder
from tapos.data.version import __version__

from .batching import Batcher, ClipRows
from .config import ExtractConfig
from .decoders import Decoded, Decoders, Failed, Rows, Skipped, decoder_count
from .decode import Clip, Sampling
from .flow import flow_parameters

# Every option of a run, with its default: declared once, with its help, in tapos.extract.config
DEFAULTS = ExtractConfig.defaults()


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


Report = CacheReport  # what extract() returns (rows: frames sampled; notes: clips with timing remarks)


def _options(options) -> dict:
    """The run's options over :data:`DEFAULTS`, each checked before anything starts."""
    opts = ExtractConfig.of(options).as_dict()
    opts["modalities"] = parse_modality(opts["modalities"])
    Sampling(opts["stride"], opts["fps"])  # validates
    _check_device(opts["device"], opts["precision"])
    if "flow" in opts["modalities"]:
        flow_parameters(opts["flow"], opts["flow_options"])  # bad flow options fail here, in one line
    return opts


def extract(videos, out, annotations=None, clips: Optional[Sequence[Clip]] = None, **options) -> CacheReport:
    """Extract features of every video below ``videos`` (or the TAPOS instances of ``annotations``
    cut from their source videos there, or the given ``clips``) into the cache ``out``; see
    :data:`DEFAULTS`."""
    return ExtractionJob(videos, out, annotations, clips, _options(options)).run()


class ExtractionJob(CacheJob):
    """``tapos-extract`` as a cache job: clips are its items; one stream computes them all."""

    name, unit, row_name = "extract", "clip", "frames"
    write_behind = True  # a part's write and fsync overlap the next batches on the device

    def __init__(self, videos, out, annotations, clips, opts: dict):
        super().__init__(out, opts["overwrite"], opts["progress"])
        self.videos, self.annotations, self.clips, self.opts = videos, annotations, clips, opts
        self.dtype = np.float16 if opts["dtype"] == "float16" else np.float32
        self.backbones: dict = {}

    def list_items(self):
        """The clips, and annotated instances without a source video."""
        if self.clips is not None:
            return list(self.clips), []
        if self.annotations is None:
            return clips_from_folder(self.videos), []
        split = self.opts["split"]
        clips, missing = clips_from_annotations(self.annotations, self.videos, split)
        if not clips and not missing:
            raise TaposError(f"{self.annotations}: no instances{' in split ' + split if split else ''}")
        return clips, missing

    def open_group(self):
        # gloo with a long timeout: it only coordinates, and ranks may finish days apart
        return Distributed(self.opts["device"], backend="gloo", timeout=timedelta(days=30))

    def decide_settings(self) -> ExtractionSettings:
        self.backbones = build_backbones(self.opts, self.ranks.device)
        return _settings(self.opts, self.backbones)

    def key(self, clip) -> str:
        return clip.key

    def outcomes(self, clips) -> Iterator:
        """Decoders ahead, batches across clips: each clip's outcome once its rows are computed."""
        device = self.ranks.device
        decoders = Decoders(clips, self.begin, self.opts, decoder_count(self.opts["decoders"], device), device)
        stream = _Stream(Batcher(self.backbones, self.opts["batch_size"]))
        try:
            for i, clip in enumerate(clips):
                yield from stream.consume(decoders.messages(i, clip))
            yield from stream.finish()
        finally:
            stream.release()
            decoders.close()

    def write(self, clip, state: ClipRows) -> int:
        """In the writer thread: one finished clip to its part."""
        meta = state.meta
        features = {m: np.concatenate(v).astype(self.dtype) for m, v in state.out.items()}
        index = np.concatenate(state.index)
        self.store.write(clip.key, features, meta.fps, meta.num_frames, index, self.settings,
                         timestamps=meta.timestamps(index), frame_rate=meta.rate)
        if meta.note:
            self.note(clip.key, meta.note, clip.path)
        return len(index)

    def failure_summary(self, totals: dict) -> dict:
        return {"output": str(self.out), "extracted": totals["done"], "rows": totals["rows"],
                "indexed": self.report.indexed}


class _Stream:
    """Decoded rows into batches that fill across clips; a clip's outcome comes out when its last
    rows are through the network (or at once when it is skipped or fails)."""

    def __init__(self, batcher: Batcher):
        self.batcher = batcher
        self.open: List[ClipRows] = []  # clips whose last rows are still being computed

    def consume(self, messages) -> Iterator:
        """One clip's messages, in order."""
        state = None
        for msg in messages:
            state = state or ClipRows(msg.clip)
            if isinstance(msg, Rows):
                self.batcher.add(state, msg.chunk)
            elif isinstance(msg, Decoded):
                state.meta, state.claim, state.ended = msg.meta, msg.claim, True
                self.open.append(state)
            elif isinstance(msg, Skipped):  # decided before any of its rows were read
                state.ended = True
                yield job.Skipped(msg.clip, msg.busy)
            else:  # Failed: rows already queued are computed and dropped
                assert isinstance(msg, Failed)
                state.failed, state.ended = msg.message, True
                self.open.append(state)
                yield job.Failed(msg.clip, msg.message)
            yield from self._complete()

    def finish(self) -> Iterator:
        """Compute the rows still batched; the outcomes of every clip then complete."""
        self.batcher.flush()
        yield from self._complete()

    def release(self) -> None:
        """Claims of the clips still open (the run stopped)."""
        for state in self.open:
            if state.claim is not None:
                state.claim.release()

    def _complete(self) -> Iterator:
        for state in [s for s in self.open if s.complete]:
            self.open.remove(state)
            if state.failed is None and state.meta is not None:
                claim, state.claim = state.claim, None  # the job's writer releases it
                yield job.Computed(state.clip, state, claim)
            elif state.claim is not None:
                state.claim.release()
