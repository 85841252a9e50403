import json
import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tapos.data import SCHEMA, FeatureCacheError, FeatureReader, FeatureWriter, load_annotations
from tapos.data.machinery.dataset import FeatureDataset


def _write(path, **kw):
    rng = np.random.default_rng(0)
    with FeatureWriter(path, backbone="bninception", weights="imagenet", modalities="rgb,flow", frame_stride=1,
                       **kw) as w:
        w.write("vid_a", {"rgb": rng.normal(size=(10, 4)).astype(np.float16),
                          "flow": rng.normal(size=(10, 3)).astype(np.float32)}, fps=25.0, num_frames=10)
        w.write("vid_b", {"rgb": rng.normal(size=(5, 4))}, fps=12.5, num_frames=10, frame_index=[0, 2, 4, 6, 8])
    return rng


def test_schema_and_roundtrip(tmp_path):
    path = tmp_path / "f.h5"
    _write(path)
    with h5py.File(path, "r") as f:  # the documented layout, read with plain h5py
        assert f.attrs["schema"] == SCHEMA
        assert f.attrs["backbone"] == "bninception" and f.attrs["modalities"] == "rgb,flow"
        assert f["instances/vid_a/rgb"].dtype == np.float16 and f["instances/vid_a/rgb"].shape == (10, 4)
        assert f["instances/vid_b"].attrs["fps"] == 12.5 and f["instances/vid_b"].attrs["num_frames"] == 10
        assert [k for k in f["instances"]] == ["vid_a", "vid_b"]
    with FeatureReader(path) as r:
        assert r.keys() == ["vid_a", "vid_b"] and "vid_a" in r and "x" not in r
        assert r.attrs["weights"] == "imagenet"
        a = r.read("vid_a", "rgb+flow")
        assert a.shape == (10, 7) and a.dtype == np.float32
        info = r.info("vid_b")
        assert info.num_rows == 5 and info.dims == {"rgb": 4} and info.duration == 5 / 12.5
        assert r.frame_index("vid_b").tolist() == [0, 2, 4, 6, 8]
        assert r.frame_index("vid_a").tolist() == list(range(10))
        with pytest.raises(FeatureCacheError, match="no flow features"):
            r.read("vid_b", "flow")
        with pytest.raises(FeatureCacheError, match="no features for instance 'nope'"):
            r.read("nope")


def test_writer_refuses_bad_input_and_keeps_existing(tmp_path):
    path = tmp_path / "f.h5"
    _write(path)
    with FeatureWriter(path) as w:
        with pytest.raises(FeatureCacheError, match="already exists"):
            w.write("vid_a", {"rgb": np.zeros((3, 4))}, fps=25, num_frames=3)
        with pytest.raises(FeatureCacheError, match="NaN or inf"):
            w.write("vid_c", {"rgb": np.full((3, 4), np.nan)}, fps=25, num_frames=3)
        with pytest.raises(FeatureCacheError, match="invalid instance key"):
            w.write("a/b", {"rgb": np.zeros((3, 4))}, fps=25, num_frames=3)
        with pytest.raises(FeatureCacheError, match="different row counts"):
            w.write("vid_d", {"rgb": np.zeros((3, 4)), "flow": np.zeros((4, 4))}, fps=25, num_frames=3)
    with FeatureReader(path) as r:
        assert r.keys() == ["vid_a", "vid_b"]
        assert r.read("vid_a").shape == (10, 4)


def test_reader_errors(tmp_path):
    with pytest.raises(FeatureCacheError, match="no such file"):
        FeatureReader(tmp_path / "missing.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"this is not hdf5")
    with pytest.raises(FeatureCacheError, match="not a readable HDF5 file"):
        FeatureReader(bad)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(FeatureCacheError, match="no 'schema' attribute"):
        FeatureReader(other)
    with h5py.File(other, "a") as f:
        f.attrs["schema"] = "tapos-features/99"
    with pytest.raises(FeatureCacheError, match="not supported"):
        FeatureReader(other)


def test_nan_rows_are_reported(tmp_path):
    path = tmp_path / "f.h5"
    _write(path)
    with h5py.File(path, "a") as f:  # corrupt a row behind the writer's back
        f["instances/vid_a/rgb"][3] = np.nan
    with FeatureReader(path) as r:
        with pytest.raises(FeatureCacheError, match="vid_a: rgb has NaN/inf in 1 row\\(s\\), first row 3"):
            r.read("vid_a")


# --- the torch Dataset joined with annotations ---------------------------------------------

def _cache_for(annotation_file, tmp_path, stride=1, drop=(), scale=1.0, rows_factor=1.0):
    ann = load_annotations(annotation_file)
    path = tmp_path / "cache.h5"
    rng = np.random.default_rng(1)
    with FeatureWriter(path, modalities="rgb,flow", frame_stride=stride) as w:
        for key, inst in ann.items():
            if key in drop:
                continue
            num_frames = int(round(inst.total_frames * scale))  # e.g. a re-download at another rate
            fi = np.arange(0, int(num_frames * rows_factor), stride)
            w.write(key, {"rgb": rng.normal(size=(len(fi), 6)), "flow": rng.normal(size=(len(fi), 2))},
                    fps=inst.fps * scale / stride, num_frames=num_frames, frame_index=fi)
    return ann, path


def test_dataset_items(annotation_file, tmp_path):
    ann, path = _cache_for(annotation_file, tmp_path)
    ds = FeatureDataset(path, ann, split="val", modality="rgb+flow")
    assert len(ds) == 2 and ds.dim == 8
    item = ds[ds.keys.index("a_b-c_d-e_f_s00012_1_000_11_000")]
    assert item["features"].shape == (300, 8) and item["features"].dtype == torch.float32
    assert item["boundaries"].tolist() == [60.0, 120.0, 200.0]
    assert item["row_boundaries"].tolist() == [60, 120, 200]
    assert item["action"] == 11 and item["total_frames"] == 300


def test_dataset_maps_rows_to_annotation_frames(annotation_file, tmp_path):
    # stride 4 on a video re-downloaded at twice the annotation's frame rate
    ann, path = _cache_for(annotation_file, tmp_path, stride=4, scale=2.0)
    ds = FeatureDataset(path, ann, split="val", modality="rgb")
    item = ds[ds.keys.index("a_b-c_d-e_f_s00012_1_000_11_000")]
    frames = item["frames"].numpy()
    assert frames[:3].tolist() == [0.0, 2.0, 4.0]  # source frames 0, 4, 8 of 600 -> 0, 2, 4 of 300
    # boundary 60 is first reached by row 30, 200 by row 100
    assert item["row_boundaries"].tolist() == [30, 60, 100]
    assert np.all(frames[item["row_boundaries"].numpy()] >= item["boundaries"].numpy())


def test_dataset_missing_features(annotation_file, tmp_path, capsys):
    ann, path = _cache_for(annotation_file, tmp_path, drop=("Zz-_09aB_cD_s00001_0_000_4_000",))
    with pytest.raises(FeatureCacheError, match="1 of 2 val instances have no features"):
        FeatureDataset(path, ann, split="val")
    ds = FeatureDataset(path, ann, split="val", missing="skip")
    assert len(ds) == 1 and "skipped" in capsys.readouterr().err


def test_dataset_length_mismatch(annotation_file, tmp_path):
    ann, path = _cache_for(annotation_file, tmp_path, rows_factor=0.5)
    with pytest.raises(FeatureCacheError, match="cover .* but the annotation says"):
        FeatureDataset(path, ann, split="train")


def test_dataset_empty_split(annotation_file, tmp_path):
    ann, path = _cache_for(annotation_file, tmp_path)
    with pytest.raises(FeatureCacheError, match="split 'test' has no instances"):
        FeatureDataset(path, ann, split="test")


def test_dataloader_workers(annotation_file, tmp_path):
    ann, path = _cache_for(annotation_file, tmp_path)
    ds = FeatureDataset(path, ann, split="train", modality="flow")
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    shapes = sorted(tuple(item["features"].shape) for item in loader)
    assert shapes == [(100, 2), (195, 2)]


def test_row_times_are_stored_and_derived_for_older_caches(tmp_path):
    from tapos.data import FeatureReader, FeatureWriter

    path = tmp_path / "c.h5"
    x = np.zeros((5, 3), np.float32)
    with FeatureWriter(path) as w:
        # a cache written by tapos-extract now: rows at the times of their grid frames
        w.write("new", {"rgb": x}, fps=7.5, num_frames=10, frame_index=[0, 2, 4, 6, 8],
                timestamps=np.arange(0, 10, 2) / 15, frame_rate=15)
        # written before row times were stored: stride 2 of a 15 fps clip, 10 frames
        w.write("old", {"rgb": x}, fps=7.5, num_frames=10, frame_index=[0, 2, 4, 6, 8])
        # no frame index either (the synthetic datasets of earlier releases): row t at t / fps
        w.write("plain", {"rgb": x}, fps=25, num_frames=5)
        with pytest.raises(FeatureCacheError, match="timestamps"):
            w.write("bad", {"rgb": x}, fps=25, num_frames=5, timestamps=[0, 0.2, 0.1, 0.3, 0.4])
    r = FeatureReader(path)
    assert r.info("new").frame_rate == 15 and r.timestamps("new").tolist() == pytest.approx([0, 2 / 15, 4 / 15, 6 / 15, 8 / 15])
    assert r.info("old").frame_rate == 15 and r.timestamps("old").tolist() == pytest.approx(r.timestamps("new").tolist())
    assert r.timestamps("plain").tolist() == pytest.approx([t / 25 for t in range(5)])


def test_extraction_settings_one_record_in_attributes_json_and_older_caches(tmp_path):
    from tapos.data import ExtractionSettings

    rec = ExtractionSettings(backbone="bninception", weights={"rgb": "random", "flow": "random (cross-modality init)"},
                             modalities="rgb+flow", fps=4.0, flow="dis", flow_params={"preset": "medium"},
                             dtype="float16", tool_version="9.9")
    path = tmp_path / "f.h5"
    with FeatureWriter(path, settings=rec) as w:
        w.write("a", {"rgb": np.ones((2, 3)), "flow": np.ones((2, 3))}, fps=4.0, num_frames=12)
    with h5py.File(path, "r") as f:  # the schema's flat summary for plain-h5py readers
        assert f.attrs["weights"] == "rgb: random; flow: random (cross-modality init)"
        assert f.attrs["modalities"] == "rgb,flow" and f.attrs["frame_stride"] == 1
    with FeatureReader(path) as r:
        assert r.settings() == rec
    assert ExtractionSettings.from_json(json.loads(json.dumps(rec.to_json()))) == rec
    assert ExtractionSettings.from_attrs(rec.to_json()) == rec  # a model's config.json holds the JSON form
    # a cache written before the record: its flat attributes say the same
    legacy = {"backbone": "bninception", "weights": "rgb: random; flow: random (cross-modality init)",
              "modalities": np.array(["rgb", "flow"]), "frame_stride": 1, "flow_method": "dis", "sampling_fps": 4.0}
    old = ExtractionSettings.from_attrs(legacy)
    assert (old.weights, old.modalities, old.fps, old.flow, old.flow_params) == (rec.weights, ("rgb", "flow"), 4.0,
                                                                                 "dis", None)
    # parts of one cache must agree; unrecorded flow parameters and the tool version do not count
    assert old.differences(rec) == ["dtype"]
    assert ExtractionSettings.from_attrs({"weights": "imagenet", "modalities": "rgb"}).weights == {"rgb": "imagenet"}
    assert rec.differences(ExtractionSettings(**{**rec.to_json(), "stride": 2, "tool_version": "1"})) == ["stride"]


def test_weights_spec_inverts_the_recorded_description():
    from tapos.extract.weights import CROSS_MODALITY, IMAGENET_FILE, weights_spec

    assert weights_spec(f"imagenet {IMAGENET_FILE} sha256:52deb4733abc") == "imagenet"
    assert weights_spec(f"imagenet {IMAGENET_FILE} sha256:52deb4733abc{CROSS_MODALITY}") == "imagenet"
    assert weights_spec("random") == "random" and weights_spec("mine.pth sha256:0123") is None
