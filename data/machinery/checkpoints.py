"""Model directories: ``DIR/model.pt`` (tensors, numbers and strings only, read back with
``torch.load(..., weights_only=True)``, so a checkpoint from elsewhere cannot run code) and
``DIR/config.json`` (what a person reads). Every stage that saves a model uses these two."""
from __future__ import annotations

import io
import json
from pathlib import Path

from ..errors import TaposError
from ..io import atomic_write_bytes, atomic_write_text
from ..version import __version__


def save_checkpoint(out_dir, fmt: str, payload: dict, config: dict) -> Path:
    """Write ``{"format": fmt, "version": ..., **payload}`` to ``out_dir/model.pt`` and ``config``
    to ``out_dir/config.json``, each atomically. Returns the checkpoint's path."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"format": fmt, "version": __version__, **payload}, buf)
    atomic_write_bytes(out_dir / "model.pt", buf.getvalue())
    atomic_write_text(out_dir / "config.json", json.dumps(config, indent=1, default=str))
    return out_dir / "model.pt"


def load_checkpoint(model_dir, fmt: str, what: str, writer: str) -> dict:
    """The checkpoint in ``model_dir`` (a directory or its model.pt), loaded with the restricted
    unpickler; one-line ``TaposError`` when it is missing, unreadable or not of format ``fmt``.
    ``what`` ("tapos model") and ``writer`` (the command that writes such directories) word the
    error messages."""
    import torch

    path = Path(model_dir)
    path = path / "model.pt" if path.is_dir() else path
    if not path.is_file():
        raise TaposError(f"{path}: no such file (expected a directory written by {writer})")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holds objects weights_only refuses
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise TaposError(f"{path}: not a loadable {what} ({type(exc).__name__}: {first})") from None
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        raise TaposError(f"{path}: not a {what} checkpoint (format {fmt!r} expected)")
    return blob
