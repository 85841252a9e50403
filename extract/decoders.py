"""Clips decoded ahead in background threads, each thread with its own queue of messages.

Decoder ``k`` of ``n`` takes clips ``k, k + n, ...`` in order, so the consumer reads clip ``i``'s
messages from queue ``i % n`` and the clips come back in their original order. A clip's messages
are zero or more :class:`Rows`, then exactly one of :class:`Decoded`, :class:`Skipped` or
:class:`Failed`.
"""
from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional

from tapos.data.machinery.cache_job import BUSY, Claim, error_message
from tapos.data.videos import Clip

from .decode import Chunk, ClipMeta, ClipReader, Sampling


@dataclass
class Rows:
    """The next decoded frames of ``clip``."""

    clip: Clip
    chunk: Chunk


@dataclass
class Decoded:
    """``clip`` is decoded completely; this process holds its ``claim`` until the part is written."""

    clip: Clip
    meta: ClipMeta
    claim: Any


@dataclass
class Skipped:
    """``clip`` is not this process's to extract: already complete, or ``busy`` in another process."""

    clip: Clip
    busy: bool


@dataclass
class Failed:
    """``clip`` cannot be decoded (rows already sent for it are computed and dropped)."""

    clip: Clip
    message: str


def decoder_count(requested, device: str) -> int:
    """Decoder threads: ``requested``, else 2 on CPU, else half the cores of this process (cores
    divided among the torchrun processes of this node), between 2 and 8. One 256p RGB reader
    delivers about 750 frames/s for 1.6 CPU ms per frame (benchmarks/extract_throughput.py), so
    a GPU that computes thousands of frames/s needs several, each with a core to spare."""
    if requested:
        return max(1, int(requested))
    if not str(device).startswith("cuda"):
        return 2
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(2, min(8, per_process // 2))


class Decoders:
    """``n`` threads decoding ``clips`` ahead of the consumer (short queues bound the memory).
    ``begin(key)`` claims a clip or says why not (:meth:`CacheJob.begin`)."""

    def __init__(self, clips: List[Clip], begin, opts: dict, n: int, device: str = "cpu"):
        self.device = device  # where a batched flow method (tvl1-torch) runs
        self.queues = [queue.Queue(maxsize=4) for _ in range(n)]
        self._stop = threading.Event()
        self._sampling = Sampling(opts["stride"], opts["fps"])
        self._begin, self._opts = begin, opts
        self._threads = [threading.Thread(target=self._decode, args=(clips[k::n], self.queues[k]), daemon=True)
                         for k in range(n)]
        for t in self._threads:
            t.start()

    def messages(self, i: int, clip: Clip) -> Iterator:
        """The messages of clip ``i`` (which is ``clip``), up to and including its last."""
        q = self.queues[i % len(self.queues)]
        while True:
            msg = q.get()
            assert msg.clip.key == clip.key, "decoder queues out of order"
            yield msg
            if not isinstance(msg, Rows):
                return

    def close(self) -> None:
        """Stop the threads; claims of clips decoded but never consumed are released."""
        self._stop.set()
        for q in self.queues:  # unblock decoders waiting to put
            while True:
                try:
                    msg = q.get_nowait()
                except queue.Empty:
                    break
                if isinstance(msg, Decoded):
                    msg.claim.release()
        for t in self._threads:
            t.join(timeout=5)

    # -- in the decoder threads ---------------------------------------------------------------
    def _put(self, q: queue.Queue, msg) -> bool:
        """Queue ``msg`` unless the run stops meanwhile (then False)."""
        while not self._stop.is_set():
            try:
                q.put(msg, timeout=0.2)
                return True
            except queue.Full:
                pass
        return False

    def _decode(self, jobs: List[Clip], q: queue.Queue) -> None:
        for clip in jobs:
            if self._stop.is_set():
                return
            claim = self._begin(clip.key)
            if not isinstance(claim, Claim):  # busy in another process, or finished
                self._put(q, Skipped(clip, busy=claim == BUSY))
                continue
            if not self._read(clip, claim, q):
                return

    def _read(self, clip: Clip, claim, q: queue.Queue) -> bool:
        """Send one clip's rows and its end; False when the run stopped meanwhile."""
        opts = self._opts
        try:
            reader = ClipReader(clip, opts["modalities"], self._sampling, opts["flow"], opts["flow_threads"],
                                flow_device=self.device,
                                flow_options=opts["flow_options"])
            for chunk in reader:
                if not self._put(q, Rows(clip, chunk)):
                    claim.release()
                    return False
            meta: Optional[ClipMeta] = reader.meta
        except Exception as exc:  # isolate the failure to this clip (a bad video, a missing file)
            claim.release()
            return self._put(q, Failed(clip, error_message(exc)))
        if not self._put(q, Decoded(clip, meta, claim)):
            claim.release()
            return False
        return True
