"""``tapos-data check-videos``: before spending GPU hours on extraction, does every annotated
instance have a source video that decodes, lasts through the instance and its shot, and runs at
the annotation's rate?

Each instance is found as extraction finds it (:func:`tapos.data.videos.instance_clip`: its own
clip ``<key>.<ext>``, else its span of ``<youtube_id>.<ext>``) and gets one status, the first
that applies: ``missing``, ``undecodable`` (it does not probe, has no frames or is truncated:
:func:`tapos.data.machinery.ffmpeg.probe_complete`, what fetch-videos checks), ``too short`` (it ends
before the instance or before the instance's shot ends), ``wrong rate`` (its frames drift from
the annotation's by more than 1% and more than a frame over the instance), else ``ok``.
A wrong rate does not stop extraction (it cuts by time, and the clock moves boundaries between
the source's frames and the annotation's), but the user should know how many there are.
"""
from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional

from ..annotations import SUBSETS, load_annotations
from ..clock import frames_to_seconds, grid_frames, row_frames
from ..errors import TaposError
from .ffmpeg import RATE_TOLERANCE, VideoError, VideoInfo, probe_complete
from .progress import track
from ..io import atomic_write_text
from ..videos import Clip, instance_clip, video_files

STATUSES = ("ok", "missing", "undecodable", "too short", "wrong rate")
FLAGS = ("rescaled", "irregular timing")  # counted beside the status, whatever it is
# A source may end this much before an instance or shot end and still cover it: shot times are
# given to 10 ms, and a video's duration counts its last frame whole (plus one frame, per source)
TIME_ROUNDING = 0.01
RESCALE_FRAMES = 0.5  # a drift this large moves some boundary to another annotation frame


@dataclass
class InstanceCheck:
    key: str
    youtube_id: str
    subset: str
    status: str
    reason: str = ""
    video: Optional[str] = None
    annotation_fps: float = 0.0
    source_fps: Optional[float] = None
    source_duration: Optional[float] = None
    drift_frames: Optional[float] = None  # see frame_drift
    rescaled: bool = False                # drift over RESCALE_FRAMES: annotation frames are moved
    irregular: bool = False               # the source's frames are not evenly timed (rate_mismatch)


def check_videos(annotations, videos, split: Optional[str] = None, jobs: int = 4,
                 progress: Optional[bool] = None) -> List[InstanceCheck]:
    """One :class:`InstanceCheck` per instance of ``annotations`` (or of ``split``)."""
    ann = load_annotations(annotations).split(split)
    if len(ann) == 0:
        raise TaposError(f"{annotations}: no instances" + (f" in split {split}" if split not in (None, "all") else ""))
    files = video_files(videos)
    clips = {key: instance_clip(inst, files) for key, inst in ann.items()}
    infos = probe_all({clip.path for clip in clips.values() if clip is not None}, jobs, progress)
    return [check_instance(inst, clips[key], infos, videos) for key, inst in ann.items()]


def probe_all(paths, jobs: int = 4, progress: Optional[bool] = None) -> Dict[Path, object]:
    """path -> its VideoInfo, or the VideoError that says why it is not a complete video."""
    def one(path):
        try:
            return path, probe_complete(path)
        except VideoError as exc:
            return path, exc

    show = sys.stderr.isatty() if progress is None else progress
    paths = sorted(paths)
    with ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:
        results = track(pool.map(one, paths), total=len(paths), desc="check", unit="video", enabled=show)
        return dict(results)


def check_instance(inst, clip: Optional[Clip], infos: dict, videos=None) -> InstanceCheck:
    """The status of one instance whose video is ``clip`` (None: none found)."""
    check = InstanceCheck(inst.key, inst.youtube_id, inst.subset, "ok", annotation_fps=inst.fps)
    if clip is None:
        where = f" in {videos}" if videos is not None else ""
        return replace(check, status="missing", reason=f"no {inst.youtube_id}.<ext> (or {inst.key}.<ext>){where}")
    info = infos[clip.path]
    check.video = str(clip.path)
    if isinstance(info, VideoError):
        return replace(check, status="undecodable", reason=str(info))
    drift = frame_drift(inst, info.fps)
    check = replace(check, source_fps=info.fps, source_duration=info.duration, drift_frames=round(drift, 3),
                    rescaled=drift > RESCALE_FRAMES, irregular=bool(info.rate_mismatch or info.variable_rate))
    short = too_short(inst, clip, info)
    if short:
        return replace(check, status="too short", reason=short)
    if drift > max(1.0, RATE_TOLERANCE * inst.total_frames):
        return replace(check, status="wrong rate", reason=_rate_reason(inst, info.fps))
    return check


def frame_drift(inst, rate: float) -> float:
    """How far, in annotation frames, the instance's last frame at the source's ``rate`` lies from
    the annotation frame of the same index, by the clock (a frame ``t`` s into the instance is
    annotation frame ``t * total_frames / duration``): 0 when the rates agree."""
    frames = grid_frames(inst.duration, rate)  # the instance's frames at the source's rate
    last = max(frames - 1, 0)
    return float(abs(row_frames(frames_to_seconds([last], rate), inst.fps)[0] - last))


def _rate_reason(inst, rate: float) -> str:
    return (f"source at {rate:g} fps, annotation at {inst.fps:.3f} fps: {grid_frames(inst.duration, rate)} source "
            f"frames for {inst.total_frames} annotated ones (extraction cuts by time; boundaries move to the "
            f"source's frames)")


def too_short(inst, clip: Clip, info: VideoInfo) -> Optional[str]:
    """Why the video ends too early for the instance (or its shot), or None."""
    end = info.duration + float(frames_to_seconds(1, info.fps)) + TIME_ROUNDING  # one frame past the last
    if clip.start is None:  # the instance's own clip
        if end < inst.duration:
            return f"{info.duration:.2f} s long, the instance lasts {inst.duration:.2f} s"
        return None
    if end < clip.start + clip.duration:
        return (f"ends at {info.duration:.2f} s, inside the instance ({clip.start:.2f}-{clip.start + clip.duration:.2f}"
                f" s): extraction fails or cuts it short")
    shot_end = inst.shot_timestamps[1]
    if end < shot_end:
        return (f"ends at {info.duration:.2f} s, before its shot ends ({shot_end:.2f} s): not the video that was "
                f"annotated?")
    return None


def summary_table(checks: List[InstanceCheck]):
    """Counts per split (and all): instances, each status, and the flags."""
    import pandas as pd

    splits = [s for s in SUBSETS if any(c.subset == s for c in checks)]
    rows = {split: _counts([c for c in checks if c.subset == split]) for split in splits}
    if len(splits) != 1:
        rows["all"] = _counts(checks)
    return pd.DataFrame.from_dict(rows, orient="index")


def _counts(checks: List[InstanceCheck]) -> dict:
    row = {"instances": len(checks)}
    row.update({status: sum(c.status == status for c in checks) for status in STATUSES})
    row["rescaled"] = sum(c.rescaled for c in checks)
    row["irregular timing"] = sum(c.irregular for c in checks)
    return row


def write_report(checks: List[InstanceCheck], path, annotations=None, videos=None) -> None:
    """The checks as JSON: the table (``splits``) and every instance (atomically written)."""
    table = summary_table(checks)
    data = {"annotations": str(annotations) if annotations else None, "videos": str(videos) if videos else None,
            "splits": {split: {k: int(v) for k, v in row.items()} for split, row in table.iterrows()},
            "instances": [asdict(c) for c in checks]}
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
