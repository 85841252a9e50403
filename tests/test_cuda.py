"""The CUDA paths: reduced-precision features, batches in flight, extraction, parser and TSN
training on a GPU. Skipped where torch sees no CUDA device (CI); run them on a GPU machine with
``python -m pytest tests/test_cuda.py`` (benchmarks/gpu_check.sh does, with the throughput table)."""
import json

import numpy as np
import pytest
import torch

from tapos.data import FeatureReader, load_annotations
from tapos.extract import extract
from tapos.extract.backbone import Backbone

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def cosine_rows(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (6, 224, 224, 3), dtype=np.uint8)


@pytest.mark.parametrize("precision,floor", [("fp32", 0.9999), ("fp16", 0.999), ("bf16", 0.995)])
def test_gpu_features_match_cpu(frames, precision, floor):
    cpu = Backbone("rgb", "random")(frames)
    gpu = Backbone("rgb", "random", device="cuda", precision=precision)(frames)
    assert gpu.dtype == np.float32 and gpu.shape == cpu.shape
    assert cosine_rows(cpu, gpu).min() >= floor


def test_batches_in_flight_keep_their_own_features(frames):
    net = Backbone("rgb", "random", device="cuda", precision="fp16")
    batches = [frames[:2], frames[2:4], frames[4:]]
    pending = [net.submit(b) for b in batches]  # the third reuses the first's pinned buffers
    alone = [net(b) for b in batches]
    for p, expect in reversed(list(zip(pending, alone))):
        np.testing.assert_allclose(p.result(), expect, rtol=1e-3, atol=1e-3)


def test_extract_on_gpu_matches_cpu(tmp_path, video_dir, cli):
    cpu_out, gpu_out = tmp_path / "cpu.h5", tmp_path / "gpu.h5"
    extract(video_dir, cpu_out, weights="random", modalities=("rgb", "flow"), flow="dis", batch_size=8,
            progress=False)
    proc = cli("tapos-extract", video_dir, gpu_out, "--weights", "random", "--modality", "rgb,flow", "--flow", "dis",
               "--batch-size", "8", "--device", "cuda", "--precision", "fp16", "--no-progress")
    assert "5 extracted" in proc.stdout
    with FeatureReader(cpu_out) as a, FeatureReader(gpu_out) as b:
        assert sorted(a.keys()) == sorted(b.keys()) == ["a", "b", "d", "e", "sub__c"]
        for k in a.keys():
            assert np.array_equal(a.frame_index(k), b.frame_index(k))
            for m in ("rgb", "flow"):
                assert cosine_rows(a.read(k, m), b.read(k, m)).min() >= 0.995, (k, m)


@pytest.mark.parametrize("method", ["transparser", "tcn", "ctm", "isba", "embed"])
def test_parser_trained_on_gpu_predicts_on_cpu(method, synth_dir, tmp_path, cli):
    ann, feats = synth_dir / "tapos_annotation.json", synth_dir / "features.h5"
    out = tmp_path / method
    cli("tapos-parse", "train", "--method", method, "--features", feats, "--annotations", ann, "--out", out,
        "--epochs", "2", "--device", "cuda")
    pred = tmp_path / "pred.json"
    cli("tapos-parse", "predict", "--model", out, "--features", feats, "--annotations", ann, "--out", pred)
    scores = tmp_path / "scores.json"
    cli("tapos-evaluate", "tapos", ann, pred, "--json", scores)
    assert 0 < json.loads(scores.read_text())["relative"]["avg_f1"] <= 1
    assert len(json.loads(pred.read_text())) == len(load_annotations(ann).split("val"))


def test_tsn_on_gpu(synth_dir, tmp_path, cli):
    proc = cli("tapos-tsn", "--features", synth_dir / "features.h5", "--annotations",
               synth_dir / "tapos_annotation.json", "--sampling", "aligned", "--out", tmp_path / "tsn",
               "--epochs", "2", "--device", "cuda", "--no-progress")
    assert "RGB Top-1" in proc.stdout


def test_tsn_fine_tunes_frames_on_gpu(tmp_path, frame_clips, cli):
    proc = cli("tapos-tsn", "--input", "frames", "--videos", frame_clips / "videos", "--annotations",
               frame_clips / "ann.json", "--modality", "rgb", "--out", tmp_path / "run", "--segments", "2", "--epochs",
               "1", "--set", "test_segments=2", "--set", "batch_size=2", "--set", 'weights="random"', "--device",
               "cuda", "--no-progress")
    assert "RGB Top-1" in proc.stdout
