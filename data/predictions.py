"""Prediction files: ``{key: [boundary, ...]}``, boundaries in frames or seconds.

``tapos-parse predict`` writes them, ``tapos-evaluate`` and ``tapos-tsn --sampling parsed`` read
them. Frames are relative to the instance start in annotation frames (the TAPOS protocol);
seconds are relative to the instance start (the GEBD protocol). JSON, or a pickle read through the
restricted unpickler.
"""
from __future__ import annotations

import json
import math
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import PredictionError, UnsafePickleError
from .instances import is_number
from .io import atomic_write_bytes, atomic_write_text, safe_load_pickle


def predictions_from_object(raw, path="<predictions>") -> dict:
    """Validate a parsed prediction object; return ``{key: float64 array}`` (order kept)."""
    if not isinstance(raw, Mapping):
        raise PredictionError(
            f"{path}: expected a mapping from instance key to a list of boundaries, got {type(raw).__name__}"
        )
    out = {}
    for key, values in raw.items():
        if not isinstance(key, str):
            raise PredictionError(f"{path}: key {key!r} is not a string")
        if isinstance(values, np.ndarray):
            values = values.reshape(-1).tolist() if values.dtype.kind in "iuf" else values.tolist()
        if not isinstance(values, (list, tuple)):
            raise PredictionError(f"{path}: key {key!r}: expected a list of boundaries, got {type(values).__name__}")
        for v in values:
            if not is_number(v):
                raise PredictionError(f"{path}: key {key!r}: boundary {v!r} is not a number")
            if not math.isfinite(float(v)):
                raise PredictionError(f"{path}: key {key!r}: boundary {v!r} is not finite")
        out[key] = np.asarray([float(v) for v in values], dtype=np.float64)
    return out


def load_predictions(path) -> dict:
    """Read and validate a prediction file (``.json`` or ``.pkl``)."""
    path = Path(path)
    if not path.is_file():
        raise PredictionError(f"{path}: no such file")
    if path.suffix.lower() in (".pkl", ".pickle"):
        try:
            raw = safe_load_pickle(path)
        except UnsafePickleError as exc:
            raise PredictionError(str(exc)) from None
    else:
        try:
            # NaN/Infinity are not JSON; refuse them instead of letting Python's parser accept them.
            raw = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise PredictionError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        except ValueError as exc:
            raise PredictionError(f"{path}: {exc}") from None
    return predictions_from_object(raw, path)


def _reject_constant(name):
    raise ValueError(f"boundary {name} is not finite")


def save_predictions(predictions: Mapping, path) -> None:
    """Write ``{key: boundaries}`` as JSON (or pickle for a ``.pkl`` suffix), atomically.

    Integral values are written as integers so frame predictions stay readable.
    """
    clean = {}
    for key, values in predictions.items():
        row = []
        for v in np.asarray(values, dtype=np.float64).reshape(-1):
            if not math.isfinite(v):
                raise PredictionError(f"{path}: key {key!r}: boundary {v} is not finite")
            row.append(int(v) if float(v).is_integer() else float(v))
        clean[str(key)] = row
    path = Path(path)
    if path.suffix.lower() in (".pkl", ".pickle"):
        atomic_write_bytes(path, pickle.dumps(clean, protocol=4))
    else:
        atomic_write_text(path, json.dumps(clean, indent=1))
