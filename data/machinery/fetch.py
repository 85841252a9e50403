"""``tapos-data fetch-videos``: the source videos of an annotation file, one ``<youtube_id>.<ext>``
per YouTube id, as ``tapos-extract --annotations`` finds them (:mod:`tapos.data.videos`).

yt-dlp does the downloading (the optional extra ``tapos[fetch]``): it is the maintained
downloader this field uses, and YouTube changes too often for a downloader of our own.

Crash safety: yt-dlp writes to hidden temporaries ``OUT/.part-<id>.*``; a finished download must
probe complete (:func:`tapos.data.machinery.ffmpeg.probe_complete`: it has frames up to the end its header
declares) before it is renamed to ``OUT/<id>.<ext>``, so a video under its final name is always
whole. A rerun skips the ids whose file is complete, clears what an interrupted run left of the
others and downloads them again. Failures are isolated: each one is named by a category (private,
removed, network, ...), listed in ``OUT/failures.json``, and the other videos go on.
"""
from __future__ import annotations

import glob
import json
import re
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import click

from ..annotations import SPLITS, load_annotations
from ..errors import TaposError
from .ffmpeg import IncompleteVideoError, VideoError, ffmpeg_binary, probe_complete
from .progress import track, writing
from ..io import atomic_path, atomic_write_text
from ..options import Config, option
from ..videos import VIDEO_EXTENSIONS, video_files

YOUTUBE_URL = "https://www.youtube.com/watch?v={id}"
TEMP_PREFIX = ".part-"         # hidden, so that find_videos (and extraction) never sees a temporary
FAILURES = "failures.json"
RETRIES = 3                    # yt-dlp's retries of a broken transfer (it resumes where it stopped)

# The default: the smallest stream at or above 256 px on its short side (TSN's flow frames are
# 340x256 and RGB frames are resized to a short side of 256, so more pixels are wasted bandwidth
# and decoding time), else the largest there is. Video only: nothing reads the audio, and a
# single stream needs no merging. "bv*/b" takes the first format with video in the order of
# FORMAT_SORT: yt-dlp's "+res:256" ranks short sides >= 256 smallest first, then those below
# largest first; "vcodec:h264" prefers H.264 among equal sizes (every ffmpeg build decodes it,
# AV1 needs an optional decoder); "+size,+br" then the fewest bytes. A user's --format is ranked by
# yt-dlp's own default order instead (best first), so that it means what it means in yt-dlp.
DEFAULT_FORMAT = "bv*/b"
FORMAT_SORT = ("+res:256", "vcodec:h264", "+size", "+br")

# Failure categories, first match wins, on the text of the error and of its causes (yt-dlp quotes
# YouTube's own messages; the exception type names are part of the text, e.g. GeoRestrictedError,
# TransportError). An HTTP status, where the error carries one, is named before these.
CATEGORIES = (
    ("private", r"private video|video is private"),
    ("removed", r"has been removed|been terminated|no longer available|terms of service|copyright"),
    ("unavailable in your region", r"in your country|in your region|geo.?restrict"),
    ("age-restricted (try --cookies)", r"confirm your age|age.?restrict|inappropriate for some users"),
    ("sign-in required (try --cookies)", r"not a bot|sign in|log ?in required"),
    ("no format matches --format", r"requested format is not available"),
    ("network", r"timed? ?out|connection|network|name resolution|resolve host|unreachable|expected \d+ bytes|\d+ more expected"
                r"|did not get any data|incompleteread|remote end closed|transporterror|ssl"),
    ("not a video", r"unsupported url|no video formats|not a video|no video could be found"),
    ("unavailable", r"unavailable|not available|does not exist"),
)


class FetchError(TaposError):
    """One video that could not be fetched, with the category of the failure."""

    def __init__(self, category: str, reason: str):
        super().__init__(f"{category}: {reason}")
        self.category, self.reason = category, reason


@dataclass
class Failure:
    youtube_id: str
    url: str
    category: str
    reason: str
    instances: int = 0           # annotated instances that need this video
    splits: List[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        return f"{self.youtube_id}: {self.category}: {self.reason}"


@dataclass
class FetchReport:
    downloaded: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)         # complete already
    failed: List[Failure] = field(default_factory=list)
    coverage: Dict[str, Tuple[int, int]] = field(default_factory=dict)  # split -> (with source, without)
    failures_file: Optional[Path] = None


def import_yt_dlp():
    """yt-dlp, or a one-line error saying how to install it (it is an optional extra)."""
    try:
        import yt_dlp
    except ImportError:
        raise TaposError("fetch-videos needs yt-dlp: pip install 'tapos[fetch]'") from None
    return yt_dlp


def source_url(template: Optional[str], youtube_id: str) -> str:
    """The URL of a YouTube id: YouTube's watch page, or ``template`` with ``{id}`` filled in."""
    template = template or YOUTUBE_URL
    if "{id}" not in template:
        raise TaposError(f"--url-template {template!r}: needs {{id}} where the YouTube id goes")
    try:
        return template.format(id=youtube_id)
    except (KeyError, IndexError, ValueError) as exc:
        raise TaposError(f"--url-template {template!r}: {exc!r} (only {{id}} may appear in braces; "
                         f"write {{{{ and }}}} for literal braces)") from None


def ytdlp_params(fmt: Optional[str] = None, rate_limit: Optional[str] = None, cookies=None) -> dict:
    """The options every download shares (``outtmpl`` and the cookie copy are set per video)."""
    from yt_dlp.utils import parse_bytes

    params = {
        "format": fmt or DEFAULT_FORMAT,
        "noplaylist": True,             # a watch URL inside a playlist means the one video
        "quiet": True, "no_warnings": True, "noprogress": True,
        "logger": _Silent(),            # failures come back as exceptions, reported by category
        "retries": RETRIES, "fragment_retries": RETRIES,
        "overwrites": True,             # a temporary name of ours, never a user's file
        "ffmpeg_location": ffmpeg_binary(),  # the same ffmpeg tapos uses, for the formats that need one
    }
    if not fmt:
        params["format_sort"] = list(FORMAT_SORT)
    if rate_limit:
        params["ratelimit"] = parse_bytes(rate_limit)
        if not params["ratelimit"]:
            raise TaposError(f"--rate-limit {rate_limit!r}: expected bytes per second, e.g. 500K or 4.2M")
    if cookies is not None:
        if not Path(cookies).is_file():
            raise TaposError(f"--cookies {cookies}: no such file")
        params["cookiefile"] = str(cookies)
    return params


class _Silent:
    def debug(self, msg):
        pass

    info = warning = error = debug


def failure_category(exc: BaseException) -> Tuple[str, str]:
    """``(category, one-line reason)`` of a yt-dlp error (see CATEGORIES)."""
    chain = _causes(exc)
    reason = _one_line(str(exc))
    for err in chain:
        status = getattr(err, "status", None)
        if "HTTPError" in type(err).__name__ and isinstance(status, int):
            return f"http {status}", reason
    text = " ".join(f"{type(e).__name__} {e}" for e in chain)
    match = re.search(r"HTTP Error (\d{3})", text)
    if match:
        return f"http {match.group(1)}", reason
    for category, pattern in CATEGORIES:
        if re.search(pattern, text, re.IGNORECASE):
            return category, reason
    return "other", reason


def _causes(exc: BaseException, depth: int = 8) -> list:
    """The error and what caused it: yt-dlp keeps the original in ``exc_info`` and ``cause``."""
    out = []
    while exc is not None and len(out) < depth and exc not in out:
        out.append(exc)
        info = getattr(exc, "exc_info", None)
        nxt = info[1] if isinstance(info, tuple) and len(info) > 1 else None
        nxt = nxt or getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
        exc = nxt if isinstance(nxt, BaseException) else None
    return out


def _one_line(text: str, limit: int = 300) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # colours
    text = re.sub(r"^(?:ERROR:\s*)", "", " ".join(text.replace("\r", " ").split()))
    # yt-dlp asks to report errors it did not expect upstream; the failure line is about the video
    text = re.sub(r";?\s*please report this issue on .*$", "", text, flags=re.IGNORECASE)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def download(yt_dlp, youtube_id: str, url: str, out: Path, params: dict) -> Path:
    """Download one video to ``out/<youtube_id>.<ext>`` through a hidden temporary, checked
    complete before it is renamed; raises :class:`FetchError`. Leaves no temporary behind."""
    remove_temporaries(out, youtube_id)
    try:
        tmp = _run_ytdlp(yt_dlp, youtube_id, url, out, params)
        if tmp.suffix.lower() not in VIDEO_EXTENSIONS:  # extraction would not find it
            raise FetchError("not a video", f"{url}: yt-dlp saved it as {tmp.suffix or 'no extension'}")
        final = out / f"{youtube_id}{tmp.suffix}"
        with atomic_path(final, tmp=tmp):  # synced and renamed, or removed when the check fails
            check_source(tmp)
        _remove_other_copies(out, youtube_id, final)
        return final
    finally:
        remove_temporaries(out, youtube_id)


def _run_ytdlp(yt_dlp, youtube_id: str, url: str, out: Path, params: dict) -> Path:
    stem = (TEMP_PREFIX + youtube_id).replace("%", "%%")  # outtmpl reads % as a field
    params = {**params, "outtmpl": {"default": str(out / f"{stem}.%(ext)s")}}
    with tempfile.TemporaryDirectory(prefix="tapos-cookies-") as tmp_dir:
        if "cookiefile" in params:
            # yt-dlp writes the cookie jar back when it ends: parallel downloads would write the
            # user's file at the same time, so each reads (and writes) a copy of its own
            params["cookiefile"] = shutil.copy(params["cookiefile"], Path(tmp_dir) / "cookies.txt")
        try:
            with yt_dlp.YoutubeDL(params) as ydl:
                info = ydl.extract_info(url, download=True)
        except Exception as exc:  # yt-dlp's DownloadError and whatever escapes it
            raise FetchError(*failure_category(exc)) from None
    downloads = (info or {}).get("requested_downloads") or []
    if len(downloads) != 1 or not downloads[0].get("filepath"):
        raise FetchError("not a video", f"{url} holds no single video ({len(downloads)} downloads)")
    return Path(downloads[0]["filepath"])


def check_source(path) -> None:
    """Raise :class:`FetchError` unless ``path`` is a complete video (it probes, has frames up to
    the end its header declares)."""
    try:
        probe_complete(path)
    except IncompleteVideoError as exc:
        raise FetchError("truncated", _detail(exc, path).removeprefix("truncated: ")) from None
    except VideoError as exc:
        raise FetchError("not a video", _detail(exc, path)) from None


def _detail(exc: Exception, path) -> str:
    """The error's text without the leading path (a temporary name, of no use to the user)."""
    text, prefix = str(exc), f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def remove_temporaries(out: Path, youtube_id: str) -> None:
    """What yt-dlp writes for one video: ``.part-<id>.<ext>``, its ``.part``, format pieces."""
    for path in glob.glob(str(out / glob.escape(f"{TEMP_PREFIX}{youtube_id}.")) + "*"):
        Path(path).unlink(missing_ok=True)


def _remove_other_copies(out: Path, youtube_id: str, keep: Path) -> None:
    """A new download in another container replaces the old one (two files of one id would
    leave which one extraction reads to the order of their names)."""
    for path in out.glob(glob.escape(youtube_id) + ".*"):
        if path != keep and path.stem == youtube_id and path.suffix.lower() in VIDEO_EXTENSIONS:
            path.unlink()


def _fetch_one(yt_dlp, youtube_id: str, url: str, out: Path, params: dict, existing: Optional[Path]) -> str:
    """``"skipped"`` when ``existing`` is complete, else ``"downloaded"`` (or FetchError)."""
    if existing is not None:
        try:
            check_source(existing)
            return "skipped"
        except FetchError:
            pass  # broken or cut short: download it again (renamed over it only once complete)
    download(yt_dlp, youtube_id, url, out, params)
    return "downloaded"


@dataclass(frozen=True)
class FetchConfig(Config):
    """How :func:`fetch_videos` downloads (``tapos-data fetch-videos`` shows these)."""

    WHAT = "fetch-videos"

    split: str = option("all", "Only the videos this split needs.", type=click.Choice(SPLITS))
    jobs: int = option(4, "Parallel downloads.", type=click.IntRange(1))
    fmt: Optional[str] = option(None, "A yt-dlp format string (ranked by yt-dlp's default order). Default: the "
                                "smallest video stream at or above 256 px on its short side, else the largest below "
                                "(no audio).", flag="--format", metavar="FORMAT")
    rate_limit: Optional[str] = option(None, "Bytes per second per download, as yt-dlp reads it: 500K, 4.2M.",
                                       metavar="RATE")
    cookies: Optional[Path] = option(None, "A Netscape cookies file for yt-dlp (age-restricted videos, 'not a bot' "
                                     "checks); read, not written.", type=click.Path(dir_okay=False, path_type=Path))
    url_template: Optional[str] = option(None, "Download from URL with {id} replaced by the YouTube id (a lab's "
                                         "mirror, e.g. https://host/tapos/{id}.mp4) instead of YouTube.", metavar="URL")
    overwrite: bool = option(False, "Download again videos that are already complete.")
    progress: Optional[bool] = option(None, "A progress bar (None: when stderr is a terminal).", cli=False)


def fetch_videos(annotations, out, config: Optional[FetchConfig] = None,
                 on_failure: Optional[Callable[[Failure], None]] = None, **options) -> FetchReport:
    """Download the source video of every instance of ``annotations`` (or of one ``split``) into
    ``out``; see the module docstring. ``config`` and/or keyword ``options``: :class:`FetchConfig`.
    ``on_failure`` is called (in this thread) with each failure as it happens."""
    config = FetchConfig.of(config, **options)
    ann = load_annotations(annotations).split(config.split)
    if len(ann) == 0:
        raise TaposError(f"{annotations}: no instances" +
                         (f" in split {config.split}" if config.split not in (None, "all") else ""))
    yt_dlp = import_yt_dlp()
    ids = list(dict.fromkeys(inst.youtube_id for inst in ann.values()))
    urls = {yid: source_url(config.url_template, yid) for yid in ids}
    params = ytdlp_params(config.fmt, config.rate_limit, config.cookies)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)  # only once the options are known to be good
    existing = {} if config.overwrite else video_files(out)
    report = FetchReport()
    needs = _needs(ann)

    def job(yid):
        return _fetch_one(yt_dlp, yid, urls[yid], out, params, existing.get(yid))

    for yid, outcome in _run_jobs(ids, job, config.jobs, config.progress):
        if isinstance(outcome, FetchError):
            failure = Failure(yid, urls[yid], outcome.category, outcome.reason, *needs[yid])
            report.failed.append(failure)
            if on_failure is not None:
                on_failure(failure)
        else:
            getattr(report, outcome).append(yid)
    report.coverage = coverage(ann, {f.youtube_id for f in report.failed})
    report.failures_file = write_failures(out, report, ann.path)
    return report


def _needs(ann) -> dict:
    """youtube id -> (instances that need it, their splits)."""
    count, splits = {}, {}
    for inst in ann.values():
        count[inst.youtube_id] = count.get(inst.youtube_id, 0) + 1
        splits.setdefault(inst.youtube_id, set()).add(inst.subset)
    return {yid: (n, sorted(splits[yid])) for yid, n in count.items()}


def _run_jobs(ids: list, job, jobs: int, progress: Optional[bool]):
    """Yield ``(id, outcome or FetchError)`` as the downloads finish, ``jobs`` at a time."""
    show = sys.stderr.isatty() if progress is None else progress
    pool = ThreadPoolExecutor(max_workers=max(1, int(jobs)))
    try:
        with track(total=len(ids), desc="fetch", unit="video", enabled=show) as bar:
            futures = {pool.submit(job, yid): yid for yid in ids}
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except FetchError as exc:
                    outcome = exc
                # the caller reports the outcome (a failure's line) with the bar cleared from the terminal
                with writing():
                    yield futures[future], outcome
                bar.update(1)
    finally:
        # on Ctrl-C the downloads in flight end (each cleans up after itself) and no other starts
        pool.shutdown(wait=True, cancel_futures=True)


def coverage(ann, missing_ids) -> Dict[str, Tuple[int, int]]:
    """Per split: instances whose source video is there now, and those whose is not."""
    counts: Dict[str, List[int]] = {}
    for inst in ann.values():
        pair = counts.setdefault(inst.subset, [0, 0])
        pair[1 if inst.youtube_id in missing_ids else 0] += 1
    return {split: (have, lack) for split, (have, lack) in counts.items()}


def write_failures(out: Path, report: FetchReport, annotations) -> Optional[Path]:
    """``OUT/failures.json``: the videos the last run could not fetch and why; removed after a
    run without failures, so that it never outlives the problems it lists."""
    target = out / FAILURES
    if not report.failed:
        target.unlink(missing_ok=True)
        return None
    data = {"annotations": str(annotations) if annotations else None, "downloaded": len(report.downloaded),
            "skipped": len(report.skipped), "failed": [asdict(f) for f in report.failed]}
    atomic_write_text(target, json.dumps(data, indent=1) + "\n")
    return target
