"""Which layout an annotation file is in, and Kinetics-GEBD videos as the instances every stage reads.

:func:`tapos.data.annotations.load_annotations` reads both layouts through :func:`read_layout`,
told apart by content (a GEBD record has ``video_duration`` and ``substages_timestamps``; a TAPOS
file is ``{youtube_id: {instance_id: entry}}``), ``.pkl`` through the restricted unpickler. A GEBD
video becomes a :class:`GebdInstance` keyed by its GEBD key, with:

- **one target** (:data:`TARGET_RULE`): the annotator with the most boundaries (the first on
  ties), its seconds turned into frames of ``num_frames / video_duration`` (``fps`` or
  :data:`NOMINAL_RATE` frames per second when ``num_frames`` is absent), or its
  ``substages_myframeidx`` when the file has them;
- **its consistency** ``f1_consis_avg``: training skips videos below ``tapos.data.gebd.MIN_CONSISTENCY`` (0.3)
  (:func:`tapos.data.selection.selection`), as the GEBD protocol skips them in evaluation;
- **its class**: an integer ``action``, else ``label``/``class`` (names are numbered in sorted
  order), else the folder of ``path_video`` (Kinetics' ``<class>/<video>.mp4``), but only when the
  file's folders give at least two distinct classes (TAPOS' GEBD files keep every video in one
  ``videos/`` folder, which is no class); without any, ``UNKNOWN_ACTION`` (TransParser then
  trains without its class loss; ``tapos-tsn`` and ``tapos-parse analyze`` refuse, see
  :func:`require_classes`);
- **its subset**: its ``subset`` field, else the split the file name names as a word (``train``,
  ``val``, ``validation``, ``test``: ``k400_val_raw_annotation.pkl`` is val), else ``"all"``: it
  belongs to every split.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .clock import frame_rate, grid_frames
from .errors import AnnotationError, TaposError, UnsafePickleError
from .gebd import gebd_from_dict
from .instances import INSTANCE_ID_RE, SUBSETS, UNKNOWN_ACTION, Annotations, Instance, split_key
from .io import read_json, safe_load_pickle

TARGET_RULE = "the annotator with the most boundaries (first on ties)"
NOMINAL_RATE = 30.0  # frames per second of a GEBD video whose record gives neither num_frames nor fps
ANY_SUBSET = "all"   # the subset of a GEBD video that names none: it is in every split
_SPLIT_WORDS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


@dataclass(frozen=True)
class GebdInstance(Instance):
    """A Kinetics-GEBD video (or instance) read as an instance; see the module."""

    video: str = ""            # its key in the GEBD file
    seconds: float = 0.0       # video_duration
    consistency: float = 1.0   # f1_consis_avg
    annotator: int = 0         # whose boundaries are the target

    @property
    def key(self) -> str:
        return self.video

    @property
    def duration(self) -> float:
        return self.seconds

    @property
    def _tapos_id(self) -> bool:
        return bool(INSTANCE_ID_RE.match(self.instance_id))

    @property
    def shot(self) -> int:
        return super().shot if self._tapos_id else 0

    @property
    def start_in_shot(self) -> float:
        return super().start_in_shot if self._tapos_id else 0.0

    @property
    def end_in_shot(self) -> float:
        return self.start_in_shot + self.seconds


def read_raw(path):
    """The parsed content of an annotation file (``.pkl``: restricted unpickler; else JSON)."""
    path = Path(path)
    if path.suffix.lower() in (".pkl", ".pickle"):
        try:
            return safe_load_pickle(path)
        except UnsafePickleError as exc:
            raise AnnotationError(str(exc)) from None
    return read_json(path, AnnotationError)


def layout_of(raw, path="<annotations>") -> str:
    """``"gebd"`` or ``"tapos"``, from the first record of a parsed annotation file."""
    if not isinstance(raw, Mapping):
        raise AnnotationError(f"{path}: expected an object of videos, got {type(raw).__name__}")
    first = next(iter(raw.values()), None)
    if isinstance(first, Mapping) and ("substages_timestamps" in first or "video_duration" in first):
        return "gebd"
    return "tapos"


def gebd_annotations(raw, path) -> Annotations:
    """A parsed GEBD-layout file as :class:`Annotations` of :class:`GebdInstance`."""
    videos = gebd_from_dict(raw, path)
    labels = {k: _label(v.extra) for k, v in videos.items()}
    folder_keys = [k for k, v in videos.items() if labels[k] is None and _folder(v.extra) is not None]
    if len({_folder(videos[k].extra) for k in folder_keys}) >= 2:  # one folder for all is no class
        labels.update({k: _folder(videos[k].extra) for k in folder_keys})
    names = sorted({lab for lab in labels.values() if isinstance(lab, str)})
    default_subset = _subset_of_name(Path(str(path)).stem)
    out = []
    for key, v in videos.items():
        lab = labels[key]
        action = names.index(lab) if isinstance(lab, str) else (UNKNOWN_ACTION if lab is None else int(lab))
        subset = v.extra.get("subset") if v.extra.get("subset") in SUBSETS else default_subset
        out.append(_instance(v, action, subset, path))
    return Annotations(out, Path(str(path)))


def _label(extra: Mapping):
    """An explicit class field (``action``, ``label``, ``class``), else ``None``."""
    for name in ("action", "label", "class"):
        value = extra.get(name)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
            return int(value)
        if isinstance(value, str) and value:
            return value
    return None


def _folder(extra: Mapping):
    """The folder of ``path_video`` (Kinetics' ``<class>/<video>.mp4``), else ``None``."""
    parts = Path(str(extra.get("path_video", ""))).parts
    return parts[-2] if len(parts) >= 2 else None


def _subset_of_name(stem: str) -> str:
    for word in re.split(r"[^a-z]+", stem.lower()):
        if word in _SPLIT_WORDS:
            return _SPLIT_WORDS[word]
    return ANY_SUBSET


def _instance(v, action: int, subset: str, path) -> GebdInstance:
    rate = frame_rate(v.num_frames, v.duration) if v.num_frames else (v.fps or NOMINAL_RATE)
    total = int(v.num_frames) if v.num_frames else max(1, grid_frames(v.duration, rate))
    annotator = max(range(len(v.annotators)), key=lambda i: (len(v.annotators[i]), -i))
    frame_idx = v.extra.get("substages_myframeidx")
    if isinstance(frame_idx, (list, tuple)) and annotator < len(frame_idx):
        bnds = [int(round(float(b))) for b in np.asarray(frame_idx[annotator], dtype=np.float64).reshape(-1)]
    else:
        # t * total / duration, in this order (not the clock's t * rate, rate = total / duration):
        # the product can differ in the last bit and move a boundary that lies at a half frame
        bnds = [int(round(t * total / v.duration)) for t in v.annotators[annotator]]
    bnds = sorted({b for b in bnds if 0 < b < total})
    try:
        youtube_id, instance_id = split_key(v.key)
    except ValueError:
        youtube_id, instance_id = str(v.extra.get("youtube_id", v.key)), ""
    shot = v.extra.get("shot_timestamps")
    shot = (float(shot[0]), float(shot[1])) if isinstance(shot, (list, tuple)) and len(shot) == 2 else (0.0, v.duration)
    if not youtube_id or "/" in youtube_id:
        raise AnnotationError(f"{path}: video {v.key}: malformed key")
    return GebdInstance(youtube_id, instance_id, action, subset, total, (0, *bnds, total), shot,
                        video=v.key, seconds=v.duration, consistency=v.f1_consis_avg, annotator=annotator)


def require_classes(annotations: Annotations, who: str) -> None:
    """A one-line error when some instance has no class (``who`` needs them)."""
    unknown = [k for k, inst in annotations.items() if inst.action == UNKNOWN_ACTION]
    if unknown:
        raise TaposError(f"{annotations.path}: {len(unknown)} of {len(annotations)} videos carry no class label "
                         f"(first: {unknown[0]}; a GEBD record needs 'action', 'label' or 'path_video' "
                         f"in per-class folders); "
                         f"{who} classifies actions and needs them")
