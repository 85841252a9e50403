"""The primitives of an annotation: one instance's record (:class:`Instance`), a set of them
(:class:`Annotations`), the instance id and key rules and the validation of one entry.

Every annotation module builds on these, in one direction: ``instances`` <- ``gebd`` <- ``layouts``
<- ``annotations`` (the loader). The layout of the released file is described in
:mod:`tapos.data.annotations`."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from .clock import frame_rate, frames_to_seconds
from .errors import AnnotationError


SUBSETS = ("train", "val", "test")
SPLITS = SUBSETS + ("all",)  # what commands accept: one subset or every instance
REQUIRED_FIELDS = ("action", "substages", "total_frames", "shot_timestamps", "subset")
INSTANCE_ID_RE = re.compile(r"^s(\d+)_(\d+)_(\d{3})_(\d+)_(\d{3})$")
UNKNOWN_ACTION = -1  # action of an instance converted from a file that carries no class


def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def parse_instance_id(instance_id: str) -> tuple[int, float, float]:
    """Return ``(shot, start, end)`` of an instance id, times in seconds relative to the shot.

    Times are parsed from the id's text (``float("7.931")``), as the GEBD conversion scripts do,
    so that derived durations agree with theirs to the last bit.
    """
    match = INSTANCE_ID_RE.match(instance_id)
    if match is None:
        raise ValueError(
            f"malformed instance id {instance_id!r} (expected s<shot>_<sec>_<msec:3>_<sec>_<msec:3>)"
        )
    shot, a, b, c, d = match.groups()
    return int(shot), float(f"{a}.{b}"), float(f"{c}.{d}")


def rescale_boundaries(frames, from_total: int, to_total: int) -> np.ndarray:
    """Rescale frame indices from a clip of ``from_total`` frames to one of ``to_total`` frames.

    This is the rule used when a re-downloaded video's frame count differs from the annotation's:
    ``idx * to_total / from_total`` (float64, not rounded).
    """
    return np.asarray(frames, dtype=np.float64) * to_total / from_total


@dataclass(frozen=True)
class Instance:
    """One annotated action instance."""

    youtube_id: str
    instance_id: str
    action: int
    subset: str
    total_frames: int
    substages: tuple
    shot_timestamps: tuple

    @property
    def key(self) -> str:
        """Global key ``f"{youtube_id}_{instance_id}"`` (feature cache, predictions, GEBD)."""
        return f"{self.youtube_id}_{self.instance_id}"

    @property
    def shot(self) -> int:
        return parse_instance_id(self.instance_id)[0]

    @property
    def start_in_shot(self) -> float:
        return parse_instance_id(self.instance_id)[1]

    @property
    def end_in_shot(self) -> float:
        return parse_instance_id(self.instance_id)[2]

    @property
    def duration(self) -> float:
        """Seconds, ``end - start`` of the instance id."""
        _, start, end = parse_instance_id(self.instance_id)
        return end - start

    @property
    def start(self) -> float:
        """Start in seconds within the source video."""
        return float(self.shot_timestamps[0]) + self.start_in_shot

    @property
    def end(self) -> float:
        """End in seconds within the source video."""
        return float(self.shot_timestamps[0]) + self.end_in_shot

    @property
    def fps(self) -> float:
        """Frame rate of the annotation, derived as ``total_frames / duration``."""
        return frame_rate(self.total_frames, self.duration)

    @property
    def boundaries(self) -> tuple:
        """Internal sub-action boundaries ``substages[1:-1]`` (frames from the instance start)."""
        return tuple(self.substages[1:-1])

    @property
    def num_subactions(self) -> int:
        return len(self.substages) - 1

    def boundaries_seconds(self) -> list:
        """Boundaries in seconds from the instance start (``frame / fps``, as GEBD files store)."""
        return frames_to_seconds(self.boundaries, self.fps).tolist()

    def to_entry(self) -> dict:
        """The instance's entry in the released JSON layout."""
        return {
            "action": int(self.action),
            "substages": [int(s) for s in self.substages],
            "total_frames": int(self.total_frames),
            "shot_timestamps": [float(t) for t in self.shot_timestamps],
            "subset": self.subset,
        }


def split_key(key: str) -> tuple[str, str]:
    """Split a global key into ``(youtube_id, instance_id)``.

    The instance id is recognised from the right (it has exactly four ``_``), because YouTube ids
    may contain ``_`` themselves.
    """
    parts = key.rsplit("_", 5)
    if len(parts) == 6:
        youtube_id, instance_id = parts[0], "_".join(parts[1:])
        if youtube_id and INSTANCE_ID_RE.match(instance_id):
            return youtube_id, instance_id
    raise ValueError(f"key {key!r} is not <youtube_id>_<instance_id>")


def validate_entry(youtube_id: str, instance_id: str, entry) -> Instance:
    """Check one entry of the released layout and return its record.

    Raises ``ValueError`` with a short reason naming the field; the loader adds file and key.
    """
    if not isinstance(entry, Mapping):
        raise ValueError(f"entry is {type(entry).__name__}, expected an object")
    if not youtube_id or "/" in youtube_id:
        raise ValueError(f"malformed youtube id {youtube_id!r}")
    _, start, end = parse_instance_id(instance_id)
    if not end > start:
        raise ValueError(f"malformed instance id {instance_id!r} (end {end} s is not after start {start} s)")
    for field in REQUIRED_FIELDS:
        if field not in entry:
            raise ValueError(f"missing field '{field}'")
    action = entry["action"]
    if not is_int(action):
        raise ValueError(f"field 'action': {action!r} is not an integer")
    total = entry["total_frames"]
    if not is_int(total) or total <= 0:
        raise ValueError(f"field 'total_frames': {total!r} is not a positive integer")
    subset = entry["subset"]
    if subset not in SUBSETS:
        raise ValueError(f"field 'subset': unknown subset {subset!r} (expected one of {', '.join(SUBSETS)})")
    shot = entry["shot_timestamps"]
    if (
        not isinstance(shot, (list, tuple))
        or len(shot) != 2
        or not all(is_number(t) and math.isfinite(t) for t in shot)
    ):
        raise ValueError(f"field 'shot_timestamps': {shot!r} is not a pair of numbers")
    substages = entry["substages"]
    if not isinstance(substages, (list, tuple)) or len(substages) < 2:
        raise ValueError(f"field 'substages': {substages!r} is not a list of at least two frame indices")
    for i, s in enumerate(substages):
        if not is_int(s):
            raise ValueError(f"field 'substages': index {i} value {s!r} is not an integer")
        if not 0 <= s <= total:
            raise ValueError(f"field 'substages': index {i} value {s} is outside [0, total_frames={total}]")
        if i and s <= substages[i - 1]:
            raise ValueError(
                f"field 'substages': not increasing at index {i} ({s} after {substages[i - 1]})"
            )
    return Instance(
        youtube_id=youtube_id,
        instance_id=instance_id,
        action=int(action),
        subset=subset,
        total_frames=int(total),
        substages=tuple(int(s) for s in substages),
        shot_timestamps=(float(shot[0]), float(shot[1])),
    )


class Annotations(Mapping):
    """Instances of an annotation file by global key, in file order.

    ``skipped`` lists ``"key: reason"`` for instances dropped in lenient mode.
    """

    def __init__(self, instances: Iterable[Instance], path: Optional[Path] = None, skipped=()):
        self._by_key = {}
        for inst in instances:
            self._by_key[inst.key] = inst
        self.path = path
        self.skipped = list(skipped)

    def __getitem__(self, key: str) -> Instance:
        return self._by_key[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def split(self, subset: Optional[str]) -> "Annotations":
        """The instances of one subset (``None`` or ``"all"``: every instance)."""
        if subset in (None, "all"):
            return self
        if subset not in SUBSETS:
            raise AnnotationError(f"unknown split {subset!r} (expected one of {', '.join(SUBSETS)} or all)")
        # a GEBD video whose file names no subset is in every split (tapos.data.layouts)
        return Annotations((i for i in self.values() if i.subset in (subset, "all")), self.path)

    @property
    def actions(self) -> list:
        return sorted({i.action for i in self.values()})


def boundary_positions(instances) -> np.ndarray:
    """Every internal boundary as a fraction of its instance's length (0..1); ``instances``:
    ``Annotations`` or any iterable of ``Instance`` records."""
    records = instances.values() if isinstance(instances, Annotations) else instances
    pos = [b / i.total_frames for i in records for b in i.boundaries]
    return np.asarray(pos, dtype=np.float64)
