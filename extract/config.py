"""The options of an extraction run, declared once: ``tapos-extract run``'s flags, their help and
defaults, and what :func:`tapos.extract.extract` accepts all come from :class:`ExtractConfig`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import click

from tapos.data.annotations import SUBSETS
from tapos.data.features import DTYPES
from tapos.data.machinery.cli_utils import RegistryChoice
from tapos.data.options import Config, option

from .backbone import PRECISIONS
from .flow import FLOW_METHODS


def _flow_help() -> str:
    return "Optical flow: " + "; ".join(f"{m.name} ({m.summary})" for m in FLOW_METHODS.values()) + "."


@dataclass(frozen=True)
class ExtractConfig(Config):
    """How ``tapos-extract`` makes features (``extract(videos, out, **options)`` takes the same names)."""

    WHAT = "extraction"

    split: Optional[str] = option(None, "With --annotations: one subset only.", type=click.Choice(SUBSETS),
                                  show_default=False)
    modalities: str = option("rgb", "rgb, flow or rgb,flow.", flag="--modality")  # a tuple is taken as well
    # tvl1 (the paper's), tvl1-torch (the same in PyTorch, on the device), dis (fast on CPU), farneback
    flow: str = option("tvl1", _flow_help(), type=RegistryChoice(FLOW_METHODS))
    # the flow method's parameters over its defaults (tapos-extract: --set NAME=VALUE)
    flow_options: Optional[dict] = option(None, cli=False)
    weights: str = option("imagenet", "imagenet (downloaded once into the torch hub cache), random (tests, demos) "
                          "or a .pth file.")
    flow_weights: Optional[str] = option(None, "Weights of the flow net (default: TSN's cross-modality init from "
                                         "--weights).", show_default=False)
    stride: int = option(1, "Keep every S-th frame (of the clip resampled by its timestamps to its own rate).",
                         type=click.IntRange(1))
    fps: Optional[float] = option(None, "Rows at this rate instead (row t: the frame nearest t/F s).",
                                  type=click.FloatRange(min=0, min_open=True), show_default=False)
    batch_size: int = option(32, "Frames per forward pass.", type=click.IntRange(1))
    device: str = option("cpu", "cpu, cuda, cuda:1 (under torchrun: cuda = cuda:LOCAL_RANK).")
    precision: str = option("fp32", "Autocast precision on CUDA.", type=click.Choice(list(PRECISIONS)))
    # float16 halves the cache; pooled features lose nothing
    dtype: str = option("float16", "Stored feature type.", type=click.Choice(DTYPES))
    # each decoder a thread with its own ffmpeg processes; on CPU the model is the bottleneck
    decoders: Optional[int] = option(None, "Clips decoded ahead in parallel (default: 2 on CPU; on CUDA half this "
                                     "process's cores, 2-8).", type=click.IntRange(1), show_default=False)
    flow_threads: Optional[int] = option(None, "Threads computing flow per clip (default: CPU count; tvl1-torch on "
                                         "CPU: 1 torch thread).", type=click.IntRange(1), show_default=False)
    overwrite: bool = option(False, "Redo instances already extracted (default: skip them).")
    progress: bool = option(True, "A bar on a terminal, a line per 10% of the clips into a log file.",
                            flag="--progress/--no-progress")
