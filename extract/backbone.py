"""BNInception as a frame -> 1024-d feature function for the extractor.

Takes uint8 NHWC batches straight from the decoder (BGR frames or stacked flow fields), so the
host-to-device copy moves bytes, not floats; mean subtraction and the layout change happen on
the device.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from .bninception import FEATURE_DIM, IN_CHANNELS, build_bninception, fold_batchnorm
from .weights import init_random, load_into, resolve_weights

# What the published weights expect: BGR 0..255 minus these means, std 1 (flow: x/y fields in 0..255)
RGB_MEAN_BGR = (104, 117, 128)
FLOW_MEAN = 128
PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
MIN_SIZE = 32  # the network downsamples 32x; smaller inputs leave nothing to pool


def input_mean(modality: str) -> torch.Tensor:
    """The per-channel mean subtracted from the 0..255 input, shaped (1, C, 1, 1)."""
    if modality == "rgb":
        values = RGB_MEAN_BGR
    elif modality == "flow":
        values = (FLOW_MEAN,) * IN_CHANNELS["flow"]
    else:
        raise ValueError(f"unknown modality {modality!r} (expected one of {', '.join(IN_CHANNELS)})")
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)


class Backbone:
    """``Backbone("rgb", "imagenet", device="cuda", precision="fp16")(frames) -> (N, 1024) float32``.

    fp16/bf16 (autocast) need a CUDA device; on CPU the network runs in fp32. ``weights`` is
    ``"random"`` (seeded by ``seed``), ``"imagenet"`` or a path; see ``weights.resolve_weights``.
    """

    feature_dim = FEATURE_DIM

    def __init__(self, modality: str = "rgb", weights="random", device="cpu", precision: str = "fp32",
                 fold: bool = True, channels_last: bool = True, progress: bool = True, seed: int = 0):
        if modality not in IN_CHANNELS:
            raise ValueError(f"unknown modality {modality!r} (expected one of {', '.join(IN_CHANNELS)})")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r} (expected one of {', '.join(PRECISIONS)})")
        self.device = torch.device(device)
        if self.device.type != "cuda" and precision != "fp32":
            raise ValueError(f"precision {precision} needs a CUDA device; use fp32 on {self.device.type}")
        self.modality, self.precision, self.channels = modality, precision, IN_CHANNELS[modality]
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

        state, self.description = resolve_weights(weights, modality, progress=progress)
        # the classifier is unused for features; size it from the file so fine-tuned checkpoints load
        num_classes = 1000 if state is None else state["last_linear.weight"].shape[0]
        model = build_bninception(modality, num_classes)
        if state is None:
            init_random(model, seed)
        else:
            load_into(model, state, self.description)
        model.eval()
        if fold:
            model = fold_batchnorm(model)
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.mean = input_mean(modality).to(self.device)
        self._pinned: torch.Tensor | None = None

    def _validate(self, batch) -> None:
        if isinstance(batch, np.ndarray):
            dtype_ok = batch.dtype == np.uint8
        elif isinstance(batch, torch.Tensor):
            dtype_ok = batch.dtype == torch.uint8
        else:
            raise ValueError(f"expected a numpy array or torch tensor, got {type(batch).__name__}")
        shape = tuple(batch.shape)
        if len(shape) != 4 or shape[3] != self.channels or min(shape[1:3]) < MIN_SIZE:
            raise ValueError(f"expected a uint8 batch of shape (N, H, W, {self.channels}) with H, W >= {MIN_SIZE} "
                             f"for {self.modality} (224x224 for the published weights), got {shape}")
        if not dtype_ok:
            raise ValueError(f"expected a uint8 batch for {self.modality}, got {batch.dtype}")

    def _upload(self, batch) -> torch.Tensor:
        """uint8 NHWC on the device; on CUDA through a pinned host buffer reused across calls."""
        if isinstance(batch, torch.Tensor):
            if batch.device.type != "cpu":
                return batch.to(self.device)
            batch = batch.numpy()
        host = torch.from_numpy(np.ascontiguousarray(batch))  # copies only strided views (e.g. BGR flips)
        if self.device.type != "cuda":
            return host.to(self.device)
        if self._pinned is None or self._pinned.shape[1:] != host.shape[1:] or len(self._pinned) < len(host):
            self._pinned = torch.empty((max(len(host), 1),) + tuple(host.shape[1:]), dtype=torch.uint8, pin_memory=True)
        # Reusing the buffer is safe: __call__ ends with a synchronising copy of the features to the host,
        # so the previous asynchronous upload from it has finished.
        pinned = self._pinned[: len(host)]
        pinned.copy_(host)
        return pinned.to(self.device, non_blocking=True)

    def __call__(self, batch) -> np.ndarray:
        self._validate(batch)
        if len(batch) == 0:
            return np.zeros((0, FEATURE_DIM), np.float32)
        with torch.inference_mode():
            # NHWC -> NCHW by a permute is already the channels_last layout; no copy until requested
            x = self._upload(batch).permute(0, 3, 1, 2).float().sub_(self.mean)
            x = x.contiguous(memory_format=self.memory_format)
            dtype = PRECISIONS[self.precision]
            with torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext():
                features = self.model.forward_features(x)
            return features.float().cpu().numpy()
