"""Features made elsewhere into a tapos cache (``tapos-data import-features``), and back out.

Layouts of ``SRC`` (``layout="auto"`` picks the first that fits):

- ``single``: SRC is one ``.h5``/``.npz`` file holding ``{video: array}`` (or, in HDF5, a group
  of named arrays per video).
- ``video_features``: a folder of ``<stem>_<key>.npy`` as the video_features toolkit writes them,
  recognised by its ``<stem>_fps.npy`` / ``<stem>_timestamps_ms.npy`` files; every other
  ``<stem>_<key>.npy`` is an array named ``key`` of video ``stem``.
- ``folders``: ``<youtube_id>/<instance_id>.*`` (as GEBD frame dumps are laid out); the key is
  ``<youtube_id>_<instance_id>``.
- ``files``: one ``.npy``/``.npz``/``.pt``/``.pkl`` per video (an array or a dict of arrays).

Arrays become modalities: a bare array (``.npy``, a ``.pt`` tensor) is ``modality``; in dict
files ``--map KEY=MODALITY`` names them (other arrays are ignored); without it arrays named
``rgb``/``flow`` are those modalities, and a lone other array is ``modality``. ``fps`` and ``timestamps_ms`` are times.

Row times, recorded like every cache (``timestamps`` in seconds, ``fps`` rows per second,
``frame_rate``/``num_frames`` the clip's grid, see :mod:`tapos.data.features`), first rule that
applies: the file's ``timestamps_ms``; ``fps=F`` (row ``t`` at ``t / F``); ``stride=S`` (row ``t``
is frame ``t * S`` of the source, whose rate is the file's ``fps`` or else the annotation's);
the file's ``fps`` alone (rows at that rate). A file with none of these is refused.
"""
from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

import click
import numpy as np

from .clock import frames_to_seconds
from .errors import FeatureCacheError, TaposError
from .feature_files import CONTAINER_SUFFIXES, PER_VIDEO_SUFFIXES, BadFeatureFile, read_container, read_file
from .features import DTYPES, MODALITIES, ExtractionSettings, FeatureReader, check_key, length_mismatch
from .io import atomic_path
from .options import Config, option
from .machinery.cache_job import CacheJob, CacheReport
from .version import __version__

LAYOUTS = ("auto", "single", "video_features", "folders", "files")
TIME_KEYS = ("fps", "timestamps_ms")
_VF_TIME_FILES = tuple(f"_{k}.npy" for k in TIME_KEYS)


@dataclass
class Item:
    """One video of the source: its file stem (the key unless a key map renames it) and a loader."""

    stem: str
    path: str
    load: Callable[[], dict]


def _fail(reason: str) -> Callable[[], dict]:
    def load():
        raise BadFeatureFile(reason)
    return load


def discover(src, layout: str = "auto", names=()) -> tuple:
    """``(layout, [Item])`` of ``src`` (see the module); ``names``: array names the caller maps."""
    src = Path(src)
    if layout not in LAYOUTS:
        raise TaposError(f"unknown layout {layout!r} (expected one of {', '.join(LAYOUTS)})")
    if not src.exists():
        raise TaposError(f"{src}: no such file or folder")
    if src.is_file():
        if layout not in ("auto", "single") or src.suffix.lower() not in CONTAINER_SUFFIXES:
            raise TaposError(f"{src}: a single source file must be .h5 or .npz holding {{video: array}}")
        try:
            return "single", [Item(k, f"{src}:{k}", load) for k, load in read_container(src).items()]
        except BadFeatureFile as exc:
            raise TaposError(f"{src}: {exc}") from None
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in PER_VIDEO_SUFFIXES)
    subdirs = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and not p.name.endswith(".parts"))
    if layout == "auto":
        if any(p.name.endswith(_VF_TIME_FILES) for p in files):
            layout = "video_features"
        elif files:
            layout = "files"
        else:
            layout = "folders"
    if layout == "video_features":
        return layout, _video_features(files, names)
    if layout == "files":
        return layout, [Item(p.stem, str(p), lambda p=p: read_file(p)) for p in files]
    items = [Item(f"{d.name}_{p.stem}", str(p), lambda p=p: read_file(p))
             for d in subdirs for p in sorted(d.iterdir()) if p.is_file() and p.suffix.lower() in PER_VIDEO_SUFFIXES]
    return "folders", items


def _video_features(files, names) -> list:
    npy = [p for p in files if p.suffix == ".npy"]
    suffixes = _VF_TIME_FILES + tuple(f"_{k}.npy" for k in (*MODALITIES, *names))
    stems = sorted({p.name[: -len(s)] for p in npy for s in suffixes if p.name.endswith(s) and len(p.name) > len(s)})
    groups: dict = {s: {} for s in stems}
    orphans = []
    for p in npy:
        owner = max((s for s in stems if p.name.startswith(s + "_")), key=len, default=None)
        if owner is None:
            orphans.append(p)
        else:
            groups[owner][p.name[len(owner) + 1: -len(".npy")]] = p
    items = [Item(s, str(next(iter(g.values())).with_name(f"{s}_*.npy")),
                  lambda g=g: {k: read_file(p)[""] for k, p in g.items()}) for s, g in groups.items()]
    return items + [Item(p.stem, str(p), _fail("not <stem>_<key>.npy of any video (no <stem>_fps.npy beside it)"))
                    for p in orphans]


def modalities_of(arrays: dict, modality: str = "rgb", mapping: Optional[Mapping] = None) -> tuple:
    """``({modality: (T, D) array}, {time key: array})`` from a file's named arrays (see the module)."""
    times = {k: arrays[k] for k in TIME_KEYS if k in arrays}
    rest = {k: v for k, v in arrays.items() if k not in TIME_KEYS}
    if "" in rest:  # a bare array or tensor
        feats = {modality: rest[""]}
    elif mapping:
        missing = [k for k in mapping if k not in rest]
        if missing:
            raise BadFeatureFile(f"no array {missing[0]!r} (named by --map; it has {', '.join(rest) or 'none'})")
        feats = {m: rest[k] for k, m in mapping.items()}
    elif any(k in MODALITIES for k in rest):
        feats = {k: v for k, v in rest.items() if k in MODALITIES}
    elif len(rest) == 1:
        feats = {modality: next(iter(rest.values()))}
    elif not rest:
        raise BadFeatureFile("holds no feature array")
    else:
        raise BadFeatureFile(f"several arrays ({', '.join(rest)}): choose with --map KEY=MODALITY")
    return feats, times


def check_features(feats: dict, dtype: str) -> dict:
    """Each modality as a finite ``(T, D)`` array of ``dtype``, all of one length."""
    out, lengths = {}, {}
    for mod, arr in feats.items():
        if arr.ndim != 2 or 0 in arr.shape:
            raise BadFeatureFile(f"{mod}: shape {arr.shape} is not (T, D) with T, D > 0 (wrong rank)")
        cast = arr.astype(dtype)
        bad = ~np.isfinite(cast).all(axis=1)
        if bad.any():
            what = "NaN or inf" if not np.isfinite(arr).all() else f"values beyond {dtype}'s range"
            raise BadFeatureFile(f"{mod}: {what} in {int(bad.sum())} row(s), first row {int(np.flatnonzero(bad)[0])}")
        out[mod], lengths[mod] = cast, arr.shape[0]
    if len(set(lengths.values())) > 1:
        counts = ", ".join(f"{m} {n} rows" for m, n in lengths.items())
        raise BadFeatureFile(f"modalities of different lengths ({counts})")
    return out


def row_times(rows: int, times: dict, fps: Optional[float] = None, stride: Optional[int] = None, inst=None) -> dict:
    """The row times of ``rows`` rows, as :meth:`FeatureWriter.write` takes them (see the module)."""
    file_fps = None
    if "fps" in times:
        v = np.asarray(times["fps"], dtype=np.float64).reshape(-1)
        if v.size != 1 or not (np.isfinite(v[0]) and v[0] > 0):
            raise BadFeatureFile(f"fps {v.tolist()} is not one positive number")
        file_fps = float(v[0])
    if "timestamps_ms" in times:
        ts = np.asarray(times["timestamps_ms"], dtype=np.float64).reshape(-1) / 1000.0
        if ts.shape != (rows,) or not np.isfinite(ts).all() or (np.diff(ts) < 0).any():
            raise BadFeatureFile(f"timestamps_ms: {ts.size} values for {rows} rows, or not finite and non-decreasing")
        gaps = np.diff(ts)
        rate = 1.0 / float(np.median(gaps)) if rows > 1 and np.median(gaps) > 0 else (fps or file_fps or 1.0)
        return {"timestamps": ts, "fps": rate, "frame_rate": rate, "num_frames": rows, "frame_index": None}
    if fps is None and stride is None and file_fps is not None:
        fps = file_fps
    if fps is not None:
        return {"timestamps": frames_to_seconds(np.arange(rows), fps), "fps": fps, "frame_rate": fps,
                "num_frames": rows, "frame_index": None}
    if stride is None:
        raise BadFeatureFile("carries no times (no fps, no timestamps_ms): give --fps F or --stride S")
    source = file_fps or (inst.fps if inst is not None else None)
    if source is None:
        raise BadFeatureFile("--stride needs the source's rate: the file has no fps and --annotations has no such key")
    index = np.arange(rows, dtype=np.int64) * stride
    total = inst.total_frames if inst is not None else rows * stride
    return {"timestamps": frames_to_seconds(index, source), "fps": source / stride, "frame_rate": source,
            "num_frames": total, "frame_index": index}


def load_key_map(path) -> dict:
    """``{file stem: key}`` from a JSON object or a CSV of ``stem,key`` rows (optional header)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaposError(f"{path}: unreadable key map ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaposError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise TaposError(f"{path}: expected an object {{file stem: key}}")
        return {str(k): v for k, v in raw.items()}
    rows = [r for r in csv.reader(text.splitlines()) if r and not r[0].startswith("#")]
    if rows and rows[0][0].strip().lower() in ("stem", "file", "name", "video"):
        rows = rows[1:]
    bad = next((i for i, r in enumerate(rows) if len(r) < 2 or not r[1].strip()), None)
    if bad is not None:
        raise TaposError(f"{path}: row {bad + 1}: expected stem,key")
    return {r[0].strip(): r[1].strip() for r in rows}


@dataclass(frozen=True)
class ImportConfig(Config):
    """How ``import_features`` reads its source and what it records (see the module);
    ``tapos-data import-features`` shows these."""

    WHAT = "import-features"

    layout: str = option("auto", "How SRC holds the videos (auto: see below).", type=click.Choice(LAYOUTS))
    modality: str = option("rgb", "The modality of a lone array (a bare .npy or tensor).",
                           type=click.Choice(MODALITIES))
    # {array name: modality} of dict files (tapos-data: --map KEY=MODALITY)
    mapping: Optional[Mapping] = option(None, cli=False)
    fps: Optional[float] = option(None, "Files without times: rows are at this rate.",
                                  type=click.FloatRange(min=0, min_open=True), show_default=False)
    stride: Optional[int] = option(None, "Files without times: row t is frame t*S of the source (rate: the file's "
                                   "fps or the annotation's).", type=click.IntRange(1), show_default=False)
    keys: Optional[Path] = option(None, "CSV (stem,key) or JSON {stem: key}: the TAPOS global key of each file stem.",
                                  type=click.Path(exists=True, dir_okay=False, path_type=Path), show_default=False)
    annotations: Optional[Path] = option(None, "Check every key (and its length) against these annotations (TAPOS "
                                         "or GEBD layout).", type=click.Path(exists=True, dir_okay=False,
                                                                            path_type=Path), show_default=False)
    dtype: str = option("float32", "Stored feature type.", type=click.Choice(DTYPES))
    backbone: str = option("imported", "What the features come from (recorded).")
    overwrite: bool = option(False, "Re-import what is already imported.")
    progress: Optional[bool] = option(None, "A progress bar (default: when stderr is a terminal).", cli=False)

    def checked(self) -> dict:
        """The ``mapping`` as a dict, once every option is known to make sense."""
        if self.fps is not None and self.stride is not None:
            raise TaposError("give --fps or --stride, not both")
        if self.dtype not in DTYPES:
            raise TaposError(f"unknown dtype {self.dtype!r} (expected one of {', '.join(DTYPES)})")
        mapping = dict(self.mapping or {})
        for m in {self.modality, *mapping.values()}:
            if m not in MODALITIES:
                raise TaposError(f"unknown modality {m!r} (expected {' or '.join(MODALITIES)})")
        if len(set(mapping.values())) != len(mapping):
            raise TaposError("--map names one modality twice")
        return mapping


@dataclass
class ImportReport(CacheReport):
    """The cache job's report, and what only an import knows."""

    layout: str = ""
    unmatched: int = 0                            # annotated instances without features


def import_features(src, out, config: Optional[ImportConfig] = None,
                    on_failure: Callable[[str, str], None] = lambda path, reason: None) -> ImportReport:
    """Import ``src`` into the cache ``out`` (an index over crash-safe parts, as tapos-extract
    writes); bad files are reported through ``on_failure(path, reason)`` and in ``out``'s failure
    report."""
    return ImportJob(src, out, config or ImportConfig(), on_failure).run()


class ImportJob(CacheJob):
    """``tapos-data import-features`` as a cache job: the source's files are its items."""

    name, unit = "import", "file"

    def __init__(self, src, out, config: ImportConfig, on_failure):
        from .annotations import load_annotations

        super().__init__(out, config.overwrite, config.progress)
        self.src, self.config, self.on_failure = src, config, on_failure
        self.mapping = config.checked()
        self.keymap = load_key_map(config.keys) if config.keys else {}
        self.ann = load_annotations(config.annotations) if config.annotations else None
        self.report.layout, self.items = discover(src, config.layout, tuple(self.mapping))
        if not self.items:
            raise TaposError(f"{src}: no feature files found (layout {self.report.layout}; "
                             f"per-video files end in {', '.join(PER_VIDEO_SUFFIXES)})")
        self.seen: dict = {}  # key -> the file it came from first

    def new_report(self) -> ImportReport:
        return ImportReport()

    def list_items(self):
        if self.ann is not None:
            keys = {self.key(item) for item in self.items}
            self.report.unmatched = sum(1 for k in self.ann if k not in keys)
        return self.items, []

    def key(self, item: Item) -> str:
        return self.keymap.get(item.stem, item.stem)

    def decide_settings(self) -> Optional[ExtractionSettings]:
        """The recorded settings' modalities with this run's options; None (the first file
        decides) for a new output, with overwrite, or when the record is unreadable."""
        recorded = self.store.parts / "settings.json"
        if not recorded.exists() or self.overwrite:
            return None
        try:
            return self._settings(ExtractionSettings.from_json(json.loads(recorded.read_text())).modalities)
        except (OSError, ValueError, TypeError, FeatureCacheError):
            return None

    def refuse(self, item: Item) -> Optional[str]:
        key = self.key(item)
        if key in self.seen:
            return f"key {key} again (also from {self.seen[key]})"
        self.seen[key] = item.path
        try:
            check_key(key)
        except FeatureCacheError as exc:
            return str(exc)
        if self.ann is not None and self.ann.get(key) is None:
            return f"key {key} is not in {self.ann.path}"
        return None

    def compute(self, item: Item) -> tuple:
        """``(features, row times)`` of one file, checked; the first good file fixes the settings."""
        cfg = self.config
        inst = self.ann.get(self.key(item)) if self.ann is not None else None
        feats, times = modalities_of(item.load(), cfg.modality, self.mapping)
        feats = check_features(feats, cfg.dtype)
        rows = next(iter(feats.values())).shape[0]
        when = row_times(rows, times, cfg.fps, cfg.stride, inst)
        if inst is not None:
            problem = length_mismatch(float(frames_to_seconds(rows, when["fps"])), inst.duration, when["fps"])
            if problem:
                raise BadFeatureFile(f"{rows} rows at {when['fps']:g} per second cover {problem}")
        if self.settings is None:
            self.fix_settings(self._settings(feats))
        elif set(feats) != set(self.settings.modalities):
            raise BadFeatureFile(f"holds {'+'.join(feats)}, the cache holds {'+'.join(self.settings.modalities)}")
        return feats, when

    def write(self, item: Item, result: tuple) -> int:
        feats, when = result
        self.store.write(self.key(item), feats, when["fps"], when["num_frames"], when["frame_index"], self.settings,
                         timestamps=when["timestamps"], frame_rate=when["frame_rate"])
        return len(when["timestamps"])

    def error_message(self, exc: Exception) -> str:
        return str(exc) if isinstance(exc, BadFeatureFile) else super().error_message(exc)

    def announce_failure(self, key: str, source: str, message: str) -> None:
        with self.bar.external_write_mode(file=sys.stderr):
            self.on_failure(source, message)

    def failure_summary(self, totals: dict) -> dict:
        return {"source": str(self.src), "output": str(self.out), "layout": self.report.layout,
                "imported": totals["done"], "indexed": self.report.indexed}

    def _settings(self, modalities) -> ExtractionSettings:
        cfg = self.config
        return ExtractionSettings(backbone=cfg.backbone, weights={m: "unknown (imported)" for m in modalities},
                                  modalities=tuple(m for m in MODALITIES if m in modalities), stride=cfg.stride or 1,
                                  fps=cfg.fps, dtype=cfg.dtype, preprocessing="imported (features made elsewhere)",
                                  tool_version=__version__)


def export_features(cache, out_dir, fmt: str = "npy") -> int:
    """Every instance of ``cache`` as files in ``out_dir``: ``npy`` writes the video_features
    layout (``<key>_<modality>.npy``, ``<key>_fps.npy``, ``<key>_timestamps_ms.npy``), ``npz`` one
    ``<key>.npz`` holding the same arrays; ``import-features`` reads both back. Returns the count."""
    if fmt not in ("npy", "npz"):
        raise TaposError(f"unknown export format {fmt!r} (expected npy or npz)")
    out_dir = Path(out_dir)
    with FeatureReader(cache) as reader:
        keys = reader.keys()
        for key in keys:
            info = reader.info(key)
            arrays = {m: reader.read(key, m, dtype=None) for m in info.dims}
            arrays["fps"] = np.asarray(info.fps, dtype=np.float64)
            arrays["timestamps_ms"] = reader.timestamps(key) * 1000.0
            if fmt == "npz":
                with atomic_path(out_dir / f"{key}.npz") as tmp, open(tmp, "wb") as handle:
                    np.savez(handle, **arrays)
                continue
            for name, arr in arrays.items():
                with atomic_path(out_dir / f"{key}_{name}.npy") as tmp, open(tmp, "wb") as handle:
                    np.save(handle, arr)
    return len(keys)
