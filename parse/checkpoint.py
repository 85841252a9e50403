"""Saving and loading fitted parsers: ``DIR/model.pt`` (tensors, numbers and strings only, so
``torch.load(..., weights_only=True)`` reads it) and ``DIR/config.json``."""
from __future__ import annotations

from pathlib import Path

from tapos.data.machinery.checkpoints import load_checkpoint, save_checkpoint
from tapos.data.errors import TaposError
from tapos.data.version import __version__

from .base import Parser
from .registry import PARSERS

FORMAT = "tapos-parser/1"


def save_model(parser: Parser, out_dir, modality: str, extra: dict = None) -> Path:
    config = {"method": parser.name, "preset": parser.preset, "modality": modality, "dim": parser.dim,
              "num_classes": parser.num_classes, "config": parser.config, "tool_version": __version__, **(extra or {})}
    return save_checkpoint(out_dir, FORMAT, {"modality": modality, "state": parser.state()}, config)


def load_model(model_dir) -> tuple:
    """``(parser, modality)`` from a directory written by ``tapos-parse train`` (or a model.pt)."""
    blob = load_checkpoint(model_dir, FORMAT, "tapos model", "tapos-parse train")
    path = Path(model_dir)
    state = blob["state"]
    cls = PARSERS.get(state.get("method"))
    if cls is None:
        raise TaposError(f"{path}: unknown method {state.get('method')!r}")
    try:
        return cls.from_state(state), blob["modality"]
    except (KeyError, RuntimeError) as exc:
        raise TaposError(f"{path}: checkpoint does not match method {state['method']!r} ({exc})") from None
