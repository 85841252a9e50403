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
        self._slots = [_CudaSlot(), _CudaSlot()] if self.device.type == "cuda" else []
        self._next = 0

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

    def submit(self, batch) -> "Pending":
        """Start the forward of one uint8 NHWC batch; ``.result()`` of the returned handle gives its
        ``(N, 1024)`` float32 features. On CUDA the call returns as soon as the work is queued, so the
        caller can assemble the next batch while the GPU computes this one; on CPU it computes now.

        Two batches are in flight at most: submitting a third first waits for the oldest and
        copies its features out of the pinned buffer that the new batch reuses."""
        self._validate(batch)
        if len(batch) == 0:
            return Pending(np.zeros((0, FEATURE_DIM), np.float32))
        if self.device.type != "cuda":
            with torch.inference_mode():
                return Pending(self._forward(_as_tensor(batch).to(self.device)).cpu().numpy())
        slot = self._slots[self._next]
        self._next = 1 - self._next
        # the chosen GPU is made current so that pinned buffers and events belong to it
        # (otherwise every process would also open a context on GPU 0)
        with torch.inference_mode(), torch.cuda.device(self.device):
            slot.wait()  # the batch submitted two calls ago has left its buffers
            return slot.download(self._forward(slot.upload(batch, self.device)), self.device)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC on the device -> float32 (N, 1024) features on the device."""
        # NHWC -> NCHW by a permute is already the channels_last layout; no copy until requested
        x = x.permute(0, 3, 1, 2).float().sub_(self.mean)
        x = x.contiguous(memory_format=self.memory_format)
        dtype = PRECISIONS[self.precision]
        with torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext():
            return self.model.forward_features(x).float()

    def __call__(self, batch) -> np.ndarray:
        return self.submit(batch).result()


def _as_tensor(batch) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    return torch.from_numpy(np.ascontiguousarray(batch))  # copies only strided views (e.g. BGR flips)


class _CudaSlot:
    """One batch in flight on CUDA: a pinned input buffer (uint8 frames), a pinned output buffer
    (features) and the event that marks the output copied back. Everything runs on the current
    stream, so the copies are ordered with the forward; what overlaps is the host's work on the
    next batch (decoding, batching, the copy into pinned memory) with this batch's GPU work."""

    def __init__(self):
        self.input: torch.Tensor | None = None
        self.output: torch.Tensor | None = None
        self.pending: Pending | None = None

    def wait(self) -> None:
        """Before reuse: the previous batch's features leave the pinned buffer (which also means
        its input upload has finished: both were queued on one stream before the event)."""
        if self.pending is not None:
            self.pending.result()

    def upload(self, batch, device) -> torch.Tensor:
        if isinstance(batch, torch.Tensor) and batch.device.type == "cuda":
            return batch.to(device)
        host = _as_tensor(batch)
        if self.input is None or self.input.shape[1:] != host.shape[1:] or len(self.input) < len(host):
            self.input = torch.empty(host.shape, dtype=torch.uint8, pin_memory=True)
        pinned = self.input[: len(host)]
        pinned.copy_(host)
        return pinned.to(device, non_blocking=True)

    def download(self, features: torch.Tensor, device) -> "Pending":
        n = len(features)
        if self.output is None or len(self.output) < n:
            self.output = torch.empty((n, features.shape[1]), dtype=torch.float32, pin_memory=True)
        out = self.output[:n]
        out.copy_(features, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(device))
        self.pending = Pending(None, (self, out, event))
        return self.pending


class Pending:
    """Features of a submitted batch; ``result()`` waits for them (once) and returns a numpy array
    that the caller owns."""

    def __init__(self, array: np.ndarray | None, in_flight=None):
        self._array, self._in_flight = array, in_flight

    def result(self) -> np.ndarray:
        if self._array is None:
            slot, pinned, event = self._in_flight
            event.synchronize()
            self._array = pinned.numpy().copy()  # the pinned buffer is reused two batches later
            self._in_flight = None
            if slot.pending is self:
                slot.pending = None
        return self._array
