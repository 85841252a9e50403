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
import threading
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Optional

import ffmpeg as ffmpeg_python
import numpy as np

from ..clock import frames_to_seconds, seconds_to_frames
from ..errors import TaposError
from ..io import atomic_path


class VideoError(TaposError):
    """A video that cannot be probed, decoded or encoded."""


class IncompleteVideoError(VideoError):
    """A video whose frames stop before the end its header declares (a download cut short)."""


# Frame counts, durations and rates that differ by more than this share disagree (the frames of a
# video against its duration, a source's rate against its annotation's: tapos-data check-videos)
RATE_TOLERANCE = 0.01
# A video's frames may end this much before the end its header declares without being called
# truncated (the larger of a second and 2% of that duration): the header's duration is the
# longest stream's, and an audio track often outlasts the video by a fraction of a second.
TRUNCATION_SLACK = (1.0, 0.02)  # seconds, share of the declared duration


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
    """What a video's first video stream holds, on its own clock (seconds from the file's start,
    as a player counts them: start time offsets and edit lists already applied)."""

    width: int
    height: int
    fps: float          # the nominal rate: the constant rate tapos resamples the stream to (see nominal_rate)
    num_frames: int     # frames the stream holds (presented ones: an edit list's pre-roll is not counted)
    duration: float     # seconds from the file's start until the last frame stops being shown
    rotation: int = 0   # degrees the player rotates the stored picture (display matrix)
    variable_rate: bool = False  # frames are not on the grid of the nominal rate (jittered timestamps)
    declared_fps: float = 0.0    # the rate the stream header states
    declared_duration: float = 0.0  # the duration the header states (0: unknown)

    @property
    def rate_mismatch(self) -> Optional[str]:
        """One line when the frame count and the duration disagree by more than 1% at the
        nominal rate (dropped or repeated frames, an AVI's empty chunks, a gap), else None."""
        expected = float(seconds_to_frames(self.duration, self.fps))
        if expected <= 0 or abs(self.num_frames - expected) <= RATE_TOLERANCE * expected:
            return None
        return (f"{self.num_frames} frames in {self.duration:.2f} s, but {self.fps:g} fps means {expected:.0f}: "
                f"frames are missing or repeated; rows follow the timestamps")

    @property
    def truncated(self) -> Optional[str]:
        """One line when the frames end well before the duration the header declares, else None.
        A download cut short keeps its header (an mp4 written for streaming has it first) but
        lacks the frames after the cut, so it probes without error."""
        short = self.declared_duration - self.duration
        seconds, share = TRUNCATION_SLACK
        if self.declared_duration <= 0 or short <= max(seconds, share * self.declared_duration):
            return None
        return f"its frames end at {self.duration:.2f} s of the {self.declared_duration:.2f} s its header declares"


def _parse_rate(text: str) -> float:
    if "/" in text:
        num, den = text.split("/")
        return float(num) / float(den) if float(den) else 0.0
    return float(text)


def _probe_ffprobe(path: Path, binary: str) -> VideoInfo:
    data = ffmpeg_python.probe(str(path), cmd=binary, select_streams="v:0")
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
    frames = int(s.get("nb_frames") or 0)
    duration = float(s.get("duration") or data.get("format", {}).get("duration") or 0.0)
    avg = _parse_rate(s.get("avg_frame_rate") or "0/0")
    real = _parse_rate(s.get("r_frame_rate") or "0/0")
    return VideoInfo(int(s["width"]), int(s["height"]), real or avg, frames, duration, rotation,
                     _differ(avg, real))


def _differ(avg: float, stream: float) -> bool:
    return avg > 0 and stream > 0 and abs(avg - stream) > 0.01 * stream


_STREAM_RE = re.compile(r"Stream #\d+:\d+.*?: Video: .*?, (\d{2,5})x(\d{2,5})[ ,\[]")
_FPS_RE = re.compile(r"([\d.]+)(k?) (fps|tbr)")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")
# the verbose end-of-run summary; the "frame=" progress line is missing for stream copies in some
# releases (ffmpeg 7.0, as imageio-ffmpeg 0.6.0 ships it)
_MUXED_RE = re.compile(r"Output stream #\d+:\d+ \(video\): (?:\d+ frames encoded; )?(\d+) packets muxed")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")
_ROT_RE = re.compile(r"rotation of (-?[\d.]+) degrees")


def _remux(path: Path) -> subprocess.CompletedProcess:
    """One pass over the video stream's packets (a stream copy, no decoding): ffmpeg's stream
    report on stderr, each packet's time and flags on stdout (framecrc)."""
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "verbose", "-i", str(path), "-map", "0:v:0",
           "-c", "copy", "-f", "framecrc", "-"]
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace")


def _probe_ffmpeg(path: Path, proc: subprocess.CompletedProcess) -> VideoInfo:
    err = proc.stderr
    stream = next((line for line in err.splitlines() if "Video:" in line and "Stream #" in line), None)
    if proc.returncode != 0 or stream is None:
        last = err.strip().splitlines()[-1] if err.strip() else "ffmpeg failed"
        raise VideoError(f"{path}: not a readable video ({last})")
    size = _STREAM_RE.search(stream)
    if size is None:
        raise VideoError(f"{path}: cannot read the frame size from ffmpeg's report")
    rates = {kind: float(value) * (1000 if kilo else 1) for value, kilo, kind in _FPS_RE.findall(stream)}
    fps = rates.get("tbr") or rates.get("fps") or 0.0  # tbr: the stream's rate, fps: its average
    frames = _MUXED_RE.findall(err) or _FRAME_RE.findall(err)
    dur = _DURATION_RE.search(err)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    rot = _ROT_RE.search(err)
    return VideoInfo(int(size.group(1)), int(size.group(2)), fps, int(frames[-1]) if frames else 0, duration,
                     int(round(float(rot.group(1)))) if rot else 0, _differ(fps, rates.get("tbr", 0.0)))


def probe(path) -> VideoInfo:
    """Size, rotation and the clock of a video's first video stream: frame count, duration and
    nominal rate come from the presentation timestamps of its packets (read in the one pass of
    :func:`_remux`, which also gives ffmpeg's stream report where there is no ffprobe)."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    probe_bin = ffprobe_binary()
    proc = _remux(path)
    try:
        info = _probe_ffprobe(path, probe_bin) if probe_bin else _probe_ffmpeg(path, proc)
    except ffmpeg_python.Error as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise VideoError(f"{path}: not a readable video ({detail[-1] if detail else 'ffprobe failed'})") from None
    times, end = _packet_times(proc.stdout) if proc.returncode == 0 else (np.zeros(0), 0.0)
    if len(times) == 0:
        return info
    rate = nominal_rate(times, info.fps)
    return replace(info, fps=rate, num_frames=len(times), duration=end, declared_fps=info.fps,
                   declared_duration=info.duration, variable_rate=not _on_grid(times, rate))


def probe_complete(path) -> VideoInfo:
    """:func:`probe`, refusing a video without frames (``VideoError``) or one that is truncated
    (``IncompleteVideoError``): what a source video must pass to count as present."""
    info = probe(path)
    if info.num_frames == 0 or not info.duration > 0:
        raise VideoError(f"{path}: no video frames")
    if info.truncated:
        raise IncompleteVideoError(f"{path}: truncated: {info.truncated}")
    return info


_CRC_RE = re.compile(r"^\s*0,\s*(-?\d+),\s*(-?\d+),\s*(\d+),\s*\d+,\s*0x[0-9a-f]+(?:,\s*F=0x([0-9A-Fa-f]+))?")
_TB_RE = re.compile(r"^#tb 0: (\d+)/(\d+)")
_DISCARD = 0x4  # AV_PKT_FLAG_DISCARD: an edit list's pre-roll, decoded but never shown


def _packet_times(framecrc: str) -> tuple:
    """``(times, end)`` from :func:`_remux`'s stdout: the sorted presentation times (s) of the
    video stream's shown frames, on the clock ffmpeg decodes with (the file's start is 0), and
    when the last one stops being shown."""
    num = den = None
    pts, durs = [], []
    for line in framecrc.splitlines():
        tb = _TB_RE.match(line)
        if tb:
            num, den = int(tb.group(1)), int(tb.group(2))
            continue
        m = _CRC_RE.match(line)
        if m is None or (m.group(4) and int(m.group(4), 16) & _DISCARD):
            continue
        pts.append(int(m.group(2)))
        durs.append(int(m.group(3)))
    if not pts or num is None:
        return np.zeros(0), 0.0
    order = np.argsort(pts, kind="stable")
    times = np.asarray(pts, dtype=np.float64)[order] * num / den
    keep = times >= -1e-9
    times, last_dur = times[keep], np.asarray(durs, dtype=np.float64)[order][keep] * num / den
    if len(times) == 0:
        return np.zeros(0), 0.0
    step = last_dur[-1] if last_dur[-1] > 0 else (float(np.median(np.diff(times))) if len(times) > 1 else 0.0)
    return times, float(times[-1] + step)


# The rates that cameras and editors write; ffmpeg prints 29.97 for 30000/1001
_NTSC = tuple(Fraction(k * 1000, 1001) for k in (24, 30, 48, 60, 120))


def exact_rate(rate: float) -> Fraction:
    """A rate as the fraction ffmpeg's fps filter should use: NTSC rates (29.97...) become
    ``30000/1001`` exactly, others the nearest fraction with a small denominator."""
    for ntsc in _NTSC:
        if abs(rate - float(ntsc)) <= 0.0005 * rate:
            return ntsc
    return Fraction(rate).limit_denominator(1001)


def _on_grid(times, rate: float, tolerance: float = 0.1, share: float = 0.9) -> bool:
    """At least ``share`` of the frame intervals are whole multiples of ``1 / rate`` (within
    ``tolerance`` of a frame): frames on a constant-rate grid, some perhaps missing."""
    steps = seconds_to_frames(np.diff(np.unique(np.round(np.asarray(times) * 1e6)) / 1e6), rate)
    if steps.size == 0:
        return True
    return bool(np.mean((steps > 0.5) & (np.abs(steps - np.round(steps)) <= tolerance)) >= share)


def nominal_rate(times, declared: float) -> float:
    """The constant rate a stream is resampled to: the rate its header declares when the frames
    sit on that rate's grid (gaps and dropped frames allowed, as in an AVI's empty chunks or a
    passthrough stream with holes), else the average rate of its frames (jittered timestamps)."""
    times = np.asarray(times, dtype=np.float64)
    if declared > 0 and _on_grid(times, declared):
        return float(exact_rate(declared))
    if len(times) > 1 and times[-1] > times[0]:
        return float(exact_rate((len(times) - 1) / (times[-1] - times[0])))
    if declared > 0:
        return float(exact_rate(declared))
    raise VideoError("unknown frame rate")


def encode_video(frames: Iterable[np.ndarray], path, fps: float, crf: int = 23, vcodec: str = "libx264",
                 pix_fmt: str = "yuv420p") -> None:
    """Encode RGB uint8 frames ``(H, W, 3)`` to a video at ``fps`` (default: H.264 mp4, which
    needs even H and W; ``vcodec="ffv1"`` with a ``.mkv`` path takes any size and pixel format).

    Written to a temporary name and renamed, so ``path`` is either absent or a complete video.
    """
    path = Path(path)
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise VideoError(f"{path}: no frames to encode")
    h, w = first.shape[:2]
    with atomic_path(path) as tmp:
        _encode(first, it, tmp, path, fps, crf, vcodec, pix_fmt, h, w)


def _encode(first, it, tmp, path, fps, crf, vcodec, pix_fmt, h, w) -> None:
    stream = (
        ffmpeg_python.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps)
        .output(str(tmp), vcodec=vcodec, pix_fmt=pix_fmt, r=fps, loglevel="error",
                **({"crf": crf, "preset": "veryfast"} if vcodec in ("libx264", "libx265") else {}),
                **({"movflags": "+faststart"} if path.suffix in (".mp4", ".mov") else {}))
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
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def read_frames(path, width: int, height: int, pix_fmt: str = "bgr24", filters=(), start: Optional[float] = None,
                max_frames: Optional[int] = None, rate: Optional[float] = None, chunk: int = 32,
                messages: Optional[list] = None):
    """Decode a video to raw frames: yields uint8 arrays ``(n <= chunk, height, width, C)``.

    ``filters`` is a list of ``(name, args, kwargs)`` ffmpeg filters that must produce frames of
    ``width`` x ``height``; ``pix_fmt`` is ``bgr24``/``rgb24`` (C=3) or ``gray`` (C=1).
    ``max_frames`` stops after that many frames. ffmpeg applies the rotation stored in the file
    before ``filters``.

    The clock: with ``rate``, frame ``k`` is the video's frame nearest to ``start + k / rate``
    seconds (``start``: 0 = the file's start), duplicated or dropped as its timestamps say
    (variable rate, gaps, an AVI's empty chunks), and frames between two of the file's frames
    show the earlier one, as a player does. ``filters`` then see this constant-rate sequence
    (``select`` on ``n`` picks grid frames). Without ``rate``, the file's frames as stored from
    the first at or after ``start``.
    Decoding runs in the ffmpeg process; closing the generator early stops it. ffmpeg's error
    messages are appended to ``messages`` when given (a damaged file often decodes in part
    without failing).
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    channels = {"bgr24": 3, "rgb24": 3, "gray": 1}[pix_fmt]
    seek = start or 0.0
    if rate:
        # seek a frame early, so that the frame nearest the start is decoded too, then shift the
        # clock back so that the start is 0 and resample onto the grid k / rate
        seek = max(0.0, seek - float(frames_to_seconds(1, rate)))
    stream = ffmpeg_python.input(str(path), **({"ss": f"{seek:.6f}"} if seek > 0 else {}))
    video = stream.video
    if rate:
        shift = (start or 0.0) - seek
        if shift > 0:
            video = video.filter("setpts", f"PTS-{shift:.6f}/TB")
        video = video.filter("fps", fps=str(exact_rate(rate)), start_time=0)
    for name, args, kwargs in filters:
        video = video.filter(name, *args, **kwargs)
    # passthrough: a filter graph would otherwise make the output constant-rate and duplicate the
    # first frame to fill the gap between the seek point and the first frame's time
    out = {"format": "rawvideo", "pix_fmt": pix_fmt, "loglevel": "error", **_passthrough()}
    if max_frames is not None:
        out["frames:v"] = int(max_frames)
    cmd = video.output("pipe:", **out).compile(cmd=ffmpeg_binary())
    cmd.insert(1, "-nostdin")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    errors = messages if messages is not None else []
    # ffmpeg can write many error lines for a damaged file: drain them so it never blocks on a full pipe
    drain = threading.Thread(target=lambda: errors.extend(proc.stderr.read().decode(errors="replace").splitlines()),
                             daemon=True)
    drain.start()
    frame_bytes = width * height * channels
    try:
        while True:
            buf = _read_exactly(proc.stdout, frame_bytes * chunk)
            n = len(buf) // frame_bytes
            if n:
                yield np.frombuffer(buf[: n * frame_bytes], dtype=np.uint8).reshape(n, height, width, channels)
            if len(buf) < frame_bytes * chunk:
                break
        code = proc.wait()
        drain.join()
        if code != 0:
            last = next((line for line in reversed(errors) if line.strip()), "ffmpeg failed")
            raise VideoError(f"{path}: cannot decode ({last.strip()})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def read_frame_at(path, seconds: float, height: int = 96, info: Optional[VideoInfo] = None) -> np.ndarray:
    """The frame shown at ``seconds`` as an RGB thumbnail ``(height, width, 3)`` (width keeps the
    displayed aspect ratio, rotation applied). ``info``: the video's ``probe`` when known."""
    info = info or probe(path)
    w, h = (info.height, info.width) if info.rotation % 180 else (info.width, info.height)
    width = max(2, int(round(w * height / max(h, 1) / 2)) * 2)
    frames = list(read_frames(path, width, height, "rgb24", [("scale", (width, height), {})],
                              start=max(float(seconds), 0.0), max_frames=1, rate=info.fps, chunk=1))
    if not frames:
        raise VideoError(f"{path}: no frame at {seconds:.2f} s (the video lasts {info.duration:.2f} s)")
    return frames[0][0]


@functools.lru_cache(maxsize=None)
def ffmpeg_version() -> tuple:
    """(major, minor) of the chosen ffmpeg; (99, 0) for git builds that carry no release number."""
    out = subprocess.run([ffmpeg_binary(), "-version"], capture_output=True, text=True).stdout
    match = re.search(r"version n?(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else (99, 0)


def _passthrough() -> dict:
    # -fps_mode replaced -vsync in ffmpeg 5.1; ffmpeg 8 dropped -vsync
    return {"fps_mode": "passthrough"} if ffmpeg_version() >= (5, 1) else {"vsync": "passthrough"}


def _read_exactly(pipe, size: int) -> bytes:
    parts, got = [], 0
    while got < size:
        data = pipe.read(size - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)
