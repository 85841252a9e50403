"""Small file helpers: atomic writes and a restricted unpickler for annotation/prediction pickles."""
from __future__ import annotations

import contextlib
import json
import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import TaposError, UnsafePickleError

# Globals a plain-data pickle may name. Containers and numbers need none with protocol >= 2 except
# sets and OrderedDict; numpy arrays and scalars (numeric dtypes only, checked after loading) are
# allowed because the GEBD conversion scripts store boundaries as float64 arrays.
_ALLOWED_GLOBALS = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "__builtin__":  # Python 2 name, used by pickle protocols 0-2
            module = "builtins"
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(f"refuses to load {module}.{name} (only plain containers and numbers are allowed)")

    def persistent_load(self, pid):
        raise UnsafePickleError("refuses persistent ids (only plain containers and numbers are allowed)")


def _check_plain(obj, depth: int = 0) -> None:
    if depth > 64:
        raise UnsafePickleError("nesting deeper than 64 levels")
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise UnsafePickleError(f"refuses a numpy array of dtype {obj.dtype} (numbers only)")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, depth + 1)
            _check_plain(v, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _check_plain(v, depth + 1)
    elif not isinstance(obj, (str, bytes, int, float, complex, bool, type(None), np.generic, np.dtype)):
        raise UnsafePickleError(f"refuses an object of type {type(obj).__name__}")


def safe_load_pickle(path):
    """Load a pickle that may only contain plain containers, strings and numbers.

    Anything else (classes, functions, reducers) raises ``UnsafePickleError`` before it is built,
    so a malicious annotation or prediction file cannot run code.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UnsafePickleError(f"{path}: no such file") from None
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise UnsafePickleError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    try:
        _check_plain(obj)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    return obj


@contextlib.contextmanager
def atomic_path(path, tmp: Optional[Path] = None):
    """The one way tapos writes an output file: yields a temporary path beside ``path`` (same
    suffix, so ffmpeg, h5py and matplotlib pick the format from it) for the caller to write; when
    the block ends normally the file is synced and renamed over ``path``, so readers see the old
    file or the complete new one, never a half-written one. When the block raises, the temporary
    file is removed and ``path`` is left as it was. ``tmp``: a temporary name of the caller's own
    (one that a clean-up of stale temporaries recognises)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tmp is None:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.unlink()  # a unique name; writers that refuse an existing empty file (h5py) create it
    tmp = Path(tmp)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class CsvLog:
    """Rows appended during training (``log(row)``), the whole table rewritten atomically to
    ``path`` after each (when a path is given), so a crash leaves a complete log of the epochs done."""

    def __init__(self, path=None):
        self.path = Path(path) if path else None
        self.rows: list = []

    def __call__(self, row: dict) -> None:
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        if self.path:
            import pandas as pd

            atomic_write_text(self.path, pd.DataFrame(self.rows).to_csv(index=False))


def read_json(path, error=TaposError):
    """The parsed JSON of ``path``; a missing file, bad JSON or bad text raises ``error`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a UTF-8 text file") from None

