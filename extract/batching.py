"""Batches for the backbones that fill across clip boundaries, with the rows of each clip
collected back as they are computed."""
from __future__ import annotations

import numpy as np


class ClipRows:
    """Features of one clip as batches come back; complete when its end has arrived and every
    row queued for it has been through the network."""

    def __init__(self, clip):
        self.clip = clip
        self.out, self.index = {}, []
        self.queued = self.computed = 0
        self.ended = False   # the decoder's last message about the clip has arrived
        self.meta = None     # the clip's ClipMeta, when it was decoded completely
        self.claim = None    # this process's claim on the clip, until its part is written
        self.failed = None   # error message

    @property
    def complete(self) -> bool:
        return self.ended and self.computed == self.queued


class Batcher:
    """Fills batches of ``batch_size`` rows across clip boundaries (a clip's last rows share a
    batch with the next clip's first, so short clips do not leave the device half idle).

    One batch stays in flight: batch k's features are collected after batch k+1 has been
    submitted, so on a GPU the host assembles the next batch while the device computes (on CPU
    ``submit`` computes at once and nothing changes). ``flush`` collects everything."""

    def __init__(self, backbones, batch_size):
        self.backbones, self.batch_size = backbones, batch_size
        self.blocks = []     # (clip rows, {modality: uint8 rows})
        self.pending = 0
        self.in_flight = None  # (taken, sizes, {modality: Pending}) of the last submitted batch

    def add(self, state: ClipRows, chunk) -> None:
        state.index.append(chunk.frame_index)
        state.queued += len(chunk.frame_index)
        self.blocks.append((state, {m: getattr(chunk, m) for m in self.backbones}))
        self.pending += len(chunk.frame_index)
        while self.pending >= self.batch_size:
            self._run(self.batch_size)

    def flush(self) -> None:
        while self.pending:
            self._run(min(self.pending, self.batch_size))
        self._collect()

    def _run(self, n: int) -> None:
        taken, need = [], n
        while need:
            state, arrays = self.blocks[0]
            rows = len(next(iter(arrays.values())))
            if rows <= need:
                taken.append((state, arrays))
                self.blocks.pop(0)
                need -= rows
            else:
                taken.append((state, {m: a[:need] for m, a in arrays.items()}))
                self.blocks[0] = (state, {m: a[need:] for m, a in arrays.items()})
                need = 0
        self.pending -= n
        sizes = [len(next(iter(a.values()))) for _, a in taken]
        handles = {}
        for m, net in self.backbones.items():
            rows = np.concatenate([a[m] for _, a in taken])
            if n < self.batch_size:
                # Always the same batch shape: kernels chosen per shape would otherwise round a
                # frame differently when a resumed run batches it with other frames.
                rows = np.concatenate([rows, np.zeros((self.batch_size - n,) + rows.shape[1:], rows.dtype)])
            handles[m] = net.submit(rows)
        self._collect()
        self.in_flight = ([state for state, _ in taken], sizes, handles)

    def _collect(self) -> None:
        """Hand the features of the batch in flight to the clips its rows came from."""
        if self.in_flight is None:
            return
        states, sizes, handles = self.in_flight
        self.in_flight = None
        n = sum(sizes)
        for m, handle in handles.items():
            feats = handle.result()[:n]
            for state, part in zip(states, np.split(feats, np.cumsum(sizes)[:-1])):
                state.out.setdefault(m, []).append(part)
        for state, size in zip(states, sizes):
            state.computed += size
