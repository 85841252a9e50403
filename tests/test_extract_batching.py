"""The extractor's batching: rows fill batches across clips, one batch stays in flight while the
next is assembled, and every clip gets back exactly its rows' features in order."""
from types import SimpleNamespace

import numpy as np

from tapos.extract.backbone import Backbone, Pending
from tapos.extract.batching import Batcher, ClipRows
from tapos.extract.decode import Clip


class RecordingNet:
    """Feature of a row = its first pixel; records submit/result order."""

    def __init__(self, log):
        self.log, self.count = log, 0

    def submit(self, batch):
        k = self.count
        self.count += 1
        self.log.append(("submit", k))
        feats = np.repeat(batch[:, 0, 0, :1].astype(np.float32), 4, axis=1)

        class Handle(Pending):
            def result(handle):
                self.log.append(("result", k))
                return Pending.result(handle)

        return Handle(feats)


def chunk(values):
    rows = np.zeros((len(values), 32, 32, 3), np.uint8)
    rows[:, 0, 0, 0] = values
    return SimpleNamespace(frame_index=np.arange(len(values)), rgb=rows)


def test_rows_come_back_to_their_clips_with_one_batch_in_flight():
    log = []
    batcher = Batcher({"rgb": RecordingNet(log)}, batch_size=4)
    states = [ClipRows(Clip(f"c{i}", None)) for i in range(3)]
    values = {0: [1, 2, 3, 4, 5], 1: [10, 11], 2: [20, 21, 22, 23, 24, 25, 26]}
    batcher.add(states[0], chunk(values[0][:3]))
    batcher.add(states[0], chunk(values[0][3:]))   # batch 0 submitted, nothing collected yet
    assert log == [("submit", 0)] and states[0].computed == 0
    batcher.add(states[1], chunk(values[1]))
    batcher.add(states[2], chunk(values[2]))       # batches 1 and 2; each collects the previous one
    assert log == [("submit", 0), ("submit", 1), ("result", 0), ("submit", 2), ("result", 1)]
    batcher.flush()                                # the last 2 rows padded to a batch of 4
    assert log[-3:] == [("submit", 3), ("result", 2), ("result", 3)]
    for i, s in enumerate(states):
        got = np.concatenate(s.out["rgb"])[:, 0]
        assert got.tolist() == values[i], i
        assert s.computed == s.queued == len(values[i])


def test_backbone_submit_gives_each_batch_its_own_features():
    net = Backbone("rgb", "random")
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8) for _ in range(3)]
    pending = [net.submit(b) for b in batches]
    for b, p in reversed(list(zip(batches, pending))):
        np.testing.assert_array_equal(p.result(), net(b))
    assert net.submit(batches[0][:0]).result().shape == (0, 1024)


def test_decoder_count(monkeypatch):
    import os

    from tapos.extract.pipeline import decoder_count

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert decoder_count(3, "cuda") == 3 and decoder_count(None, "cpu") == 2
    assert decoder_count(None, "cuda") == 8 and decoder_count(None, "cuda:1") == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # 4 GPUs share the node's 16 cores
    assert decoder_count(None, "cuda") == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert decoder_count(None, "cuda") == 8
