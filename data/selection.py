"""Held-out selection: where epochs and ``"auto"`` options are chosen, so that the reported
split is never read while training.

``dev`` (the default) is carved from ``train``: whole source videos (TAPOS splits are grouped by
YouTube id, so instances of one video never straddle two splits), chosen by a hash of their id
until they hold ``dev_fraction`` of the training instances. The hash makes the carve deterministic
and independent of the seed and of the file order, and a video keeps its side when others are
added. ``val`` selects on the annotation file's val split (the paper's setup, which then must not
be reported); ``none`` selects nothing: the last epoch, and the first candidate of every
``"auto"`` option.
"""
from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass
from typing import Optional

from .annotations import Annotations
from .errors import TaposError
from .gebd import MIN_CONSISTENCY

SELECT_ON = ("dev", "val", "none")
DEV_FRACTION = 0.1  # share of the training instances held out as dev


def _rank(youtube_id: str) -> str:
    return hashlib.sha256(youtube_id.encode()).hexdigest()


def carve_dev(train: Annotations, fraction: float = DEV_FRACTION) -> tuple:
    """``(train without dev, dev)`` from the instances of ``train`` (see the module)."""
    if not 0 < fraction < 1:
        raise TaposError(f"dev fraction {fraction} must lie strictly between 0 and 1")
    videos: dict = {}
    for inst in train.values():
        videos.setdefault(inst.youtube_id, []).append(inst)
    if len(videos) < 2:
        raise TaposError(f"{train.path}: the train split has {len(videos)} source video(s); a dev split needs "
                         "two or more (use --select-on none, or val)")
    target = max(1, math.ceil(fraction * len(train)))
    dev_ids, held = set(), 0
    for yid in sorted(videos, key=_rank):
        if held >= target or len(dev_ids) == len(videos) - 1:
            break
        dev_ids.add(yid)
        held += len(videos[yid])
    rest = Annotations((i for i in train.values() if i.youtube_id not in dev_ids), train.path)
    dev = Annotations((i for i in train.values() if i.youtube_id in dev_ids), train.path)
    return rest, dev


@dataclass
class Selection:
    """What a training run fits on and what it selects on."""

    split: str                      # one of SELECT_ON
    fit: Annotations                # the instances fitted on
    select: Optional[Annotations]   # the instances epochs and options are chosen on (None: none)
    dev_fraction: Optional[float] = None

    def record(self) -> dict:
        """For config.json: the selection split and, for dev, its instances (count and hash)."""
        out = {"select_on": self.split, "fit_instances": len(self.fit)}
        if self.select is not None:
            keys = sorted(self.select)
            out.update({"select_instances": len(keys),
                        "select_keys_sha256": hashlib.sha256("\n".join(keys).encode()).hexdigest()})
        if self.split == "dev":
            out["dev_fraction"] = self.dev_fraction
            out["dev_videos"] = sorted({self.select[k].youtube_id for k in self.select})
        return out


def consistent(annotations: Annotations) -> Annotations:
    """The instances whose annotators agree enough to learn from: GEBD videos whose
    ``f1_consis_avg`` is below ``MIN_CONSISTENCY`` are left out (the GEBD protocol leaves them out
    of evaluation); TAPOS instances all stay. A one-line note on stderr counts those left out."""
    keep = [i for i in annotations.values() if getattr(i, "consistency", 1.0) >= MIN_CONSISTENCY]
    if len(keep) < len(annotations):
        print(f"note: {annotations.path}: {len(annotations) - len(keep)} video(s) with f1_consis_avg below "
              f"{MIN_CONSISTENCY} left out of training (GEBD protocol)", file=sys.stderr)
    return Annotations(keep, annotations.path)


def selection(annotations: Annotations, select_on: str = "dev", dev_fraction: float = DEV_FRACTION) -> Selection:
    """The fitting and selection instances of a run (``train`` only, except ``select_on="val"``;
    inconsistently annotated GEBD videos left out, :func:`consistent`)."""
    if select_on not in SELECT_ON:
        raise TaposError(f"unknown selection split {select_on!r} (expected one of {', '.join(SELECT_ON)})")
    train = consistent(annotations.split("train"))
    if not len(train):
        raise TaposError(f"{annotations.path}: split 'train' has no instances")
    if select_on == "dev":
        fit, dev = carve_dev(train, dev_fraction)
        return Selection("dev", fit, dev, dev_fraction)
    if select_on == "val":
        val = consistent(annotations.split("val"))
        if not len(val):
            raise TaposError(f"{annotations.path}: --select-on val but split 'val' has no instances")
        return Selection("val", train, val)
    return Selection("none", train, None)
