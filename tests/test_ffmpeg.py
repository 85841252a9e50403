import os
import shutil

import numpy as np
import pytest

from tapos.data.machinery import ffmpeg as ff


def _frames(n, h=48, w=64):
    for t in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, (t * 3) % w] = 255
        yield img


def test_binary_choice():
    binary = ff.ffmpeg_binary()
    assert os.access(binary, os.X_OK)
    if shutil.which("ffmpeg") is None and "TAPOS_FFMPEG" not in os.environ:
        assert "imageio_ffmpeg" in binary  # pip alone gives a working ffmpeg
        assert ff.ffprobe_binary() is None


def test_encode_and_probe(tmp_path):
    path = tmp_path / "clip.mp4"
    ff.encode_video(_frames(37), path, fps=12.5)
    info = ff.probe(path)
    assert (info.width, info.height, info.num_frames) == (64, 48, 37)
    assert info.fps == pytest.approx(12.5)
    assert info.duration == pytest.approx(37 / 12.5, abs=0.1)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_probe_parses_ffmpeg_report(tmp_path):
    # the imageio-ffmpeg path (no ffprobe) is exercised even where a system ffprobe exists
    path = tmp_path / "clip.mp4"
    ff.encode_video(_frames(20), path, fps=30)
    info = ff._probe_ffmpeg(path, ff._remux(path))
    assert (info.width, info.height, info.num_frames, info.fps) == (64, 48, 20, 30.0)


def test_bad_videos(tmp_path):
    with pytest.raises(ff.VideoError, match="no such file"):
        ff.probe(tmp_path / "none.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(ff.VideoError, match="junk.mp4: not a readable video"):
        ff.probe(junk)
    good = tmp_path / "good.mp4"
    ff.encode_video(_frames(30), good, fps=25)
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(ff.VideoError, match="trunc.mp4"):
        ff.probe(trunc)


def test_encode_failure_leaves_nothing(tmp_path):
    def frames():
        yield np.zeros((48, 64, 3), np.uint8)
        yield np.zeros((40, 64, 3), np.uint8)  # size change

    with pytest.raises(ff.VideoError, match="frame size changed"):
        ff.encode_video(frames(), tmp_path / "x.mp4", fps=25)
    assert list(tmp_path.iterdir()) == []
