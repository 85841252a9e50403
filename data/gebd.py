"""The Kinetics-GEBD annotation layout, and converters to and from the TAPOS layout.

A GEBD file (``.json`` or ``.pkl``) maps a key to a record::

    {"num_frames": 195, "fps": 24.9, "video_duration": 7.831,
     "substages_timestamps": [[3.17, ...], [...]],   # one list per annotator, seconds
     "f1_consis": [0.8, 0.9], "f1_consis_avg": 0.85, ...}

Boundaries are internal only, in seconds from the instance start. Unknown fields are kept and
written back, so a file read and written again loses nothing.
"""
from __future__ import annotations

import json
import math
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .clock import frame_rate, frames_to_seconds, seconds_to_frames
from .errors import AnnotationError, UnsafePickleError
from .instances import UNKNOWN_ACTION, Instance, is_int, is_number, split_key, validate_entry
from .io import atomic_write_bytes, atomic_write_text, read_json, safe_load_pickle

MIN_CONSISTENCY = 0.3  # the GEBD protocol skips videos whose annotators agree less (f1_consis_avg)
_KNOWN = ("num_frames", "fps", "video_duration", "substages_timestamps", "f1_consis", "f1_consis_avg")


@dataclass
class GebdVideo:
    """One video (or instance) of a GEBD-layout file."""

    key: str
    duration: float
    annotators: list  # list of float64 arrays, seconds, in stored order
    num_frames: Optional[int] = None
    fps: Optional[float] = None
    f1_consis: Optional[list] = None
    # Missing in some derived files; treated as 1.0 (the video passes the consistency filter).
    f1_consis_avg: float = 1.0
    extra: dict = field(default_factory=dict)

    def to_record(self) -> dict:
        rec = {}
        if self.num_frames is not None:
            rec["num_frames"] = int(self.num_frames)
        if self.fps is not None:
            rec["fps"] = float(self.fps)
        rec["video_duration"] = float(self.duration)
        rec["substages_timestamps"] = [[float(t) for t in a] for a in self.annotators]
        if self.f1_consis is not None:
            rec["f1_consis"] = [float(f) for f in self.f1_consis]
        rec["f1_consis_avg"] = float(self.f1_consis_avg)
        for k, v in self.extra.items():
            rec[k] = _plain(v)
        return rec


def _plain(value):
    """Numpy values to JSON-able Python values, recursively."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _number(value, what: str) -> float:
    if not is_number(value) or not math.isfinite(float(value)):
        raise ValueError(f"field '{what}': {value!r} is not a finite number")
    return float(value)


def _video_from_record(key: str, rec) -> GebdVideo:
    if not isinstance(rec, Mapping):
        raise ValueError(f"record is {type(rec).__name__}, expected an object")
    for name in ("video_duration", "substages_timestamps"):
        if name not in rec:
            raise ValueError(f"missing field '{name}'")
    duration = _number(rec["video_duration"], "video_duration")
    if duration <= 0:
        raise ValueError(f"field 'video_duration': {duration} is not positive")
    raw = rec["substages_timestamps"]
    if isinstance(raw, np.ndarray):
        raw = list(raw) if raw.ndim == 2 else [raw]
    if not isinstance(raw, (list, tuple)) or len(raw) == 0:
        raise ValueError("field 'substages_timestamps': expected a non-empty list (one list per annotator)")
    annotators = []
    for i, ann in enumerate(raw):
        if isinstance(ann, np.ndarray):
            ann = ann.reshape(-1).tolist()
        if not isinstance(ann, (list, tuple)):
            raise ValueError(f"field 'substages_timestamps': annotator {i} is {type(ann).__name__}, expected a list")
        annotators.append(
            np.array([_number(t, f"substages_timestamps[{i}]") for t in ann], dtype=np.float64)
        )
    num_frames = rec.get("num_frames")
    if num_frames is not None:
        if not is_int(num_frames) and not (is_number(num_frames) and float(num_frames).is_integer()):
            raise ValueError(f"field 'num_frames': {num_frames!r} is not an integer")
        num_frames = int(num_frames)
    fps = rec.get("fps")
    fps = None if fps is None else _number(fps, "fps")
    consis = rec.get("f1_consis")
    if consis is not None:
        consis = [_number(c, "f1_consis") for c in np.asarray(consis, dtype=object).reshape(-1)]
    consis_avg = rec.get("f1_consis_avg", 1.0)
    consis_avg = _number(consis_avg, "f1_consis_avg")
    extra = {k: v for k, v in rec.items() if k not in _KNOWN}
    return GebdVideo(key, duration, annotators, num_frames, fps, consis, consis_avg, extra)


def gebd_from_dict(raw, path="<gebd>") -> dict:
    if not isinstance(raw, Mapping):
        raise AnnotationError(f"{path}: expected an object {{key: record}}, got {type(raw).__name__}")
    videos = {}
    for key, rec in raw.items():
        try:
            videos[str(key)] = _video_from_record(str(key), rec)
        except ValueError as exc:
            raise AnnotationError(f"{path}: video {key}: {exc}") from None
    return videos


def load_gebd(path) -> dict:
    """Read a GEBD-layout file (``.json``, or ``.pkl`` through the restricted unpickler)."""
    path = Path(path)
    if path.suffix.lower() in (".pkl", ".pickle"):
        try:
            raw = safe_load_pickle(path)
        except UnsafePickleError as exc:
            raise AnnotationError(str(exc)) from None
    else:
        raw = read_json(path, AnnotationError)
    return gebd_from_dict(raw, path)


def save_gebd(videos: Iterable[GebdVideo], path) -> None:
    """Write a GEBD-layout file; the format follows the suffix (``.pkl`` or JSON)."""
    path = Path(path)
    data = {v.key: v.to_record() for v in videos}
    if path.suffix.lower() in (".pkl", ".pickle"):
        atomic_write_bytes(path, pickle.dumps(data, protocol=4))
    else:
        atomic_write_text(path, json.dumps(data, indent=1))


def tapos_to_gebd(instances: Iterable[Instance]) -> list:
    """TAPOS instances as GEBD records, exactly as the GEBD authors' conversion computes them.

    ``fps = total_frames / (end - start)``, boundaries ``substages[1:-1] / fps`` seconds, one
    annotator, ``f1_consis = [1.0]``. The TAPOS fields (action, subset, ids, shot timestamps,
    frame boundaries) ride along as extra fields so that ``gebd_to_tapos`` restores them exactly.
    """
    out = []
    for inst in instances:
        fps = inst.fps
        bnds = list(inst.boundaries)
        out.append(
            GebdVideo(
                key=inst.key,
                duration=inst.duration,
                annotators=[frames_to_seconds(bnds, fps)],
                num_frames=inst.total_frames,
                fps=fps,
                f1_consis=[1.0],
                f1_consis_avg=1.0,
                extra={
                    "substages_myframeidx": [bnds],
                    "action": inst.action,
                    "subset": inst.subset,
                    "youtube_id": inst.youtube_id,
                    "instance_id": inst.instance_id,
                    "shot_timestamps": list(inst.shot_timestamps),
                },
            )
        )
    return out


def gebd_to_tapos(videos: Iterable[GebdVideo], subset: str = "val", annotator: int = 0) -> list:
    """GEBD records as TAPOS instances (boundaries of one annotator).

    Keys must be ``<youtube_id>_<instance_id>``. Frame boundaries come from
    ``substages_myframeidx`` when present, else ``round(t * fps)``; rounding that makes two
    boundaries equal keeps one. Action, subset and shot timestamps come from the extra fields that
    ``tapos_to_gebd`` writes; without them the action is -1 (unknown), the subset is ``subset``
    and the shot is taken to start at 0 s.
    """
    out = []
    for v in videos:
        ex = v.extra
        try:
            youtube_id, instance_id = (
                (ex["youtube_id"], ex["instance_id"]) if "youtube_id" in ex and "instance_id" in ex else split_key(v.key)
            )
        except ValueError as exc:
            raise AnnotationError(f"video {v.key}: cannot convert to TAPOS: {exc}") from None
        if annotator >= len(v.annotators):
            raise AnnotationError(f"video {v.key}: has no annotator {annotator}")
        fps = v.fps if v.fps is not None else (frame_rate(v.num_frames, v.duration) if v.num_frames else None)
        total = v.num_frames if v.num_frames is not None else (round(float(seconds_to_frames(v.duration, fps)))
                                                               if fps else None)
        if total is None or fps is None:
            raise AnnotationError(f"video {v.key}: needs 'num_frames' or 'fps' to convert seconds to frames")
        frame_idx = ex.get("substages_myframeidx")
        if frame_idx is not None and annotator < len(frame_idx):
            bnds = [int(b) for b in frame_idx[annotator]]
        else:
            bnds = [int(round(float(f))) for f in seconds_to_frames(v.annotators[annotator], fps)]
        bnds = sorted({b for b in bnds if 0 < b < total})
        shot = ex.get("shot_timestamps")
        if shot is None:
            shot = [0.0, v.duration]
        entry = {
            "action": int(ex.get("action", UNKNOWN_ACTION)),
            "substages": [0] + bnds + [int(total)],
            "total_frames": int(total),
            "shot_timestamps": [float(t) for t in shot],
            "subset": ex.get("subset", subset),
        }
        try:
            out.append(validate_entry(youtube_id, instance_id, entry))
        except ValueError as exc:
            raise AnnotationError(f"video {v.key}: cannot convert to TAPOS: {exc}") from None
    return out
