"""Every output goes through tapos.data.io.atomic_path: a writer that fails leaves the old file as
it was and no temporary file behind. Each kind of output is written once, then written again with
the final rename failing (as a crash or a full disk would make it fail at the last moment)."""
import os

import numpy as np
import pytest

import tapos.data.io as io_module
from tapos.data import load_annotations, save_annotations, save_predictions, tapos_to_gebd
from tapos.data.machinery.ffmpeg import VideoError, encode_video, probe
from tapos.data.features import ExtractionSettings
from tapos.data.gebd import save_gebd
from tapos.data.io import atomic_path, atomic_write_text
from tapos.data.machinery.plotting import pyplot, save_figure
from tapos.data.stats import write_stats
from tapos.extract.store import PartStore, merge
from tapos.parse.thumbnails import save_png


@pytest.fixture
def annotations(annotation_file):
    return load_annotations(annotation_file)


def _figure():
    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [1, 0])
    return fig


def _part(tmp_path, value):
    store = PartStore(tmp_path / "f.h5")
    store.parts.mkdir(parents=True, exist_ok=True)
    settings = ExtractionSettings(backbone="b", weights={"rgb": "w"})
    store.write("k", {"rgb": np.full((3, 4), value, np.float32)}, 25.0, 3, np.arange(3), settings)
    store.write_index(settings)
    return store


# (name, file written, writer(tmp_path, version) for versions 0 and 1)
WRITERS = {
    "text": ("out.txt", lambda d, a, v: atomic_write_text(d / "out.txt", f"version {v}")),
    "predictions json": ("p.json", lambda d, a, v: save_predictions({"k": [v + 1]}, d / "p.json")),
    "predictions pickle": ("p.pkl", lambda d, a, v: save_predictions({"k": [v + 1]}, d / "p.pkl")),
    "annotations": ("a.json", lambda d, a, v: save_annotations(list(a.values())[: v + 1], d / "a.json")),
    "gebd": ("g.json", lambda d, a, v: save_gebd(tapos_to_gebd(list(a.values())[: v + 1]), d / "g.json")),
    "figure": ("f.png", lambda d, a, v: save_figure(_figure(), d / "f.png", dpi=50 + 50 * v)),
    "thumbnail": ("t.png", lambda d, a, v: save_png(np.full((8, 8, 3), 40 * v, np.uint8), d / "t.png")),
    "video": ("v.mp4", lambda d, a, v: encode_video([np.full((16, 16, 3), 9, np.uint8)] * (3 + v), d / "v.mp4", 25)),
    "stats tables": ("summary.csv", lambda d, a, v: write_stats(a if v == 0 else a.split("train"), d)),
    "feature part and index": (".", lambda d, a, v: _part(d, v)),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_failing_writer_leaves_the_old_file(name, tmp_path, annotations, monkeypatch):
    target, write = WRITERS[name]
    out = tmp_path / "out"
    out.mkdir()
    write(out, annotations, 0)
    assert (out / target).exists()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".locks" not in p.parts}
    assert before, "the writer wrote nothing"

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io_module.os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        write(out, annotations, 1)
    monkeypatch.undo()
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".locks" not in p.parts}
    assert after == before  # old files intact, no temporary left beside them


def test_the_helper_removes_its_temporary_on_error_and_keeps_the_suffix(tmp_path):
    path = tmp_path / "x.h5"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".h5" and not tmp.exists()
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["x.h5"]
    with atomic_path(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["x.h5"]


def test_a_video_that_fails_midway_leaves_the_old_video(tmp_path):
    path = tmp_path / "v.mp4"
    encode_video([np.zeros((16, 16, 3), np.uint8)] * 4, path, 25)
    frames = [np.zeros((16, 16, 3), np.uint8)] * 3 + [np.zeros((8, 8, 3), np.uint8)]
    with pytest.raises(VideoError, match="frame size changed"):
        encode_video(frames, path, 25)
    assert probe(path).num_frames == 4 and os.listdir(tmp_path) == ["v.mp4"]


def test_merge_that_fails_keeps_the_index(tmp_path, monkeypatch):
    store = _part(tmp_path, 1)
    before = store.index.read_bytes()
    monkeypatch.setattr(io_module.os, "replace", lambda s, d: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        merge(store.index, store.index, progress=False)
    monkeypatch.undo()
    assert store.index.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5", "f.parts"]
