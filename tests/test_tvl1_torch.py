"""tvl1-torch against the known motion and against OpenCV's DualTVL1 (issue 17).

Frames are made here: a smooth random texture moved by a known sub-pixel translation, a larger
translation, a small rotation and a zoom (128x96, small enough for 2 cores; benchmarks/flow_speed.py
measures 340x256). Every pair goes through tvl1-torch in one batch and through OpenCV one by one,
with the same parameters.
"""
import json

import cv2
import numpy as np
import pytest
import torch

from tapos.data.errors import TaposError
from tapos.extract.flow import FLOW_METHODS, FlowComputer, center_crop, flow_parameters, quantize
from tapos.extract.tvl1 import DEFAULTS, TVL1, check_options, median_filter, opencv_tvl1, resize

W, H = 128, 96
MARGIN = 12  # pixels left out of the EPE at each border (motion from outside the frame)
# name -> (A, t): a point p of the first frame is at c + A (p - c) + t in the second (c: the centre)
MOTIONS = {
    "subpixel": (np.eye(2), (0.6, -0.35)),
    "translation": (np.eye(2), (3.3, 2.4)),
    "rotation": (np.array([[np.cos(0.05), -np.sin(0.05)], [np.sin(0.05), np.cos(0.05)]]), (0.0, 0.0)),
    "zoom": (1.04 * np.eye(2), (0.0, 0.0)),
}


def texture(h, w, seed=0):
    """Smooth random texture, 0..255: blurred noise at three scales."""
    noise = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    t = sum(k * cv2.GaussianBlur(noise, (0, 0), s) for s, k in ((1.0, 1.0), (2.5, 2.0), (6.0, 3.0)))
    return (t - t.min()) / (t.max() - t.min()) * 255


def moved_pair(a, t, seed=0, w=W, h=H):
    """``(frame0, frame1, true flow (H, W, 2))``: uint8 frames cut from a larger texture."""
    m = 24
    canvas = texture(h + 2 * m, w + 2 * m, seed)
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    p = np.stack([xs, ys], -1)
    back = (p - c - np.asarray(t)) @ np.linalg.inv(a).T + c  # where each pixel of frame1 was in frame0
    maps = (back + m).astype(np.float32)
    frame0 = canvas[m:m + h, m:m + w]
    frame1 = cv2.remap(canvas, maps[..., 0], maps[..., 1], cv2.INTER_CUBIC)
    truth = (p - c) @ a.T + c + np.asarray(t) - p
    as_u8 = lambda f: np.clip(np.rint(f), 0, 255).astype(np.uint8)  # noqa: E731
    return as_u8(frame0), as_u8(frame1), truth.astype(np.float32)


def epe(f, g):
    return float(np.sqrt(((f - g) ** 2).sum(-1))[MARGIN:-MARGIN, MARGIN:-MARGIN].mean())


@pytest.fixture(scope="module")
def flows():
    """name -> (truth, OpenCV's field, tvl1-torch's field); tvl1-torch on all pairs in one call."""
    pairs = {name: moved_pair(a, t, seed=k) for k, (name, (a, t)) in enumerate(MOTIONS.items())}
    ocv = opencv_tvl1()
    ours = TVL1(threads=1)(torch.from_numpy(np.stack([p[0] for p in pairs.values()])),
                  torch.from_numpy(np.stack([p[1] for p in pairs.values()]))).permute(0, 2, 3, 1).numpy()
    return {name: (p[2], ocv.calc(p[0], p[1], None), ours[k]) for k, (name, p) in enumerate(pairs.items())}


@pytest.mark.parametrize("name", list(MOTIONS))
def test_known_motion_no_worse_than_opencv(flows, name):
    truth, ocv, ours = flows[name]
    assert epe(ocv, truth) < 0.5, f"the test pair is too hard for OpenCV itself: {epe(ocv, truth):.3f}"
    assert epe(ours, truth) <= epe(ocv, truth) + 0.05


@pytest.mark.parametrize("name", list(MOTIONS))
def test_matches_opencv_field_and_its_uint8_images(flows, name):
    _, ocv, ours = flows[name]
    assert np.sqrt(((ours - ocv) ** 2).sum(-1)).mean() <= 0.15
    levels = np.abs(quantize(ours).astype(int) - quantize(ocv).astype(int))
    assert (levels <= 2).mean() >= 0.95


def test_a_pair_is_solved_alike_alone_and_in_a_batch():
    """Each pair of a batch stops on its own (a static pair stops at once, the moving one does not)."""
    f0, f1, _ = moved_pair(np.eye(2), (1.4, -0.8), w=64, h=48)
    tvl1 = TVL1({"nscales": 3, "warps": 2}, threads=1)
    alone = tvl1(torch.from_numpy(f0)[None], torch.from_numpy(f1)[None])[0]
    batch = tvl1(torch.from_numpy(np.stack([f0, f0])), torch.from_numpy(np.stack([f1, f0])))
    assert torch.allclose(batch[0], alone, atol=1e-4)
    assert batch[1].abs().max() < 1e-3  # identical frames: no motion
    assert alone[:, 8:-8, 8:-8].mean(dim=(1, 2)).sub(torch.tensor([1.4, -0.8])).abs().max() < 0.1


def test_sequence_forms_consecutive_pairs():
    frames = np.stack([moved_pair(np.eye(2), (0.7 * k, 0.0), w=64, h=48)[1] for k in range(3)])
    threads = torch.get_num_threads()
    tvl1 = TVL1({"nscales": 2, "warps": 2}, threads=1)
    seq = tvl1.sequence(frames)
    assert torch.get_num_threads() == threads  # torch's threads are put back
    assert seq.shape == (2, 48, 64, 2) and seq.dtype == np.float32
    second = tvl1(torch.from_numpy(frames[1:2]), torch.from_numpy(frames[2:3]))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(seq[1], second, atol=1e-4)
    assert np.median(seq[..., 0]) == pytest.approx(0.7, abs=0.1)


def test_parameters_are_opencvs_and_change_the_result():
    ocv = cv2.optflow.DualTVL1OpticalFlow_create()
    assert (DEFAULTS["tau"], DEFAULTS["lambda"], DEFAULTS["theta"], DEFAULTS["gamma"]) == pytest.approx(
        (ocv.getTau(), ocv.getLambda(), ocv.getTheta(), ocv.getGamma()))
    assert (DEFAULTS["nscales"], DEFAULTS["warps"], DEFAULTS["inner_iterations"], DEFAULTS["outer_iterations"],
            DEFAULTS["median_filtering"]) == (ocv.getScalesNumber(), ocv.getWarpingsNumber(),
                                              ocv.getInnerIterations(), ocv.getOuterIterations(),
                                              ocv.getMedianFiltering())
    assert (DEFAULTS["epsilon"], DEFAULTS["scale_step"]) == pytest.approx((ocv.getEpsilon(), ocv.getScaleStep()))
    f0, f1, _ = moved_pair(np.eye(2), (1.4, -0.8), w=64, h=48)
    a, b = torch.from_numpy(f0)[None], torch.from_numpy(f1)[None]
    quick = {"nscales": 3, "warps": 2, "outer_iterations": 3}
    smooth = TVL1({**quick, "lambda": 0.01}, threads=1)(a, b)
    sharp = TVL1({**quick, "lambda": 0.5}, threads=1)(a, b)
    assert (smooth - sharp).abs().max() > 0.05
    bilinear = TVL1({**quick, "interpolation": "bilinear"}, threads=1)(a, b)
    assert bilinear[:, :, 8:-8, 8:-8].mean(dim=(2, 3)).sub(torch.tensor([1.4, -0.8])).abs().max() < 0.1


@pytest.mark.parametrize("bad, words", [({"warps": 0}, "warps=0"), ({"scale_step": 1.5}, "scale_step=1.5"),
                                        ({"median_filtering": 4}, "median_filtering=4"),
                                        ({"interpolation": "cubic"}, "interpolation='cubic'"),
                                        ({"tua": 0.2}, "did you mean tau")])
def test_bad_options_are_refused_in_one_line(bad, words):
    with pytest.raises(TaposError, match=words) as err:
        check_options(bad)
    assert "\n" not in str(err.value)


def test_median_filter_is_opencvs():
    x = np.random.default_rng(3).normal(size=(37, 41)).astype(np.float32)
    x[5:9, 5:30] = 1.0  # ties
    for k in (3, 5):
        np.testing.assert_array_equal(median_filter(torch.from_numpy(x)[None, None], k)[0, 0].numpy(),
                                      cv2.medianBlur(x, k))


def test_resize_is_opencvs():
    x = texture(48, 64)
    down = cv2.resize(x, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    ours = resize(torch.from_numpy(x), down.shape, 0.8).numpy()
    np.testing.assert_allclose(ours, down, atol=1e-3)
    up = cv2.resize(down, (64, 48), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(resize(torch.from_numpy(down), (48, 64)).numpy(), up, atol=1e-3)


def test_flow_computer_batched_path_quantises_and_crops_as_the_others():
    frames = np.stack([moved_pair(np.eye(2), (0.9 * k, 0.3 * k), w=64, h=48)[1] for k in range(3)])
    options = {"nscales": 2, "warps": 2}
    fields = FlowComputer("tvl1-torch", threads=1, crop=32, options=options).fields(frames)
    expected = quantize(center_crop(TVL1(options, threads=1).sequence(frames), 32))
    assert fields.shape == (2, 32, 32, 2) and fields.dtype == np.uint8
    np.testing.assert_array_equal(fields, expected)
    assert FlowComputer("tvl1-torch", crop=32).fields(frames[:1]).shape == (0, 32, 32, 2)
    with pytest.raises(TaposError, match="takes no flow options"):
        FlowComputer("dis", options={"warps": 2})


def test_cache_records_the_parameters():
    params = flow_parameters("tvl1-torch", {"warps": 3})
    assert params["parameters"] == {**DEFAULTS, "warps": 3}
    assert "PyTorch" in params["implementation"] and params["bound"] == 20.0
    assert flow_parameters("tvl1") == flow_parameters("tvl1", None)  # tvl1's record is unchanged


def test_the_clis_offer_it():
    from tapos.extract.cli import main as extract_main
    from tapos.parse.cli import main as parse_main

    for command in (extract_main.commands["run"], parse_main.commands["video"]):
        choices = [p for p in command.params if p.name in ("flow_method", "flow")][0].type.choices
        assert sorted(choices) == sorted(FLOW_METHODS) and "tvl1-torch" in choices


def test_tapos_extract_rgb_and_tvl1_torch_flow_on_cpu(tmp_path, make_video, cli):
    """The issue's command on a real (ffmpeg-made) video, on CPU; the cache says how its flow was made."""
    from tapos.data import FeatureReader

    make_video(tmp_path / "videos" / "clip.mp4", 4, 25.0)
    out = tmp_path / "feats.h5"
    proc = cli("tapos-extract", tmp_path / "videos", out, "--modality", "rgb,flow", "--flow", "tvl1-torch",
               "--set", "warps=3", "--weights", "random", "--device", "cpu", "--flow-threads", "1", "--no-progress")
    assert "1 extracted (4 rows)" in proc.stdout
    reader = FeatureReader(out)
    flow = reader.read("clip", "flow")
    assert flow.shape == (4, 1024) and np.isfinite(flow).all()
    settings = reader.settings()
    assert settings.flow == "tvl1-torch"
    assert settings.flow_params["parameters"] == {**DEFAULTS, "warps": 3}
    bad = cli("tapos-extract", tmp_path / "videos", tmp_path / "x.h5", "--modality", "flow", "--flow", "dis",
              "--set", "warps=3", "--weights", "random", "--no-progress", check=False)
    assert bad.returncode == 1 and "takes no flow options" in bad.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(flows):
    pairs = [moved_pair(a, t, seed=k) for k, (a, t) in enumerate(MOTIONS.values())]
    i0 = torch.from_numpy(np.stack([p[0] for p in pairs]))
    i1 = torch.from_numpy(np.stack([p[1] for p in pairs]))
    gpu = TVL1(device="cuda")(i0, i1).cpu().permute(0, 2, 3, 1).numpy()
    for k, (_, ocv, cpu) in enumerate(flows.values()):
        assert np.sqrt(((gpu[k] - cpu) ** 2).sum(-1)).mean() < 0.02
        assert np.sqrt(((gpu[k] - ocv) ** 2).sum(-1)).mean() <= 0.15
    fields = FlowComputer("tvl1-torch", crop=64, device="cuda").fields(np.stack([pairs[0][0], pairs[0][1]]))
    assert fields.shape == (1, 64, 64, 2)


def test_parse_video_reuses_the_training_caches_flow_parameters(tmp_path):
    from tapos.data.features import ExtractionSettings
    from tapos.extract import options_like
    from tapos.parse.video import recorded_cache

    params = flow_parameters("tvl1-torch", {"warps": 2, "lambda": 0.1})
    cache = ExtractionSettings(backbone="bninception", weights={"flow": "random"}, modalities=("flow",),
                               flow="tvl1-torch", flow_params=params)
    (tmp_path / "config.json").write_text(json.dumps({"feature_cache": cache.to_json()}))
    opts = options_like(recorded_cache(tmp_path), ("flow",))
    assert opts["flow"] == "tvl1-torch" and opts["flow_options"] == {**DEFAULTS, "warps": 2, "lambda": 0.1}
    assert "flow_options" not in options_like(recorded_cache(tmp_path), ("flow",), flow="dis")


def test_frames_tsn_computes_tvl1_torch_snippets_and_refuses_bad_options(frame_clips):
    from tapos.tsn.frames import FrameSnippets

    args = (frame_clips / "videos", frame_clips / "ann.json", "train", "flow", "uniform", 2)
    quick = {"nscales": 2, "warps": 1, "outer_iterations": 1, "inner_iterations": 3}
    item = FrameSnippets(*args, train=False, flow_method="tvl1-torch", flow_options=quick)[0]
    assert item["frames"].shape == (2, 224, 224, 10)
    with pytest.raises(TaposError, match="warps=0"):
        FrameSnippets(*args, train=False, flow_method="tvl1-torch", flow_options={"warps": 0})
    with pytest.raises(TaposError, match="unknown flow method 'tvl2'"):
        FrameSnippets(*args, train=False, flow_method="tvl2")


def test_matches_opencv_on_synthetic_clips(tmp_path):
    """Frames of the synthetic videos (``tapos-data synth --videos``: moving blobs, a camera change,
    sensor noise), decoded by ffmpeg at 128x96."""
    from tapos.data.machinery.ffmpeg import read_frames
    from tapos.data.synth import write_dataset

    write_dataset(tmp_path, n_instances=1, n_classes=1, seed=2, videos=True, progress=False, video_size=[128, 96])
    video = sorted((tmp_path / "videos").glob("*.mp4"))[0]
    frames = np.concatenate(list(read_frames(video, W, H, "gray", [], max_frames=40)))[..., 0][::8]  # 5 frames
    ocv = opencv_tvl1()
    expected = np.stack([ocv.calc(a, b, None) for a, b in zip(frames[:-1], frames[1:])])
    ours = TVL1(threads=1).sequence(frames)
    assert np.sqrt(((ours - expected) ** 2).sum(-1)).mean() <= 0.15
    levels = np.abs(quantize(ours).astype(int) - quantize(expected).astype(int))
    assert (levels <= 2).mean() >= 0.95
    assert np.abs(expected).max() > 0.5  # the pairs do move
