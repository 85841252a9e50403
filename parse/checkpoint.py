"""Saving and loading fitted parsers: ``DIR/model.pt`` (tensors, numbers and strings only, so
``torch.load(..., weights_only=True)`` reads it) and ``DIR/config.json``."""
from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from tapos.data.errors import TaposError
from tapos.data.io import atomic_write_bytes, atomic_write_text
from tapos.data.version import __version__

from .base import Parser
from .registry import PARSERS

FORMAT = "tapos-parser/1"


def save_model(parser: Parser, out_dir, modality: str, extra: dict = None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blob = {"format": FORMAT, "version": __version__, "modality": modality, "state": parser.state()}
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(out_dir / "model.pt", buf.getvalue())
    config = {"method": parser.name, "modality": modality, "dim": parser.dim, "num_classes": parser.num_classes,
              "config": parser.config, "tool_version": __version__, **(extra or {})}
    atomic_write_text(out_dir / "config.json", json.dumps(config, indent=1, default=str))
    return out_dir / "model.pt"


def load_model(model_dir) -> tuple:
    """``(parser, modality)`` from a directory written by ``tapos-parse train`` (or a model.pt)."""
    path = Path(model_dir)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise TaposError(f"{path}: no such file (expected a directory written by tapos-parse train)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holds objects weights_only refuses
        raise TaposError(f"{path}: not a loadable tapos model ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise TaposError(f"{path}: not a tapos parser checkpoint (format {FORMAT!r} expected)")
    state = blob["state"]
    cls = PARSERS.get(state.get("method"))
    if cls is None:
        raise TaposError(f"{path}: unknown method {state.get('method')!r}")
    try:
        return cls.from_state(state), blob["modality"]
    except (KeyError, RuntimeError) as exc:
        raise TaposError(f"{path}: checkpoint does not match method {state['method']!r} ({exc})") from None
