"""The feature cache: schema ``tapos-features/1`` (HDF5), its writer and its lazy reader.

Layout (the contract between ``tapos-extract`` and the stages that read features)::

    /                          attrs: schema="tapos-features/1", backbone, weights, modalities,
                                      frame_stride, tool_version (and free-form extras)
    /instances/<key>           one group per instance; keys never contain "/"
        rgb   (T, D) float16|float32     one row per sampled frame (optional if flow is present)
        flow  (T, D) float16|float32     same T as rgb
        frame_index (T,) int             clip frame of each row (optional: absent = arange(T))
        timestamps  (T,) float64         seconds from the clip start of each row (optional, see below)
        attrs: fps        rows per second
               num_frames frames of the clip on its constant-rate grid
               frame_rate that grid's rate (frames per second; optional)

The clock (:mod:`tapos.data.clock`): row ``t`` is at ``timestamps[t]`` seconds from the clip
start and holds the video's frame nearest that time. ``tapos-extract`` resamples every clip by
its presentation timestamps to a constant-rate grid of ``frame_rate`` frames per second
(``frame_index[t]`` is the grid frame, ``timestamps = frame_index / frame_rate``); features from
elsewhere (``tapos-data synth``) store rows at ``t / fps``. Caches written before the clock had
no ``timestamps`` and no ``frame_rate``: readers derive ``frame_rate = num_frames / (T / fps)``
and ``timestamps = frame_index / frame_rate``, which is what those caches meant.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Mapping, Optional

import h5py
import numpy as np

from . import clock
from .errors import FeatureCacheError

SCHEMA = "tapos-features/1"
MODALITIES = ("rgb", "flow")
MODALITY_CHOICES = ("rgb", "flow", "rgb+flow")  # what a parser or a TSN reads (rgb+flow: concatenated)
DTYPES = ("float16", "float32")  # stored feature types
INSTANCES = "instances"
# A cache clip may be a little longer or shorter than the annotated instance (decoders disagree by
# a frame or two, re-downloads differ by a rescale); beyond this it is another clip.
LENGTH_TOLERANCE_REL = 0.1
LENGTH_TOLERANCE_FRAMES = 2


def length_mismatch(rows_duration: float, duration: float, fps: float) -> Optional[str]:
    """None when rows spanning ``rows_duration`` seconds (at ``fps`` rows per second) can be the
    annotated instance of ``duration`` seconds; else the second half of the one-line reason."""
    if abs(rows_duration - duration) > max(LENGTH_TOLERANCE_REL * duration,
                                                 clock.frames_to_seconds(LENGTH_TOLERANCE_FRAMES, fps)):
        return f"{rows_duration:.2f} s but the annotation says {duration:.2f} s"
    return None


def parse_modality(spec) -> tuple:
    """``"rgb"``, ``"flow"``, ``"rgb+flow"`` (or ``"rgb,flow"``) -> tuple of modality names."""
    if isinstance(spec, (list, tuple)):
        parts = list(spec)
    else:
        parts = [p.strip() for p in str(spec).replace(",", "+").split("+") if p.strip()]
    if not parts or any(p not in MODALITIES for p in parts) or len(set(parts)) != len(parts):
        raise FeatureCacheError(f"unknown modality {spec!r} (expected rgb, flow or rgb+flow)")
    return tuple(parts)


def check_key(key: str) -> str:
    if not isinstance(key, str) or not key or "/" in key or key.startswith("."):
        raise FeatureCacheError(f"invalid instance key {key!r} (non-empty, no '/', not starting with '.')")
    return key


def _version() -> str:
    from .version import __version__

    return __version__


@dataclass(frozen=True)
class InstanceInfo:
    """What the attributes of one cached instance say (no feature data is read)."""

    key: str
    num_rows: int
    fps: float
    num_frames: int
    dims: dict
    has_frame_index: bool
    stored_frame_rate: Optional[float] = None

    @property
    def duration(self) -> float:
        """Seconds covered by the rows."""
        return float(clock.frames_to_seconds(self.num_rows, self.fps))

    @property
    def frame_rate(self) -> float:
        """Frames of the cached clip per second (its grid's rate; for caches that do not store
        it, ``num_frames`` over the rows' span): turns clip frames into seconds."""
        return self.stored_frame_rate or clock.frame_rate(self.num_frames, self.duration)


@dataclass(frozen=True)
class ExtractionSettings:
    """How a cache was made: one record, written as the root attribute ``extraction`` (JSON),
    beside each extraction's parts (``settings.json``) and in a trained model's ``config.json``.

    The flat root attributes of the schema (``backbone``, ``weights``, ``modalities``,
    ``frame_stride``) are a summary derived from it for plain-h5py readers; caches written before
    the record existed are read back from that summary (:meth:`from_attrs`).
    """

    backbone: str = "unknown"        # the network rows come from: "bninception", "synthetic", ...
    weights: Mapping[str, str] = field(default_factory=dict)  # modality -> weights description
                                     # (file name and sha256 prefix, "random", "... (cross-modality init)")
    modalities: tuple = ("rgb",)     # the modalities stored
    stride: int = 1                  # every S-th frame of the clip's constant-rate grid
    fps: Optional[float] = None      # or rows at this rate (the grid frame nearest t/F); None: by stride
    flow: Optional[str] = None       # flow method ("tvl1", "dis", ...) when flow is stored
    flow_params: Optional[Mapping] = None  # what the flow rows depend on besides the method
                                     # (None: not recorded, caches written before the record)
    dtype: str = "float32"           # stored feature type
    preprocessing: str = ""          # frame preparation, in words
    tool_version: str = ""           # tapos version that wrote the cache

    ATTR = "extraction"  # the root attribute holding the record
    # fields that may differ between the parts of one cache: a newer tapos resumes an older run
    _RESUMABLE = ("tool_version",)

    def __post_init__(self):
        object.__setattr__(self, "modalities", parse_modality(self.modalities))
        object.__setattr__(self, "weights", dict(self.weights))

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["modalities"] = list(self.modalities)
        return json.loads(json.dumps(doc))  # plain JSON values (lists, not tuples)

    @classmethod
    def from_json(cls, doc: Mapping) -> "ExtractionSettings":
        """From :meth:`to_json`'s output (keys it does not know, such as an old ``schema``, are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})

    def to_attrs(self) -> dict:
        """Root attributes: the record plus the schema's flat summary."""
        return {
            self.ATTR: json.dumps(self.to_json(), sort_keys=True),
            "backbone": self.backbone,
            "weights": "; ".join(f"{m}: {d}" for m, d in self.weights.items()),
            "modalities": ",".join(self.modalities),
            "frame_stride": int(self.stride),
            "tool_version": self.tool_version or _version(),
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping) -> "ExtractionSettings":
        """From root attributes, a model's copy of them or :meth:`to_json`'s output: the record
        when present, otherwise the flat attributes of older caches (``frame_stride``,
        ``sampling_fps``, ``flow_method``, weights as ``"rgb: ...; flow: ..."`` or one for all)."""
        if "stride" in attrs:  # the JSON record itself (the flat attributes call it frame_stride)
            return cls.from_json(attrs)
        if cls.ATTR in attrs:
            raw = attrs[cls.ATTR]
            try:
                return cls.from_json(json.loads(raw) if isinstance(raw, (str, bytes)) else raw)
            except (TypeError, ValueError) as exc:
                raise FeatureCacheError(f"unreadable extraction record ({exc})") from None
        mods = attrs.get("modalities", "rgb")
        mods = parse_modality(list(mods) if isinstance(mods, (list, tuple, np.ndarray)) else str(mods))
        weights = {}
        for part in str(attrs.get("weights", "")).split("; "):
            m, sep, desc = part.partition(": ")
            if sep and m in MODALITIES:
                weights[m] = desc
        if not weights and attrs.get("weights"):
            weights = {m: str(attrs["weights"]) for m in mods}
        return cls(backbone=str(attrs.get("backbone", "unknown")), weights=weights, modalities=mods,
                   stride=int(attrs.get("frame_stride", 1) or 1), fps=float(attrs.get("sampling_fps", 0) or 0) or None,
                   flow=str(attrs.get("flow_method", "") or "") or None, preprocessing=str(attrs.get("preprocessing", "")),
                   tool_version=str(attrs.get("tool_version", "")))

    def differences(self, other: "ExtractionSettings") -> list:
        """Names of the fields in which two records disagree (parts of one cache must agree on all
        but the tool version; flow parameters that one of them did not record are not compared)."""
        out = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name in self._RESUMABLE or (f.name == "flow_params" and (a is None or b is None)):
                continue
            if json.dumps(a, sort_keys=True, default=list) != json.dumps(b, sort_keys=True, default=list):
                out.append(f.name)
        return out


class _H5Handle:
    """Close-on-exit for the classes below, which keep one h5py file in ``self._file``."""

    _file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FeatureWriter(_H5Handle):
    """Writes instances into a cache file, creating it with the schema attributes.

    Each instance is written under a temporary name and renamed when complete, so a reader never
    sees a partial group. (Crash safety across processes is the extractor's job: it writes shards.)
    """

    def __init__(self, path, backbone: str = "unknown", weights: str = "unknown",
                 modalities=("rgb",), frame_stride: int = 1, attrs: Optional[Mapping] = None,
                 settings: Optional[ExtractionSettings] = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = self.path.exists()
        try:
            self._file = h5py.File(self.path, "a")
        except OSError as exc:
            raise FeatureCacheError(f"{self.path}: cannot open for writing ({exc})") from None
        if exists and "schema" in self._file.attrs:
            if self._file.attrs["schema"] != SCHEMA:
                self._file.close()
                raise FeatureCacheError(f"{self.path}: schema {self._file.attrs['schema']!r} is not {SCHEMA!r}")
        else:
            # ``settings`` (how the features were made) replaces the four loose descriptions
            if settings is not None:
                summary = settings.to_attrs()
            else:
                summary = {"backbone": backbone, "weights": weights, "modalities": ",".join(parse_modality(modalities)),
                           "frame_stride": int(frame_stride), "tool_version": _version()}
            root = self._file.attrs
            root["schema"] = SCHEMA
            for k, v in {**summary, **(attrs or {})}.items():
                root[k] = v
        self._file.require_group(INSTANCES)

    def write(self, key: str, features: Mapping, fps: float, num_frames: int,
              frame_index=None, overwrite: bool = False, timestamps=None, frame_rate: Optional[float] = None) -> None:
        check_key(key)
        if not features:
            raise FeatureCacheError(f"{self.path}: instance {key}: no modality given")
        rows = None
        arrays = {}
        for mod, arr in features.items():
            parse_modality(mod)
            arr = np.asarray(arr)
            if arr.dtype not in (np.float16, np.float32):
                arr = arr.astype(np.float32)
            if arr.ndim != 2 or arr.shape[0] == 0:
                raise FeatureCacheError(f"{self.path}: instance {key}: {mod} has shape {arr.shape}, expected (T>0, D)")
            if rows is not None and arr.shape[0] != rows:
                raise FeatureCacheError(f"{self.path}: instance {key}: modalities have different row counts")
            if not np.isfinite(arr).all():
                raise FeatureCacheError(f"{self.path}: instance {key}: {mod} contains NaN or inf")
            rows = arr.shape[0]
            arrays[mod] = arr
        if not (fps > 0 and np.isfinite(fps)):
            raise FeatureCacheError(f"{self.path}: instance {key}: fps {fps} is not positive")
        group = self._file[INSTANCES]
        if key in group:
            if not overwrite:
                raise FeatureCacheError(f"{self.path}: instance {key} already exists (use overwrite)")
            del group[key]
        tmp = f".tmp-{key}"
        if tmp in group:
            del group[tmp]
        g = group.create_group(tmp)
        for mod, arr in arrays.items():
            g.create_dataset(mod, data=arr)
        if frame_index is not None:
            fi = np.asarray(frame_index, dtype=np.int64)
            if fi.shape != (rows,):
                raise FeatureCacheError(f"{self.path}: instance {key}: frame_index has shape {fi.shape}, expected ({rows},)")
            g.create_dataset("frame_index", data=fi)
        if timestamps is not None:
            ts = np.asarray(timestamps, dtype=np.float64)
            if ts.shape != (rows,) or not np.isfinite(ts).all() or (np.diff(ts) < 0).any():
                raise FeatureCacheError(f"{self.path}: instance {key}: timestamps must be ({rows},) finite, "
                                        "non-decreasing seconds")
            g.create_dataset("timestamps", data=ts)
        if frame_rate is not None:
            g.attrs["frame_rate"] = float(frame_rate)
        g.attrs["fps"] = float(fps)
        g.attrs["num_frames"] = int(num_frames)
        group.move(tmp, key)
        self._file.flush()


class FeatureReader(_H5Handle):
    """Lazy read access to a feature cache: nothing is loaded until an instance is asked for.

    Safe to hand to DataLoader workers: the file is reopened in each process.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FeatureCacheError(f"{self.path}: no such file")
        self._file = None
        self._pid = None
        f = self._h5()
        schema = f.attrs.get("schema")
        if schema is None:
            raise FeatureCacheError(f"{self.path}: not a tapos feature cache (no 'schema' attribute)")
        if isinstance(schema, bytes):
            schema = schema.decode()
        if schema != SCHEMA:
            raise FeatureCacheError(f"{self.path}: schema {schema!r} is not supported (expected {SCHEMA!r})")
        if INSTANCES not in f:
            raise FeatureCacheError(f"{self.path}: no '/{INSTANCES}' group")

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise FeatureCacheError(f"{self.path}: not a readable HDF5 file ({exc})") from None
            self._pid = os.getpid()
        return self._file

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.path = state["path"]
        self._file = None
        self._pid = None

    @property
    def attrs(self) -> dict:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self._h5().attrs.items()}

    def settings(self) -> ExtractionSettings:
        """How the cache was made (see :class:`ExtractionSettings`; older caches: from their
        flat attributes)."""
        try:
            return ExtractionSettings.from_attrs(self.attrs)
        except FeatureCacheError as exc:
            raise FeatureCacheError(f"{self.path}: {exc}") from None

    def keys(self) -> list:
        return [k for k in self._h5()[INSTANCES].keys() if not k.startswith(".")]

    def default_modality(self) -> str:
        """What a parser or a TSN reads unless told: ``rgb+flow`` when the cache holds both,
        otherwise the one it holds (from the root attribute, or the first instance)."""
        held = str(self.attrs.get("modalities", "")).replace("+", ",").split(",")
        held = [m for m in MODALITIES if m in held]
        if not held:
            keys = self.keys()
            if not keys:
                raise FeatureCacheError(f"{self.path}: the cache holds no instances")
            held = list(self.info(keys[0]).dims)
        return "+".join(held)

    def __contains__(self, key) -> bool:
        return isinstance(key, str) and not key.startswith(".") and key in self._h5()[INSTANCES]

    def __len__(self) -> int:
        return len(self.keys())

    def _group(self, key: str) -> h5py.Group:
        if key not in self:
            raise FeatureCacheError(f"{self.path}: no features for instance {key!r}")
        group = self._h5()[INSTANCES]
        try:
            return group[key]
        except (KeyError, OSError):
            # an index written by tapos-extract links to per-instance part files
            link = group.get(key, getlink=True)
            target = link.filename if isinstance(link, h5py.ExternalLink) else "?"
            raise FeatureCacheError(f"{self.path}: instance {key}: cannot open {self.path.parent / target} "
                                    "(parts folder moved or deleted? use tapos-extract merge to move a cache)") from None

    def info(self, key: str) -> InstanceInfo:
        g = self._group(key)
        dims = {m: int(g[m].shape[1]) for m in MODALITIES if m in g}
        if not dims:
            raise FeatureCacheError(f"{self.path}: instance {key}: no rgb or flow dataset")
        rows = {int(g[m].shape[0]) for m in dims}
        if len(rows) != 1:
            raise FeatureCacheError(f"{self.path}: instance {key}: modalities have different row counts")
        for attr in ("fps", "num_frames"):
            if attr not in g.attrs:
                raise FeatureCacheError(f"{self.path}: instance {key}: missing attribute '{attr}'")
        rate = float(g.attrs["frame_rate"]) if "frame_rate" in g.attrs else None
        return InstanceInfo(key, rows.pop(), float(g.attrs["fps"]), int(g.attrs["num_frames"]), dims,
                            "frame_index" in g, rate)

    def frame_index(self, key: str) -> np.ndarray:
        """Source frame of each row (``arange(T)`` when the cache stores none)."""
        g = self._group(key)
        if "frame_index" in g:
            return np.asarray(g["frame_index"][()], dtype=np.int64)
        return np.arange(self.info(key).num_rows, dtype=np.int64)

    def timestamps(self, key: str) -> np.ndarray:
        """Seconds from the clip start of each row (float64): the stored ``timestamps``, or for
        caches without them ``frame_index / frame_rate`` (see the module's clock section)."""
        g = self._group(key)
        if "timestamps" in g:
            return np.asarray(g["timestamps"][()], dtype=np.float64)
        return clock.frames_to_seconds(self.frame_index(key), self.info(key).frame_rate)

    def read(self, key: str, modality="rgb", dtype=np.float32, rows=None) -> np.ndarray:
        """The ``(T, D)`` features of one instance; ``"rgb+flow"`` concatenates along D. With
        ``rows`` (indices, repeats allowed), only those rows are read from disk, in that order."""
        g = self._group(key)
        parts = []
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            wanted, inverse = np.unique(rows, return_inverse=True)  # h5py reads sorted, unique rows
        for mod in parse_modality(modality):
            if mod not in g:
                raise FeatureCacheError(f"{self.path}: instance {key}: no {mod} features")
            if rows is None:
                arr = np.asarray(g[mod][()], dtype=dtype)
            else:
                n = g[mod].shape[0]
                if len(wanted) and (wanted[0] < 0 or wanted[-1] >= n):
                    raise FeatureCacheError(f"{self.path}: instance {key}: rows outside 0..{n - 1}")
                arr = np.asarray(g[mod][wanted], dtype=dtype)[inverse]
            if not np.isfinite(arr).all():
                bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
                raise FeatureCacheError(
                    f"{self.path}: instance {key}: {mod} has NaN/inf in {len(bad)} row(s), first row {bad[0]}"
                )
            parts.append(arr)
        if len({p.shape[0] for p in parts}) != 1:
            raise FeatureCacheError(f"{self.path}: instance {key}: modalities have different row counts")
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
