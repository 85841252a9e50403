"""Crash-safe storage of a cache: one part file per instance, an index file that links them.

``tapos-extract videos/ feats.h5`` (and ``tapos-data import-features``) writes

    feats.h5                 the index: a tapos-features/1 file whose /instances/<key> are HDF5
                             external links into the parts (readers see one ordinary cache)
    feats.parts/<key>.h5     one complete tapos-features/1 file per instance
    feats.parts/settings.json  the extraction settings every part was made with
    feats.failures.json      the clips the last run could not extract, and why (absent when none)

HDF5 does not survive a writer killed mid-write, so no HDF5 file is ever modified in place: a
part is written under a temporary name, synced and renamed, and the index is rebuilt from the
parts and renamed over the old one. A ``kill -9`` at any moment leaves every finished part and
the previous index intact; the rerun skips parts that read back completely and rebuilds the
index. Several processes may share one output: an instance is claimed with an advisory lock
(``flock``, released by the kernel if the process dies) and parts have unique temporary names.
``merge`` copies everything into one self-contained file for moving it elsewhere.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Mapping, Optional

import h5py

from .errors import FeatureCacheError
from .features import INSTANCES, ExtractionSettings, FeatureReader, FeatureWriter, check_key
from .io import atomic_path, atomic_write_text

INDEX_ATTR = "parts_dir"  # root attribute that marks an index file (value: the parts folder name)


def parts_dir(index_path) -> Path:
    index_path = Path(index_path)
    return index_path.with_name(index_path.stem + ".parts")


def failures_path(index_path) -> Path:
    index_path = Path(index_path)
    return index_path.with_name(index_path.stem + ".failures.json")


def write_failures(index_path, failures, paths: Mapping[str, str], summary: Mapping) -> Optional[Path]:
    """The failure report beside the index: ``{"failed": [{"key", "video", "reason"}], ...summary}``;
    removed when the run had no failure, so a report never outlives the problems it lists."""
    target = failures_path(index_path)
    if not failures:
        target.unlink(missing_ok=True)
        return None
    entries = [{"key": k, "video": paths.get(k), "reason": msg} for k, msg in failures]
    atomic_write_text(target, json.dumps({**summary, "failed": entries}, indent=1) + "\n")
    return target


class Claim:
    """An exclusive claim on one instance (an flock on ``.locks/<key>``), released by ``release``."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def release(self, remove: bool = True) -> None:
        if self.fd is None:
            return
        if remove:
            # Safe to unlink while holding the lock: whoever locks the old file next re-checks
            # whether the part is complete before working on it.
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        os.close(self.fd)
        self.fd = None


class PartStore:
    def __init__(self, index_path):
        self.index = Path(index_path)
        self.parts = parts_dir(self.index)
        self.locks = self.parts / ".locks"
        self._tag = f"{socket.gethostname()}.{os.getpid()}"

    # -- settings ---------------------------------------------------------------------------------
    def check_output(self) -> None:
        """Refuse an output that is not ours to rebuild (a merged or foreign cache would be lost)."""
        if not self.index.exists():
            return
        try:
            with h5py.File(self.index, "r") as f:
                is_index = INDEX_ATTR in f.attrs
                hard = [k for k in f.get(INSTANCES, {}) if not isinstance(f[INSTANCES].get(k, getlink=True),
                                                                             h5py.ExternalLink)]
        except OSError:
            raise FeatureCacheError(f"{self.index}: exists and is not an HDF5 file; choose another output") from None
        if not is_index or hard:
            raise FeatureCacheError(f"{self.index}: exists and holds features of its own (a merged or foreign "
                                    "cache); extract into another file")

    def check_settings(self, settings: ExtractionSettings, overwrite: bool) -> None:
        """The parts of one output share their settings; a different run needs --overwrite."""
        path = self.parts / "settings.json"
        if path.exists() and not overwrite:
            try:
                diff = ExtractionSettings.from_json(json.loads(path.read_text())).differences(settings)
            except (OSError, ValueError, TypeError, FeatureCacheError):
                diff = ["unreadable"]
            if diff:
                raise FeatureCacheError(
                    f"{self.index}: was extracted with other settings ({', '.join(sorted(diff))}); "
                    "use --overwrite to redo it or choose another output")
        self.parts.mkdir(parents=True, exist_ok=True)
        if overwrite or not path.exists():
            atomic_write_text(path, json.dumps(settings.to_json(), indent=1, sort_keys=True))

    # -- parts ------------------------------------------------------------------------------------
    def part_path(self, key: str) -> Path:
        return self.parts / f"{check_key(key)}.h5"

    def claim(self, key: str) -> Optional[Claim]:
        """Lock ``key`` for this process, or None when another process holds it."""
        self.locks.mkdir(parents=True, exist_ok=True)
        path = self.locks / key
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return Claim(path, fd)

    def is_complete(self, key: str, modalities) -> bool:
        """The part exists, has the expected modalities (``None``: any) and reads back finite, whole."""
        path = self.part_path(key)
        if not path.is_file():
            return False
        try:
            with FeatureReader(path) as reader:
                info = reader.info(key)
                if modalities is not None and set(info.dims) != set(modalities):
                    return False
                for mod in info.dims:
                    reader.read(key, mod, dtype=None)
                reader.frame_index(key)
            return True
        except (FeatureCacheError, OSError, KeyError, ValueError):
            return False

    def write(self, key: str, features: Mapping, fps: float, num_frames: int, frame_index,
              settings: ExtractionSettings, timestamps=None, frame_rate: Optional[float] = None) -> Path:
        """Write one part atomically (its temporary name carries this process's tag, so that
        :meth:`remove_stale_temporaries` can tell a dead process's leftovers)."""
        path = self.part_path(key)
        with atomic_path(path, self.parts / f".{key}.{self._tag}.tmp") as tmp:
            with FeatureWriter(tmp, settings=settings) as writer:
                writer.write(key, features, fps=fps, num_frames=num_frames, frame_index=frame_index,
                             timestamps=timestamps, frame_rate=frame_rate)
        return path

    def remove_stale_temporaries(self) -> None:
        """Temporary parts of dead processes on this host (other hosts' are left alone)."""
        host = socket.gethostname()
        for tmp in self.parts.glob(".*.tmp"):
            tag = tmp.name[:-len(".tmp")].rsplit(".", 2)
            if len(tag) == 3 and tag[1] == host and tag[2].isdigit() and not _alive(int(tag[2])):
                tmp.unlink(missing_ok=True)

    def keys(self) -> list:
        return sorted(p.stem for p in self.parts.glob("*.h5") if not p.name.startswith("."))

    # -- index ------------------------------------------------------------------------------------
    def write_index(self, settings: ExtractionSettings) -> int:
        """Rebuild the index from the parts present; repeated until no part appeared meanwhile
        (other processes may finish parts while it is written). Returns the instances linked."""
        while True:
            keys = self.keys()
            with atomic_path(self.index, self.index.with_name(f".{self.index.name}.{self._tag}.tmp")) as tmp:
                with FeatureWriter(tmp, settings=settings, attrs={INDEX_ATTR: self.parts.name}) as writer:
                    group = writer._file[INSTANCES]
                    for key in keys:
                        group[key] = h5py.ExternalLink(f"{self.parts.name}/{key}.h5", f"/{INSTANCES}/{key}")
            if self.keys() == keys:
                return len(keys)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def merge(index_path, out_path, track=None) -> int:
    """Copy every instance of a cache (index or not) into one self-contained file ``out_path``.

    ``out_path`` may be the index itself: the merged file replaces it (the parts stay). ``track``:
    wraps the keys as they are copied, a progress display (``tapos.extract.store.merge`` passes
    one; a contract module draws none itself).
    """
    index_path, out_path = Path(index_path), Path(out_path)
    reader = FeatureReader(index_path)
    with atomic_path(out_path) as tmp, reader, h5py.File(tmp, "w") as out:
        src = reader._h5()
        for k, v in src.attrs.items():
            if k != INDEX_ATTR:
                out.attrs[k] = v
        dst = out.create_group(INSTANCES)
        keys = reader.keys()
        for key in track(keys) if track else keys:
            src.copy(reader._group(key), dst, name=key)
    return len(keys)

