"""Where the videos are: the videos of a folder with their keys, and where an annotated instance
is (its own clip ``<key>.<ext>``, or its span of the source video ``<youtube_id>.<ext>``).

Extraction, the frames TSN and the report's thumbnails all find videos this way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from .annotations import load_annotations
from .errors import TaposError


@dataclass(frozen=True)
class Clip:
    """A whole video, or the instance ``[start, start + duration)`` of one, under ``key``."""

    key: str
    path: Path
    start: Optional[float] = None         # seconds into the video (the source's own clock)
    duration: Optional[float] = None      # seconds


VIDEO_EXTENSIONS = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp",
                    ".ts", ".mts", ".ogv"}
KEY_SEPARATOR = "__"  # replaces "/" when a video's path below the input folder becomes its key


def find_videos(root) -> List[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise TaposError(f"{root}: no such file or folder")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def video_key(path: Path, root: Path) -> str:
    """``root/a/b.mp4`` -> ``a__b``: the path below the input folder, no extension, ``/`` -> ``__``."""
    if root.is_file():
        return path.stem
    rel = path.relative_to(root).with_suffix("")
    return KEY_SEPARATOR.join(rel.parts)


def clips_from_folder(root) -> List[Clip]:
    """Every video below ``root`` (or ``root`` itself when it is a file), keyed by its path."""
    root = Path(root)
    videos = find_videos(root)
    if not videos:
        raise TaposError(f"{root}: no videos found (extensions: {', '.join(sorted(VIDEO_EXTENSIONS))})")
    clips, seen = [], {}
    for path in videos:
        key = video_key(path, root)
        if key in seen:
            raise TaposError(f"{path}: same key {key!r} as {seen[key]} (same name, different extension?)")
        seen[key] = path
        clips.append(Clip(key, path))
    return clips


def video_files(videos) -> dict:
    """``{stem: path}`` of the videos below ``videos`` (the first of equal stems)."""
    files = {}
    for path in find_videos(videos):
        files.setdefault(path.stem, path)
    return files


def instance_clip(inst, files: dict) -> Optional[Clip]:
    """Where an annotated instance is: its own clip ``<key>.<ext>`` when there is one, else the
    span of its source video ``<youtube_id>.<ext>``; None when ``files`` has neither."""
    if inst.key in files:
        return Clip(inst.key, files[inst.key])
    if inst.youtube_id in files:
        return Clip(inst.key, files[inst.youtube_id], start=inst.start, duration=inst.duration)
    return None


def clips_from_annotations(annotations, videos, split: Optional[str] = None) -> Tuple[List[Clip], List[Tuple[str, str]]]:
    """TAPOS instances, each from ``<videos>/<key>.<ext>`` when that clip exists (instances already
    cut), else cut from its source video ``<videos>/<youtube_id>.<ext>`` (searched recursively).

    Returns the clips and, for instances with neither file, ``(key, reason)``.
    """
    ann = load_annotations(annotations)
    if split:
        ann = ann.split(split)
    files = video_files(videos)
    clips, missing = [], []
    for inst in ann.values():
        clip = instance_clip(inst, files)
        if clip is not None:
            clips.append(clip)
        else:
            missing.append((inst.key, f"no source video {inst.youtube_id}.* in {videos}"))
    return clips, missing
