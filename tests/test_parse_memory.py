"""Memory on TAPOS's structure (instances of up to 25,050 frames and 54 sub-actions): the methods
compute what they computed before without what grew with the longest instance (issue #27)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tapos.parse import get_parser


def test_ctm_recursion_over_segments_equals_the_recursion_over_frames():
    """The (frame, segment, label, counter) lattice it replaced, written out: same values and gradients."""
    from tapos.parse.ctm import labelings_log_likelihood

    def over_frames(lp, n, L):  # alpha[j, c, d]: in segment j with label c, d + 1 frames into it (capped)
        T, k = lp.shape
        alpha = torch.full((n, k, L), -1e30, dtype=lp.dtype)
        alpha[0, :, 0] = lp[0]
        for t in range(1, T):
            full = alpha[:, :, L - 1]
            other = torch.stack([torch.logsumexp(torch.cat([full[:, :c], full[:, c + 1:]], 1), 1)
                                 for c in range(k)], 1)
            new = torch.full_like(alpha, -1e30)
            new[1:, :, 0] = other[:-1]
            if L > 1:
                new[:, :, 1:] = alpha[:, :, :-1].clone()
                new[:, :, L - 1] = torch.logaddexp(new[:, :, L - 1].clone(), alpha[:, :, L - 1])
            else:
                new[:, :, 0] = torch.logaddexp(new[:, :, 0].clone(), alpha[:, :, 0])
            alpha = new + lp[t][None, :, None]
        return torch.logsumexp(alpha[n - 1, :, L - 1], 0)

    gen = torch.Generator().manual_seed(0)
    for T, n, L, k in [(40, 3, 4, 5), (33, 5, 1, 4), (25, 1, 6, 3), (30, 4, 7, 6)]:
        logits = (torch.randn(T, k, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
        a = over_frames(torch.log_softmax(logits, -1), n, L)
        (ga,) = torch.autograd.grad(a, logits)
        b = labelings_log_likelihood(torch.log_softmax(logits, -1), n, L)
        (gb,) = torch.autograd.grad(b, logits)
        assert torch.allclose(a, b, atol=1e-9) and torch.allclose(ga, gb, atol=1e-9), (T, n, L)


def test_ctm_recomputed_lattice_gives_the_same_loss_and_gradient(monkeypatch):
    from tapos.parse import ctm

    logits = torch.randn(500, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = []
    for states in (1 << 40, 0):  # stored, then recomputed in the backward pass
        monkeypatch.setattr(ctm, "CHECKPOINT_STATES", states)
        x = logits.clone().requires_grad_(True)
        ll = ctm.labelings_log_likelihood(torch.log_softmax(x, -1), 9, 12)
        ll.backward()
        out.append((ll.detach(), x.grad))
    assert torch.equal(out[0][0], out[1][0]) and torch.allclose(out[0][1], out[1][1], atol=1e-12)


def test_ctm_net_on_each_instance_equals_the_padded_batch():
    """forward_many (no padding; the GRU on each instance or, as on a GPU, on a packed batch) gives
    what the padded, packed batch gave, and what each instance gives alone."""
    from torch import nn

    from tapos.parse.ctm import CTMNet

    torch.manual_seed(0)
    net = CTMNet(6, 8, 5).eval()
    xs = [torch.randn(T, 6) for T in (9, 30, 1, 14)]
    with torch.no_grad():
        got = net.forward_many(xs)
        lengths = torch.tensor([len(x) for x in xs])
        x = nn.utils.rnn.pad_sequence(xs, batch_first=True)  # the former forward_padded
        h = torch.relu(net.conv(x.transpose(1, 2))).transpose(1, 2)
        packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        h, _ = nn.utils.rnn.pad_packed_sequence(net.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
        ref = torch.log_softmax(net.out(h), -1)
        packed = net.forward_many(xs, packed=True)  # the GPU's way
        for i, xi in enumerate(xs):
            assert got[i].shape == packed[i].shape == (len(xi), 5)
            assert torch.allclose(got[i], ref[i, :len(xi)], atol=1e-5)
            assert torch.allclose(got[i], net(xi), atol=1e-5)
            assert torch.allclose(packed[i], ref[i, :len(xi)], atol=1e-5)


def test_ctm_gru_in_recomputed_chunks_gives_the_same_outputs_and_gradients(monkeypatch):
    from tapos.parse import ctm

    torch.manual_seed(0)
    net = ctm.CTMNet(6, 8, 5)
    xs = [torch.randn(T, 6) for T in (77, 5, 30)]
    out = []
    for chunk in (1 << 30, 7):  # one call per direction, then 7 rows at a time
        monkeypatch.setattr(ctm, "GRU_CHUNK", chunk)
        net.zero_grad()
        inputs = [x.clone().requires_grad_(True) for x in xs]
        lps = net.forward_many(inputs)
        sum((lp * torch.linspace(-1, 1, lp.numel()).view_as(lp)).sum() for lp in lps).backward()
        out.append((lps, [x.grad for x in inputs], [p.grad.clone() for p in net.parameters()]))
    (a, ga, pa), (b, gb, pb) = out
    assert all(torch.equal(u.detach(), v.detach()) for u, v in zip(a, b))
    assert all(torch.allclose(u, v, atol=1e-6) for u, v in zip(ga + pa, gb + pb))


CTM_LONG = """
import json, resource, torch
torch.set_num_threads(1)  # a small problem per operation: threads only contend on a busy machine
from tapos.parse.ctm import labelings_log_likelihood
torch.manual_seed(0)
x = torch.randn(25050, 16, requires_grad=True)  # TAPOS's longest train instance, its 54 sub-actions
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ll = labelings_log_likelihood(torch.log_softmax(x, -1), 54, 115)
ll.backward()
print(json.dumps({"grew_gb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 ** 2,
                  "finite": bool(torch.isfinite(ll) and torch.isfinite(x.grad).all())}))
"""


def test_ctm_loss_of_the_longest_tapos_instance_fits_in_memory():
    """25,050 frames, 54 sub-actions, segments of at least 115 frames: the frame lattice was
    25,050 x 54 x 16 x 115 states kept for the backward pass (terabytes). Now 54 tables of
    25,050 x 16 (about 0.3 GB live; the RSS it adds varies with the allocator's reuse, 0.3-1.1 GB)."""
    proc = subprocess.run([sys.executable, "-c", CTM_LONG], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["finite"] and out["grew_gb"] < 2.0, out


def test_embed_partners_lie_within_the_window_of_long_instances():
    from tapos.parse.embed import sample_pairs

    torch.manual_seed(0)
    mask = torch.zeros(3, 25050, dtype=torch.bool)
    mask[0], mask[1, :300], mask[2, :2] = True, True, True
    a, p, ok = sample_pairs(mask, 64, 2)
    lengths = mask.sum(1, keepdim=True)
    d = (a - p).abs()
    assert ok.all() and torch.all((d >= 1) & (d <= 2)) and torch.all(p < lengths) and torch.all(a < lengths)
    # every offset is drawn
    assert set((p - a)[0].tolist()) == {-2, -1, 1, 2}


@pytest.mark.parametrize("kernel", [2, 8, 16])
def test_tsm_band_equals_the_band_of_the_whole_matrix(kernel, monkeypatch):
    from tapos.parse import tsm

    x = np.random.default_rng(kernel).normal(size=(50, 7))
    x[20:] += 2.0
    sim = tsm.self_similarity(x)
    h = kernel // 2
    pad = np.pad(sim, h, constant_values=np.nan)
    win = np.lib.stride_tricks.sliding_window_view(pad, (2 * h, 2 * h))
    full = win[np.arange(50), np.arange(50)]
    band = tsm.similarity_band(x, kernel)
    assert np.array_equal(np.isnan(band), np.isnan(full)) and np.allclose(np.nan_to_num(band), np.nan_to_num(full),
                                                                        atol=1e-12)
    parser = get_parser("tsm", kernel=kernel, min_length=4)  # rows: an unfitted parser has no rows' rate
    whole = parser.score(x)
    monkeypatch.setattr(tsm, "FULL_MATRIX_ROWS", 10)  # score it as a long instance
    assert np.allclose(parser.score(x), whole, atol=1e-12)
    assert parser.boundary_rows(x).tolist() == get_parser("tsm", kernel=kernel, min_length=4).boundary_rows(x).tolist()


class _Items:
    """A stand-in for a FeatureDataset: items with features and row boundaries."""

    def __init__(self, xs, bounds):
        self.items = [{"key": f"k{i}", "features": torch.from_numpy(x), "row_boundaries": torch.tensor(b)}
                      for i, (x, b) in enumerate(zip(xs, bounds))]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _isba_transcripts_holding_every_row(parser, train, sample):
    """The pseudo transcripts as computed before streaming: every segment's rows in memory."""
    from sklearn.cluster import KMeans

    segments, lengths = [], {}
    for i in range(len(train)):
        item = train[i]
        x = parser.transform(item["features"].numpy())
        lengths[item["key"]] = len(x)
        edges = [0, *item["row_boundaries"].tolist(), len(x)]
        segments += [(item["key"], x[edges[j]:edges[j + 1]]) for j in range(len(edges) - 1) if edges[j + 1] > edges[j]]
    if parser.config["transcripts"] == "frames":
        frames = np.concatenate([rows for _, rows in segments])
        if len(frames) > sample:
            frames = frames[np.random.default_rng(0).choice(len(frames), sample, replace=False)]
        km = KMeans(n_clusters=min(int(parser.config["k"]), len(frames)), n_init=3, random_state=0).fit(frames)
        labels = [int(np.bincount(km.predict(rows)).argmax()) for _, rows in segments]
    else:
        means = np.stack([rows.mean(0) for _, rows in segments])
        labels = KMeans(n_clusters=min(int(parser.config["k"]), len(means)), n_init=3,
                        random_state=0).fit_predict(means)
    out = {}
    for (key, _), lab in zip(segments, labels):
        out.setdefault(key, []).append(int(lab))
    return out


@pytest.mark.parametrize("transcripts,sample", [("segments", 50000), ("frames", 50000), ("frames", 300)])
def test_isba_streamed_transcripts_equal_those_from_every_row(transcripts, sample, monkeypatch):
    from tapos.parse import isba

    rng = np.random.default_rng(0)
    protos = rng.normal(size=(6, 5)).astype(np.float32)
    xs, bounds = [], []
    for i in range(30):
        T = int(rng.integers(8, 60))
        b = sorted(rng.choice(np.arange(2, T - 1), size=int(rng.integers(0, 4)), replace=False).tolist())
        seg = np.searchsorted(b, np.arange(T), side="right")
        labels = rng.integers(0, 6, size=len(b) + 1)
        xs.append((protos[labels[seg]] + 0.3 * rng.normal(size=(T, 5))).astype(np.float32))
        bounds.append(b)
    train = _Items(xs, bounds)
    monkeypatch.setattr(isba, "FRAME_SAMPLE", sample)  # 300: the sampled branch (the split has more frames)
    parser = get_parser("isba", k=4, transcripts=transcripts)
    parser.mean, parser.std = np.zeros(5, np.float32), np.ones(5, np.float32)
    parser._pseudo_transcripts(train)
    assert parser.transcripts == _isba_transcripts_holding_every_row(parser, train, sample)
    assert all(len(parser.bounds[f"k{i}"]) == len(b) for i, b in enumerate(bounds))
