"""tapos-data import-features / export-features on real files of every layout, good and bad."""
import json
import os
import pickle
from fractions import Fraction

import h5py
import numpy as np
import pytest
import torch

from tapos.data import FeatureReader, save_annotations
from tapos.data.annotations import Instance
from tapos.data.importing import ImportConfig, import_features

RNG = np.random.default_rng(0)


def feats(rows, dim=4):
    return RNG.standard_normal((rows, dim)).astype(np.float32)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_video_features_output(tmp_path, cli):
    src = tmp_path / "vf"
    src.mkdir()
    # a stem that is the prefix of another stem, both with "_" in them
    arrays = {"ab_c": feats(8), "ab_c_d": feats(5)}
    for stem, x in arrays.items():
        np.save(src / f"{stem}_resnet.npy", x)
        np.save(src / f"{stem}_fps.npy", np.array(2.0))
        np.save(src / f"{stem}_timestamps_ms.npy", np.arange(len(x)) * 500.0 + 250.0)
    i3d = {"rgb": feats(6), "flow": feats(6)}  # video_features' i3d: rgb and flow of one video
    other = tmp_path / "i3d"
    other.mkdir()
    for name, x in i3d.items():
        np.save(other / f"v1_{name}.npy", x)
    np.save(other / "v1_fps.npy", np.array(25.0))
    out = tmp_path / "vf.h5"
    proc = cli("tapos-data", "import-features", src, out, "--map", "resnet=rgb", "--dtype", "float16")
    assert "video_features layout): imported 2" in proc.stdout
    with FeatureReader(out) as r:
        assert sorted(r.keys()) == ["ab_c", "ab_c_d"]
        for stem, x in arrays.items():
            np.testing.assert_array_equal(r.read(stem, "rgb", dtype=None), x.astype(np.float16))
            np.testing.assert_allclose(r.timestamps(stem), np.arange(len(x)) * 0.5 + 0.25)
            assert r.info(stem).fps == 2.0 and r.info(stem).frame_rate == 2.0
        assert r.settings().dtype == "float16" and r.settings().backbone == "imported"
    # rgb and flow found by name; no timestamps: rows at the file's fps
    cli("tapos-data", "import-features", other, tmp_path / "i3d.h5", "--layout", "video_features")
    with FeatureReader(tmp_path / "i3d.h5") as r:
        np.testing.assert_array_equal(r.read("v1", "rgb+flow"), np.concatenate([i3d["rgb"], i3d["flow"]], 1))
        np.testing.assert_allclose(r.timestamps("v1"), np.arange(6) / 25.0)


def test_per_video_files_bad_files_and_rerun(tmp_path, cli):
    src = tmp_path / "files"
    src.mkdir()
    good = {"a": feats(6), "c": feats(7), "d": feats(5), "l": feats(4)}
    np.save(src / "a.npy", good["a"].astype(np.float64))
    torch.save(torch.from_numpy(good["c"]), src / "c.pt")                   # a tensor
    torch.save({"rgb": torch.from_numpy(good["d"]), "fps": torch.tensor(5.0)}, src / "d.pt")  # a dict of tensors
    (src / "l.pkl").write_bytes(pickle.dumps({"feat": good["l"]}))       # plain data, lone array
    (src / "notes.txt").write_text("ignored")
    bad = {
        "e.npy": "wrong rank", "f.npy": "NaN or inf", "g.npz": "different lengths", "h.npy": "unreadable",
        "i.npy": "pickled Python objects", "j.pt": "not plain data", "k.pkl": "not plain data",
        "m.npz": "several arrays", "n.npy": "beyond float16's range",
    }
    np.save(src / "e.npy", feats(6)[:, 0])
    nan = feats(6)
    nan[2, 1] = np.nan
    np.save(src / "f.npy", nan)
    np.savez(src / "g.npz", rgb=feats(6), flow=feats(5))
    (src / "h.npy").write_bytes(b"not numpy at all")
    np.save(src / "i.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    torch.save({"rgb": Fraction(1, 2)}, src / "j.pt")
    (src / "k.pkl").write_bytes(pickle.dumps(Evil()))
    np.savez(src / "m.npz", one=feats(3), two=feats(3))
    np.save(src / "n.npy", np.full((3, 2), 1e6))
    out = tmp_path / "files.h5"
    proc = cli("tapos-data", "import-features", src, out, "--fps", "3", "--dtype", "float16", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "pwned" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == len(bad)
    for name, words in bad.items():
        assert any(line.startswith(f"bad: {src / name}: ") and words in line for line in lines), (name, lines)
    report = json.loads((tmp_path / "files.failures.json").read_text())
    assert sorted(f["key"] for f in report["failed"]) == sorted(n.split(".")[0] for n in bad)
    with FeatureReader(out) as r:
        assert sorted(r.keys()) == sorted(good)
        for key, x in good.items():
            np.testing.assert_array_equal(r.read(key, "rgb"), x.astype(np.float16).astype(np.float32))
        np.testing.assert_allclose(r.timestamps("a"), np.arange(6) / 3.0)
        np.testing.assert_allclose(r.timestamps("d"), np.arange(5) / 3.0)  # --fps wins over the file's fps
    # the rerun skips what is imported and still reports the bad files
    proc = cli("tapos-data", "import-features", src, out, "--fps", "3", "--dtype", "float16", check=False)
    assert proc.returncode == 1 and "imported 0, already there 4, failed 9" in proc.stdout
    # other settings: refused in one line, not mixed into the cache
    proc = cli("tapos-data", "import-features", src, out, "--fps", "3", check=False)
    assert proc.returncode == 1 and "other settings (dtype)" in proc.stderr and "Traceback" not in proc.stderr
    # times are needed
    proc = cli("tapos-data", "import-features", src, tmp_path / "x.h5", check=False)
    assert "carries no times" in proc.stderr and proc.returncode == 1


def test_folders_keys_annotations_and_stride(tmp_path):
    ann = [Instance("yMK2zxDDs2A", "s00004_0_100_7_931", 1, "train", 195, (0, 79, 195), (43.36, 53.48)),
           Instance("a_b-c_d-e_f", "s00012_1_000_3_000", 2, "val", 50, (0, 20, 50), (5.5, 20.0))]
    save_annotations(ann, tmp_path / "ann.json")
    src = tmp_path / "frames"
    (src / "yMK2zxDDs2A").mkdir(parents=True)
    (src / "a_b-c_d-e_f").mkdir()
    # 195 frames over 7.831 s at stride 8 -> 25 rows; 50 frames over 2 s at stride 2 -> 25 rows
    np.save(src / "yMK2zxDDs2A" / "s00004_0_100_7_931.npy", feats(25))
    np.savez(src / "a_b-c_d-e_f" / "s00012_1_000_3_000.npz", flow=feats(25), rgb=feats(25))
    failures = []
    report = import_features(src, tmp_path / "f.h5", ImportConfig(stride=8, annotations=tmp_path / "ann.json"),
                             on_failure=lambda p, r: failures.append(r))
    assert report.layout == "folders" and report.done == [ann[0].key]
    assert len(failures) == 1
    assert "cover 8.00 s but the annotation says 2.00 s" in failures[0]  # 25 rows at stride 8 of 25 fps
    report = import_features(src, tmp_path / "g.h5", ImportConfig(stride=2, annotations=tmp_path / "ann.json",
                                                                  mapping={"flow": "flow"}))
    assert report.done == [ann[1].key] and len(report.failed) == 1
    with FeatureReader(tmp_path / "g.h5") as r:
        key = ann[1].key
        assert r.info(key).frame_rate == pytest.approx(25.0) and r.info(key).num_frames == 50
        np.testing.assert_array_equal(r.frame_index(key), np.arange(25) * 2)
        np.testing.assert_allclose(r.timestamps(key), np.arange(25) * 2 / 25.0)

    # a key map renames file stems to global keys; unknown keys fail the annotation check
    flat = tmp_path / "flat"
    flat.mkdir()
    np.save(flat / "vault.npy", feats(25))
    np.save(flat / "stray.npy", feats(25))
    (tmp_path / "keys.csv").write_text(f"stem,key\nvault,{ann[1].key}\n")
    report = import_features(flat, tmp_path / "h.h5", ImportConfig(fps=12.5, keys=tmp_path / "keys.csv",
                                                                   annotations=tmp_path / "ann.json"))
    assert report.done == [ann[1].key] and report.failed == [("stray", f"key stray is not in {tmp_path / 'ann.json'}")]
    assert report.unmatched == 1


def test_single_files_and_export_round_trip(tmp_path, cli):
    videos = {"v_one": feats(9), "v_two": feats(4)}
    np.savez(tmp_path / "all.npz", **videos)
    with h5py.File(tmp_path / "all.h5", "w") as f:
        f["v_one"] = videos["v_one"]
        g = f.create_group("v_two")
        g["rgb"], g["flow"], g["timestamps_ms"] = videos["v_two"], videos["v_two"] * 2, [0, 40, 80, 120]
        f["v_bad"] = np.ones((3, 2, 2))
        f.create_group("v_three")["flow"] = videos["v_one"]
    cli("tapos-data", "import-features", tmp_path / "all.npz", tmp_path / "a.h5", "--fps", "10", "--modality", "flow")
    with FeatureReader(tmp_path / "a.h5") as r:
        assert r.default_modality() == "flow"
        np.testing.assert_array_equal(r.read("v_two", "flow"), videos["v_two"])
    proc = cli("tapos-data", "import-features", tmp_path / "all.h5", tmp_path / "b.h5", "--map", "rgb=rgb",
               "--fps", "10", check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 2
    assert "v_bad: rgb: shape (3, 2, 2)" in proc.stderr
    assert "v_three: no array 'rgb' (named by --map; it has flow)" in proc.stderr
    with FeatureReader(tmp_path / "b.h5") as r:
        np.testing.assert_allclose(r.timestamps("v_two"), [0, 0.04, 0.08, 0.12])
        np.testing.assert_allclose(r.timestamps("v_one"), np.arange(9) / 10)

    # export in both formats; importing the export gives the cache back
    for fmt in ("npy", "npz"):
        cli("tapos-data", "export-features", tmp_path / "b.h5", tmp_path / fmt, "--format", fmt)
        cli("tapos-data", "import-features", tmp_path / fmt, tmp_path / f"back_{fmt}.h5")
        with FeatureReader(tmp_path / "b.h5") as a, FeatureReader(tmp_path / f"back_{fmt}.h5") as b:
            assert sorted(a.keys()) == sorted(b.keys())
            for key in a.keys():
                np.testing.assert_array_equal(a.read(key, "rgb"), b.read(key, "rgb"))
                np.testing.assert_allclose(a.timestamps(key), b.timestamps(key))
                assert a.info(key).fps == pytest.approx(b.info(key).fps)
    assert (tmp_path / "npy" / "v_one_timestamps_ms.npy").is_file() and (tmp_path / "npz" / "v_two.npz").is_file()


def test_a_file_that_cannot_be_written_fails_alone_and_the_rerun_imports_it(tmp_path, monkeypatch):
    """One cache job with tapos-extract: any error of one file (here its part's write) fails that
    file alone, with a one-line reason; the claim is released, so the rerun imports it."""
    from tapos.data.parts import PartStore

    src = tmp_path / "files"
    src.mkdir()
    for stem in "abc":
        np.save(src / f"{stem}.npy", feats(4))
    original = PartStore.write

    def write(self, key, *args, **kwargs):
        if key == "b":
            raise OSError(28, "No space left on device")
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(PartStore, "write", write)
    failures = []
    report = import_features(src, tmp_path / "f.h5", ImportConfig(fps=2), on_failure=lambda p, r: failures.append((p, r)))
    reason = "OSError: [Errno 28] No space left on device"
    assert report.done == ["a", "c"] and report.failed == [("b", reason)] and failures == [(str(src / "b.npy"), reason)]
    assert report.indexed == 2 and json.loads((tmp_path / "f.failures.json").read_text())["failed"][0]["reason"] == reason
    monkeypatch.setattr(PartStore, "write", original)
    again = import_features(src, tmp_path / "f.h5", ImportConfig(fps=2))
    assert again.done == ["b"] and again.skipped == ["a", "c"] and not again.failed and again.indexed == 3
    assert not (tmp_path / "f.failures.json").exists()
