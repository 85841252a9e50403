"""Decoding and preprocessing for extraction, on real video files made with ffmpeg."""
import numpy as np
import pytest

from tapos.data.machinery.ffmpeg import VideoError, probe
from tapos.extract.decode import Clip, Sampling, read_clip
from tapos.extract.flow import FlowComputer, FlowStacker, quantize



@pytest.mark.parametrize("n,fps,size,codec,pix", [
    (23, 25, (96, 64), "libx264", "yuv420p"),
    (31, 30, (320, 180), "libx264", "yuv420p"),
    (17, 15, (64, 96), "libx264", "yuv420p"),          # portrait
    (19, 24, (99, 75), "ffv1", "yuv444p"),              # odd size
    (13, 25, (96, 64), "libx264", "yuv420p10le"),       # 10-bit
    (11, 12.5, (96, 64), "ffv1", "gray"),               # grayscale
])
def test_every_frame_in_order_and_counts_match_probe(tmp_path, make_video, n, fps, size, codec, pix, numbers):
    ext = ".mkv" if codec == "ffv1" else ".mp4"
    path = make_video(tmp_path / f"v{ext}", n, fps, size, codec, pix)
    info = probe(path)
    chunk, meta = read_clip(Clip("v", path), ("rgb",))
    assert info.num_frames == n == len(chunk.rgb)
    assert chunk.rgb.shape == (n, 224, 224, 3) and chunk.rgb.dtype == np.uint8
    assert numbers(chunk.rgb, n) == list(range(n))
    assert chunk.frame_index.tolist() == list(range(n))
    assert meta.num_frames == n and meta.fps == pytest.approx(fps, rel=1e-3)


def test_short_side_resize_then_centre_crop(tmp_path, make_video):
    # 256x64 stored -> short side 256 gives 1024x256; the centre crop holds no part of the left bar
    path = make_video(tmp_path / "wide.mp4", 3, 25, size=(256, 64))
    chunk, _ = read_clip(Clip("w", path), ("rgb",))
    assert not (chunk.rgb[..., 2] > 240).any()  # no white column anywhere in the crop
    # a square video keeps its bar on the left quarter of the crop
    path = make_video(tmp_path / "square.mp4", 3, 25, size=(64, 64))
    chunk, _ = read_clip(Clip("s", path), ("rgb",))
    assert chunk.rgb[0, 112, 5, 2] > 240 and chunk.rgb[0, 112, 200, 2] < 200


def test_rotation_metadata_is_applied(tmp_path, make_video):
    # 64x48 stored, 48x64 shown: the crop (rows 58..281 of 341) keeps 27 rows of the rotated bar
    path = make_video(tmp_path / "phone.mp4", 5, 25, size=(64, 48), rotate=90)
    assert abs(probe(path).rotation) == 90
    chunk, _ = read_clip(Clip("p", path), ("rgb",))
    bright = chunk.rgb[0, :, :, 2] > 240
    # the bar on the left of the stored picture is now along the top or the bottom edge
    rows = bright.mean(axis=1)
    assert max(rows[:20].mean(), rows[-20:].mean()) > 0.9 and rows[40:-40].max() < 0.1


def test_stride_and_fps_sampling(tmp_path, make_video, numbers):
    path = make_video(tmp_path / "v.mp4", 30, 30)
    chunk, meta = read_clip(Clip("v", path), ("rgb",), Sampling(stride=4))
    assert chunk.frame_index.tolist() == list(range(0, 30, 4)) == numbers(chunk.rgb, 30)
    assert meta.fps == pytest.approx(7.5) and meta.num_frames == 30
    chunk, meta = read_clip(Clip("v", path), ("rgb",), Sampling(fps=12))
    expect = [int(np.floor(t * 30 / 12 + 0.5)) for t in range(12)]
    assert chunk.frame_index.tolist() == expect == numbers(chunk.rgb, 30)
    assert meta.fps == 12
    with pytest.raises(ValueError):
        Sampling(stride=2, fps=5)


def test_cut_instance_from_source_video(tmp_path, make_video, numbers):
    path = make_video(tmp_path / "src.mp4", 60, 25)
    # an instance from 1.0 s for 0.8 s: frames 25..44 of the source
    chunk, meta = read_clip(Clip("k", path, start=1.0, duration=0.8), ("rgb",))
    assert numbers(chunk.rgb, 60) == list(range(25, 45))
    assert meta.num_frames == 20
    # a start between frames takes the nearest frame: 1.03 s * 25 = 25.75 -> frame 26
    chunk, _ = read_clip(Clip("k", path, start=1.03, duration=0.4), ("rgb",))
    assert numbers(chunk.rgb, 60)[0] == 26
    with pytest.raises(VideoError, match="no frames decoded"):
        read_clip(Clip("k", path, start=10.0, duration=1.0), ("rgb",))
    with pytest.raises(VideoError, match="needs 25 frames from 2.000s, the video has 10"):
        read_clip(Clip("k", path, start=2.0, duration=1.0), ("rgb",))


def test_broken_and_missing_videos(tmp_path, make_video):
    good = make_video(tmp_path / "good.mp4", 20, 25)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(VideoError, match="broken.mp4"):
        read_clip(Clip("b", broken), ("rgb",))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoError, match="junk.mp4"):
        read_clip(Clip("j", junk), ("rgb",))
    with pytest.raises(VideoError, match="no such file"):
        read_clip(Clip("m", tmp_path / "missing.mp4"), ("rgb",))


def test_quantize_matches_tsn_mapping():
    field = np.array([-30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 25.0])
    assert quantize(field).tolist() == [0, 0, 64, 128, 191, 255, 255]


class IndexFlow(FlowComputer):
    """Field i is filled with i (x) and 100 + i (y): stacking can be read back exactly."""

    def __init__(self):
        super().__init__("dis", threads=1, crop=4)
        self.count = 0

    def fields(self, frames):
        out = []
        for _ in range(len(frames) - 1):
            f = np.empty((4, 4, 2), np.uint8)
            f[..., 0], f[..., 1] = self.count, 100 + self.count
            self.count += 1
            out.append(f)
        return np.stack(out) if out else np.empty((0, 4, 4, 2), np.uint8)


@pytest.mark.parametrize("chunks", [[9], [1, 2, 3, 3], [4, 5], [2] * 4 + [1]])
def test_flow_stack_layout_across_chunks(chunks):
    n = sum(chunks)
    stacker = FlowStacker(IndexFlow())
    out, first = [], 0
    for size in chunks:
        frames = np.zeros((size, 8, 8), np.uint8)
        out.append(stacker.push(frames, range(first, first + size)))
        first += size
    out.append(stacker.finish())
    stacks = np.concatenate(out)
    assert stacks.shape == (n, 4, 4, 10)
    for t in range(n):
        fields = [min(t + k, n - 2) for k in range(5)]  # fields t..t+4, the last one repeated
        assert stacks[t, 0, 0, 0::2].tolist() == fields
        assert stacks[t, 0, 0, 1::2].tolist() == [100 + f for f in fields]


def test_single_frame_clip_has_zero_motion():
    stacker = FlowStacker(IndexFlow())
    stacks = np.concatenate([stacker.push(np.zeros((1, 8, 8), np.uint8), [0]), stacker.finish()])
    assert stacks.shape == (1, 4, 4, 10) and (stacks == 128).all()


@pytest.mark.parametrize("method", ["dis", "farneback", "tvl1"])
def test_flow_sees_motion_to_the_right(tmp_path, method):
    from tapos.data.machinery.ffmpeg import encode_video

    def moving(n):
        rng = np.random.default_rng(0)
        texture = (rng.random((64, 200)) * 255).astype(np.uint8)
        texture = np.repeat(np.repeat(texture, 4, axis=0), 4, axis=1)[:256, :800]
        for t in range(n):
            img = texture[:, 200 - 3 * t: 200 - 3 * t + 340]  # the scene moves 3 px right per frame
            yield np.repeat(img[..., None], 3, axis=2)

    path = tmp_path / "move.mp4"
    encode_video(moving(4 if method == "tvl1" else 8), path, 25, crf=4)
    chunk, _ = read_clip(Clip("m", path), ("flow",), flow_method=method, flow_threads=2)
    x, y = chunk.flow[0, 40:-40, 40:-40, 0].astype(float), chunk.flow[0, 40:-40, 40:-40, 1].astype(float)
    # +3 px -> 127.5 + 3 * 6.375 = 146.6 in x, ~128 in y
    assert 138 < np.median(x) < 155 and 120 < np.median(y) < 136


def test_rgb_and_flow_rows_line_up(tmp_path, make_video, numbers):
    path = make_video(tmp_path / "v.mp4", 26, 25)
    chunk, meta = read_clip(Clip("v", path), ("rgb", "flow"), Sampling(stride=3), flow_method="dis")
    assert len(chunk.rgb) == len(chunk.flow) == len(chunk.frame_index) == 9
    assert numbers(chunk.rgb, 26) == chunk.frame_index.tolist()


def test_variable_frame_rate_is_resampled_by_time(tmp_path, make_video, numbers):
    import subprocess

    from tapos.data.machinery.ffmpeg import ffmpeg_binary

    cfr = make_video(tmp_path / "cfr.mp4", 20, 25)
    vfr = tmp_path / "vfr.mp4"
    # frames 0-9 at 25 fps, frames 10-19 at 12.5 fps (every other slot of the 25 fps grid)
    subprocess.run([ffmpeg_binary(), "-v", "error", "-i", str(cfr), "-vf",
                    "setpts='if(lt(N,10),N/25,0.4+(N-10)/12.5)/TB'", "-fps_mode", "vfr", "-c:v", "libx264", "-crf", "4",
                    str(vfr)], check=True)
    info = probe(vfr)
    assert info.fps == 25 and info.num_frames == 20 and info.duration == pytest.approx(1.2, abs=0.041)
    assert info.rate_mismatch  # 20 frames in 1.2 s at 25 fps
    chunk, meta = read_clip(Clip("v", vfr), ("rgb",))
    assert meta.rate == 25 and meta.fps == 25
    got = numbers(chunk.rgb, 20)
    # the slow part's frames are each shown for two rows, at their own times
    assert got == list(range(10)) + [10 + k // 2 for k in range(len(got) - 10)]
    assert len(got) in (29, 30)
    # with --fps the rows are the grid frames nearest t / 10 s
    chunk, meta = read_clip(Clip("v", vfr), ("rgb",), Sampling(fps=10))
    assert meta.fps == 10 and chunk.frame_index.tolist() == [int(np.floor(t * 2.5 + 0.5)) for t in range(len(chunk.rgb))]
