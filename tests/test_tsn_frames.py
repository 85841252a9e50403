"""The end-to-end TSN (BNInception fine-tuned on frames): inputs, recipe, CLI and torchrun, on CPU."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from tapos.tsn.finetune import FrameTSN, optim_groups
from tapos.tsn.frames import FrameSnippets, center_crop, flip, multiscale_crop

BIN = Path(sys.executable).parent
TINY = ["--segments", "2", "--epochs", "1", "--set", "test_segments=2", "--set", "batch_size=2", "--set", "workers=0",
        "--set", 'weights="random"', "--no-progress"]


def test_snippets_decode_exactly_the_sampled_frames(frame_clips, numbers):
    ds = FrameSnippets(frame_clips / "videos", frame_clips / "ann.json", "train", "rgb", "aligned", 2, train=False)
    item = ds[0]
    assert item["frames"].shape == (2, 224, 224, 3) and item["frames"].dtype == torch.uint8
    # aligned test snippets at the centres of [0, 10) and [10, 30)
    assert numbers(item["frames"].numpy(), 30) == [5, 20] == ds.starts(0).tolist()
    ds = FrameSnippets(frame_clips / "videos", frame_clips / "ann.json", "train", "flow", "uniform", 3, train=False)
    item = ds[1]
    assert item["frames"].shape == (3, 224, 224, 10)
    assert ds.starts(1).tolist() == [4, 13, 21]  # L = 5: avg = 26 / 3
    train = FrameSnippets(frame_clips / "videos", frame_clips / "ann.json", "train", "rgb", "uniform", 2, train=True, seed=1)
    a, b = train[0]["frames"], train[0]["frames"]
    assert torch.equal(a, b)  # one draw per (seed, epoch, item)
    train.set_epoch(1)
    assert train[0]["frames"].shape == (2, 224, 224, 3)


def test_multiscale_crop_flip_and_centre_crop():
    rng = np.random.default_rng(0)
    frames = np.random.default_rng(1).integers(0, 255, (2, 256, 340, 10), dtype=np.uint8)
    seen = set()
    for _ in range(40):
        out = multiscale_crop(frames, rng)
        assert out.shape == (2, 224, 224, 10)
        seen.add(out[0, 0, 0, 0])
    assert len(seen) > 5  # different crops
    flipped = flip(frames, flow=True)
    assert (flipped[..., 0::2] == 255 - frames[:, :, ::-1, 0::2]).all()
    assert (flipped[..., 1::2] == frames[:, :, ::-1, 1::2]).all()
    assert (flip(frames[..., :3], flow=False) == frames[:, :, ::-1, :3]).all()
    assert center_crop(frames).shape == (2, 224, 224, 10)


def test_partial_bn_and_learning_rate_multipliers():
    model = FrameTSN("flow", 5, 0.7, "random")
    model.train()
    bns = model.bns
    assert bns[0].training and not any(bn.training for bn in bns[1:])
    assert all(not p.requires_grad for bn in bns[1:] for p in bn.parameters())
    groups = optim_groups(model, "flow", 0.01, 5e-4)
    lrs = [g["lr"] for g in groups]
    assert lrs == [0.05, 0.1, 0.01, 0.02, 0.01]
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0, 5e-4, 0.0, 0.0]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(trainable) and len(set(grouped)) == len(grouped)
    x = torch.randint(0, 255, (1, 2, 224, 224, 10), dtype=torch.uint8)
    assert model(x).shape == (1, 5)


def test_cli_trains_and_evaluates_from_frames(frame_clips, cli):
    out = frame_clips / "run"
    proc = cli("tapos-tsn", "--input", "frames", "--videos", frame_clips / "videos", "--annotations", frame_clips / "ann.json",
               "--modality", "rgb", "--out", out, *TINY)
    assert "RGB Top-1" in proc.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["input"] == "frames" and config["options"]["partial_bn"] is True
    assert (out / "log.csv").read_text().count("\n") == 2  # header + one epoch
    again = cli("tapos-tsn", "--eval-only", "--model", out, "--videos", frame_clips / "videos", "--annotations",
                frame_clips / "ann.json")
    assert again.stdout == proc.stdout
    bad = cli("tapos-tsn", "--input", "frames", "--annotations", frame_clips / "ann.json", "--out", out, check=False)
    assert bad.returncode == 2 and "--videos" in bad.stderr


def test_torchrun_two_processes(frame_clips, cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = frame_clips / "ddp"
    cmd = [str(BIN / "torchrun"), "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(port),
           "-m", "tapos.tsn", "--input", "frames", "--videos", str(frame_clips / "videos"), "--annotations",
           str(frame_clips / "ann.json"), "--modality", "rgb", "--out", str(out), *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("RGB Top-1") == 1  # rank 0 reports
    # rank 0 reports the whole val split: one process evaluating the saved model prints the same table
    alone = cli("tapos-tsn", "--eval-only", "--model", out, "--videos", frame_clips / "videos", "--annotations",
                frame_clips / "ann.json")
    assert "RGB Top-1" in alone.stdout and alone.stdout.strip() in proc.stdout
