"""Feature files made elsewhere, read as named arrays: the loaders behind ``tapos-data import-features``.

One file gives ``{name: array}`` (a bare array is named ``""``): ``.npy`` and ``.npz`` through
numpy without pickles, ``.pt``/``.pth`` through ``torch.load(weights_only=True)`` (torch is
imported only when such a file is met), ``.pkl`` through the restricted unpickler of
:mod:`tapos.data.io`. A container (``.h5``, ``.npz``) holding many videos gives ``{video: loader}``.
Every problem is a :class:`BadFeatureFile` with a one-line reason.
"""
from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import UnsafePickleError
from .io import safe_load_pickle

PER_VIDEO_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".pkl", ".pickle")
CONTAINER_SUFFIXES = (".h5", ".hdf5", ".npz")


class BadFeatureFile(ValueError):
    """A file that cannot be imported; the message is the one-line reason."""


def read_file(path) -> dict:
    """``{name: array}`` of one per-video file (see the module)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            with open(path, "rb") as handle:
                if handle.read(6) != b"\x93NUMPY":
                    raise BadFeatureFile("unreadable (not a .npy file: no NUMPY header)")
            return _arrays(np.load(path, allow_pickle=False))
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return _arrays({k: z[k] for k in z.files})
        if suffix in (".pt", ".pth"):
            return _arrays(_torch_load(path))
        if suffix in (".pkl", ".pickle"):
            return _arrays(safe_load_pickle(path))
    except BadFeatureFile:
        raise
    except UnsafePickleError as exc:
        raise BadFeatureFile(f"not plain data ({str(exc).split(': ', 1)[-1]})") from None
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise BadFeatureFile("holds pickled Python objects, not plain numeric arrays") from None
        raise BadFeatureFile(f"unreadable ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
        raise BadFeatureFile(f"unreadable ({type(exc).__name__}: {exc})") from None
    raise BadFeatureFile(f"unknown suffix {suffix!r} (expected one of {', '.join(PER_VIDEO_SUFFIXES)})")


def _torch_load(path: Path):
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if "global" in ln.lower()] or [type(exc).__name__]
        raise BadFeatureFile(f"not plain data (torch.load weights_only refused it: {lines[0][:160]})") from None
    if isinstance(obj, torch.Tensor):
        return _tensor(obj)
    if isinstance(obj, Mapping):
        return {k: _tensor(v) if isinstance(v, torch.Tensor) else v for k, v in obj.items()}
    return obj


def _tensor(t):
    t = t.detach().cpu()
    return (t.float() if t.is_floating_point() else t).numpy()


def _arrays(obj) -> dict:
    if isinstance(obj, Mapping):
        items = {str(k): v for k, v in obj.items()}
    else:
        items = {"": obj}
    out = {}
    for name, value in items.items():
        if isinstance(value, (list, tuple, int, float, np.generic)) and not isinstance(value, bool):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray):
            what = f"entry {name!r} is" if name else "holds"
            raise BadFeatureFile(f"{what} a {type(value).__name__}, expected an array or a dict of arrays")
        if value.dtype.kind not in "biuf":
            raise BadFeatureFile(f"{'array ' + repr(name) if name else 'the array'} has dtype {value.dtype}, "
                                 "expected numbers")
        out[name] = value
    return out


def read_container(path) -> dict:
    """``{video: loader}`` of a file holding many videos: ``.npz`` ``{video: array}``, or ``.h5``
    whose top-level datasets are videos (or groups of named datasets, one group per video)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        try:
            names = list(np.load(path, allow_pickle=False).files)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise BadFeatureFile(f"unreadable ({exc})") from None
        return {n: (lambda n=n: _npz_entry(path, n)) for n in names}
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "schema" in f.attrs:
                raise BadFeatureFile("is a tapos feature cache already (copy it with tapos-extract merge)")
            names = list(f.keys())
    except OSError as exc:
        raise BadFeatureFile(f"not a readable HDF5 file ({exc})") from None
    return {n: (lambda n=n: _h5_entry(path, n)) for n in names}


def _npz_entry(path: Path, name: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return _arrays(z[name])
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise BadFeatureFile("holds pickled Python objects, not plain numeric arrays") from None
        raise BadFeatureFile(f"unreadable ({exc})") from None


def _h5_entry(path: Path, name: str) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        node = f[name]
        if isinstance(node, h5py.Dataset):
            return _arrays(node[()])
        return _arrays({k: v[()] for k, v in node.items() if isinstance(v, h5py.Dataset)})
