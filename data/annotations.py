"""The TAPOS annotation file (``tapos_annotation.json``) as typed instance records.

The released file is ``{youtube_id: {instance_id: entry}}`` with entries such as::

    {"action": 11, "substages": [0, 79, 195], "total_frames": 195,
     "shot_timestamps": [43.36, 53.48], "subset": "train"}

``instance_id`` is ``s{shot:05d}_{a}_{b:03d}_{c}_{d:03d}``: the instance runs from ``a.b`` s to
``c.d`` s relative to the shot, which starts at ``shot_timestamps[0]`` s of the source video.
The frame rate is not stored; it is ``total_frames / (end - start)``. ``substages`` are frame
indices relative to the instance start whose first and last entries mark the instance itself, so
the sub-action boundaries are ``substages[1:-1]``. An instance is keyed globally as
``f"{youtube_id}_{instance_id}"`` (YouTube ids contain ``_``: never split a key on it).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Iterable

from .errors import AnnotationError
from .instances import (INSTANCE_ID_RE, REQUIRED_FIELDS, SPLITS, SUBSETS, UNKNOWN_ACTION, Annotations, Instance,
                        parse_instance_id, rescale_boundaries, split_key, validate_entry)
from .io import atomic_write_text
from .layouts import gebd_annotations, layout_of, read_raw

# the primitives are defined in .instances; this module is where users import them from
__all__ = ["INSTANCE_ID_RE", "REQUIRED_FIELDS", "SPLITS", "SUBSETS", "UNKNOWN_ACTION", "Annotations", "Instance",
           "annotations_from_dict", "annotations_to_dict", "load_annotations", "parse_instance_id",
           "rescale_boundaries", "save_annotations", "split_key", "validate_entry"]


def annotations_from_dict(raw, path="<annotations>", lenient: bool = False) -> Annotations:
    """Build records from the released layout already parsed from JSON; see ``load_annotations``."""
    if not isinstance(raw, Mapping):
        raise AnnotationError(
            f"{path}: expected an object {{youtube_id: {{instance_id: entry}}}}, got {type(raw).__name__}"
        )
    instances, skipped = [], []
    for youtube_id, entries in raw.items():
        if not isinstance(entries, Mapping):
            reason = f"youtube id {youtube_id!r}: expected an object of instances, got {type(entries).__name__}"
            if not lenient:
                raise AnnotationError(f"{path}: {reason}")
            skipped.append(reason)
            continue
        for instance_id, entry in entries.items():
            try:
                instances.append(validate_entry(str(youtube_id), str(instance_id), entry))
            except ValueError as exc:
                where = f"instance {youtube_id}_{instance_id}"
                if not lenient:
                    raise AnnotationError(f"{path}: {where}: {exc}") from None
                skipped.append(f"{where}: {exc}")
    return Annotations(instances, Path(path) if path else None, skipped)


def load_annotations(path, lenient: bool = False) -> Annotations:
    """Load ``tapos_annotation.json`` as released, or a Kinetics-GEBD-layout file (``.json`` or
    ``.pkl``; told apart by content, see :mod:`tapos.data.layouts`). An ``Annotations`` already
    loaded is returned as it is, so every function may take either.

    Strict mode stops at the first bad instance with an ``AnnotationError`` naming the file,
    the instance and the field. ``lenient=True`` skips bad instances instead; their reasons are in
    ``Annotations.skipped`` and a one-line count is written to stderr.
    """
    if isinstance(path, Annotations):
        return path
    raw = read_raw(path)
    if layout_of(raw, path) == "gebd":
        return gebd_annotations(raw, path)
    annotations = annotations_from_dict(raw, path, lenient)
    if annotations.skipped:
        print(
            f"warning: {path}: skipped {len(annotations.skipped)} malformed instance(s), "
            f"first: {annotations.skipped[0]}",
            file=sys.stderr,
        )
    return annotations


def annotations_to_dict(instances: Iterable[Instance]) -> dict:
    """The released layout for a set of instances (grouped by YouTube id, order kept)."""
    out: dict = {}
    for inst in instances:
        out.setdefault(inst.youtube_id, {})[inst.instance_id] = inst.to_entry()
    return out


def save_annotations(instances: Iterable[Instance], path) -> None:
    """Write instances in the released layout (atomically: a crash leaves the old file)."""
    atomic_write_text(path, json.dumps(annotations_to_dict(instances), indent=1))
