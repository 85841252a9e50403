"""The one place that chooses and calls ffmpeg.

Choice: ``$TAPOS_FFMPEG`` if set, else ``ffmpeg`` on PATH (with its ``ffprobe``), else the static
binary shipped in the ``imageio-ffmpeg`` wheel, so ``pip install`` alone gives a working ffmpeg.
That binary has no ffprobe: ``probe`` then reads ffmpeg's own stream report and counts frames by
remuxing to the null muxer. Commands are built with ffmpeg-python.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import ffmpeg as ffmpeg_python
import numpy as np

from .errors import TaposError


class VideoError(TaposError):
    """A video that cannot be probed, decoded or encoded."""


@functools.lru_cache(maxsize=None)
def ffmpeg_binary() -> str:
    env = os.environ.get("TAPOS_FFMPEG")
    if env:
        return env
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - it is a dependency
        raise VideoError("no ffmpeg: install ffmpeg or the imageio-ffmpeg package") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=None)
def ffprobe_binary() -> Optional[str]:
    """ffprobe next to the chosen ffmpeg, or on PATH; None for imageio-ffmpeg's binary."""
    env = os.environ.get("TAPOS_FFPROBE")
    if env:
        return env
    sibling = Path(ffmpeg_binary()).with_name("ffprobe")
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    if os.environ.get("TAPOS_FFMPEG") is None and shutil.which("ffmpeg"):
        return shutil.which("ffprobe")
    return None


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    rotation: int = 0  # degrees the player rotates the stored picture (display matrix)


def _parse_rate(text: str) -> float:
    if "/" in text:
        num, den = text.split("/")
        return float(num) / float(den) if float(den) else 0.0
    return float(text)


def _probe_ffprobe(path: Path, binary: str) -> VideoInfo:
    data = ffmpeg_python.probe(str(path), cmd=binary, select_streams="v:0", count_packets=None)
    streams = [s for s in data.get("streams", []) if s.get("codec_type") == "video"]
    if not streams:
        raise VideoError(f"{path}: no video stream")
    s = streams[0]
    rotation = 0
    for side in s.get("side_data_list", []):
        if "rotation" in side:
            rotation = int(round(float(side["rotation"])))
    if "rotate" in s.get("tags", {}):
        rotation = -int(s["tags"]["rotate"])
    frames = int(s.get("nb_read_packets") or s.get("nb_frames") or 0)
    duration = float(s.get("duration") or data.get("format", {}).get("duration") or 0.0)
    return VideoInfo(int(s["width"]), int(s["height"]), _parse_rate(s.get("avg_frame_rate") or s["r_frame_rate"]),
                     frames, duration, rotation)


_STREAM_RE = re.compile(r"Stream #\d+:\d+.*?: Video: .*?, (\d{2,5})x(\d{2,5})[ ,\[]")
_FPS_RE = re.compile(r"([\d.]+)(k?) (fps|tbr)")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")
_ROT_RE = re.compile(r"rotation of (-?[\d.]+) degrees")


def _probe_ffmpeg(path: Path, binary: str) -> VideoInfo:
    cmd = [binary, "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    err = proc.stderr
    stream = next((line for line in err.splitlines() if "Video:" in line and "Stream #" in line), None)
    if proc.returncode != 0 or stream is None:
        last = err.strip().splitlines()[-1] if err.strip() else "ffmpeg failed"
        raise VideoError(f"{path}: not a readable video ({last})")
    size = _STREAM_RE.search(stream)
    if size is None:
        raise VideoError(f"{path}: cannot read the frame size from ffmpeg's report")
    fps = 0.0
    for value, kilo, kind in _FPS_RE.findall(stream):
        fps = float(value) * (1000 if kilo else 1)
        if kind == "fps":
            break
    frames = _FRAME_RE.findall(err)
    dur = _DURATION_RE.search(err)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    rot = _ROT_RE.search(err)
    return VideoInfo(int(size.group(1)), int(size.group(2)), fps, int(frames[-1]) if frames else 0, duration,
                     int(round(float(rot.group(1)))) if rot else 0)


def probe(path) -> VideoInfo:
    """Size, frame rate, frame count, duration and rotation of a video's first video stream."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    probe_bin = ffprobe_binary()
    try:
        if probe_bin:
            return _probe_ffprobe(path, probe_bin)
        return _probe_ffmpeg(path, ffmpeg_binary())
    except ffmpeg_python.Error as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise VideoError(f"{path}: not a readable video ({detail[-1] if detail else 'ffprobe failed'})") from None


def encode_video(frames: Iterable[np.ndarray], path, fps: float, crf: int = 23) -> None:
    """Encode RGB uint8 frames ``(H, W, 3)`` (even H and W) to an H.264 mp4 at ``fps``.

    Written to a temporary name and renamed, so ``path`` is either absent or a complete video.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise VideoError(f"{path}: no frames to encode")
    h, w = first.shape[:2]
    stream = (
        ffmpeg_python.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps)
        .output(str(tmp), vcodec="libx264", pix_fmt="yuv420p", crf=crf, preset="veryfast", r=fps,
                movflags="+faststart", loglevel="error")
        .overwrite_output()
    )
    proc = stream.run_async(cmd=ffmpeg_binary(), pipe_stdin=True, pipe_stderr=True)
    try:
        proc.stdin.write(np.ascontiguousarray(first, dtype=np.uint8).tobytes())
        for frame in it:
            if frame.shape[:2] != (h, w):
                raise VideoError(f"{path}: frame size changed from {w}x{h} to {frame.shape[1]}x{frame.shape[0]}")
            proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise VideoError(f"{path}: ffmpeg failed to encode ({err.strip().splitlines()[-1] if err.strip() else 'no message'})")
        os.replace(tmp, path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if tmp.exists():
            tmp.unlink()
