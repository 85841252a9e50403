"""Thumbnails of instance frames for reports and timelines, cut from the videos with ffmpeg.

An annotated instance is found like ``tapos-extract --annotations`` finds it: its own clip
``<key>.<ext>`` or its span of the source video ``<youtube_id>.<ext>``.
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from tapos.data.machinery.ffmpeg import VideoError, probe, read_frame_at
from tapos.data.videos import instance_clip, video_files


class Thumbnailer:
    """``Thumbnailer(videos_dir)(instance, seconds) -> RGB array or None`` (None: no video for the
    instance, or a frame that cannot be decoded; ``failures`` says why)."""

    def __init__(self, videos, height: int = 96):
        self.files = video_files(videos)
        self.height = height
        self.failures: list = []

    @functools.lru_cache(maxsize=64)
    def _info(self, path):
        return probe(path)

    def frame(self, path, seconds: float) -> np.ndarray:
        """The frame at ``seconds`` into the video ``path``."""
        return read_frame_at(path, seconds, self.height, self._info(path))

    def __call__(self, inst, seconds: float) -> Optional[np.ndarray]:
        clip = instance_clip(inst, self.files)
        if clip is None:
            self.failures.append(f"{inst.key}: no video {inst.key}.* or {inst.youtube_id}.*")
            return None
        try:
            return self.frame(clip.path, (clip.start or 0.0) + seconds)
        except VideoError as exc:
            self.failures.append(str(exc))
            return None


def save_png(img: np.ndarray, path) -> None:
    from tapos.data.io import atomic_path
    from tapos.data.machinery.plotting import pyplot

    with atomic_path(path) as tmp:
        pyplot().imsave(str(tmp), img, format="png")
