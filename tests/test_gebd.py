import json
import os
import pickle

import numpy as np
import pytest

from tapos.data import (
    AnnotationError, UnsafePickleError, gebd_to_tapos, load_annotations, load_gebd, safe_load_pickle, save_gebd,
    tapos_to_gebd,
)


def test_tapos_to_gebd_matches_the_published_conversion(annotation_file):
    ann = load_annotations(annotation_file)
    videos = {v.key: v for v in tapos_to_gebd(ann.values())}
    v = videos["a_b-c_d-e_f_s00012_1_000_11_000"]
    assert v.duration == 10.0 and v.num_frames == 300 and v.fps == 30.0
    assert len(v.annotators) == 1
    np.testing.assert_array_equal(v.annotators[0], np.array([60, 120, 200], dtype=float) / 30.0)
    assert v.f1_consis == [1.0] and v.f1_consis_avg == 1.0
    v2 = videos["yMK2zxDDs2A_s00004_0_100_7_931"]
    fps = 195.0 / (float("7.931") - float("0.100"))
    assert v2.annotators[0].tolist() == [79 / fps]


@pytest.mark.parametrize("suffix", [".json", ".pkl"])
def test_roundtrip_is_lossless(annotation_file, tmp_path, suffix):
    ann = load_annotations(annotation_file)
    path = tmp_path / f"gebd{suffix}"
    save_gebd(tapos_to_gebd(ann.values()), path)
    back = load_gebd(path)
    assert list(back) == list(ann)
    restored = gebd_to_tapos(back.values())
    assert [i.to_entry() for i in restored] == [i.to_entry() for i in ann.values()]
    assert [i.key for i in restored] == list(ann)


def test_gebd_to_tapos_without_extra_fields(tmp_path):
    raw = {"abcdefghijk_s00001_0_000_4_000": {
        "num_frames": 100, "fps": 25.0, "video_duration": 4.0,
        "substages_timestamps": [[1.0, 2.02, 2.03], [1.5]], "f1_consis": [0.5, 0.5], "f1_consis_avg": 0.5}}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(raw))
    (inst,) = gebd_to_tapos(load_gebd(path).values(), subset="val")
    assert inst.substages == (0, 25, 50, 51, 100)  # round(t * fps)
    assert inst.action == -1 and inst.subset == "val" and inst.shot_timestamps == (0.0, 4.0)
    (inst1,) = gebd_to_tapos(load_gebd(path).values(), annotator=1)
    assert inst1.boundaries == (38,)  # round(37.5) -> 38 (banker's rounding would give 38 too)


def test_gebd_pickle_with_numpy_arrays_loads(tmp_path):
    # the GEBD authors' script stores boundaries as float64 arrays
    data = {"abcdefghijk_s00001_0_000_4_000": {
        "video_duration": 4.0, "fps": 25.0, "num_frames": 100,
        "substages_timestamps": [np.array([1.0, 2.0])], "f1_consis_avg": 1.0}}
    path = tmp_path / "g.pkl"
    path.write_bytes(pickle.dumps(data))
    v = load_gebd(path)["abcdefghijk_s00001_0_000_4_000"]
    assert v.annotators[0].tolist() == [1.0, 2.0]


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/tapos_pwned_marker",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = "/tmp/tapos_pwned_marker"
    if os.path.exists(marker):
        os.unlink(marker)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"k": _Evil()}))
    with pytest.raises(UnsafePickleError, match="refuses to load posix.system|refuses to load os.system"):
        safe_load_pickle(path)
    assert not os.path.exists(marker)
    with pytest.raises(AnnotationError, match="refuses"):
        load_gebd(path)


def test_restricted_unpickler_refuses_object_arrays(tmp_path):
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps({"k": np.array([1, "a"], dtype=object)}))
    with pytest.raises(UnsafePickleError):
        safe_load_pickle(path)


def test_restricted_unpickler_plain_data(tmp_path):
    data = {"a": [1, 2.5, (3, 4)], "b": {1: None, "x": True}, "c": {1, 2}}
    path = tmp_path / "ok.pkl"
    for protocol in (0, 2, 4, 5):
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        assert safe_load_pickle(path) == data


def test_truncated_pickle(tmp_path):
    path = tmp_path / "t.pkl"
    path.write_bytes(pickle.dumps({"a": [1, 2, 3]})[:-5])
    with pytest.raises(UnsafePickleError, match="not a readable pickle"):
        safe_load_pickle(path)


@pytest.mark.parametrize("record,message", [
    ({"substages_timestamps": [[1.0]]}, "missing field 'video_duration'"),
    ({"video_duration": 4.0}, "missing field 'substages_timestamps'"),
    ({"video_duration": 4.0, "substages_timestamps": []}, "non-empty"),
    ({"video_duration": 4.0, "substages_timestamps": [["x"]]}, "not a finite number"),
    ({"video_duration": -1.0, "substages_timestamps": [[1.0]]}, "not positive"),
])
def test_malformed_gebd_records(tmp_path, record, message):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"vid": record}))
    with pytest.raises(AnnotationError, match=message) as err:
        load_gebd(path)
    assert "video vid" in str(err.value)


def test_one_video_folder_is_no_class(tmp_path):
    """TAPOS' GEBD files keep every video in one ``videos/`` folder: that is no class; folders
    count as classes only when they give at least two; explicit fields always count."""
    from tapos.data.annotations import UNKNOWN_ACTION

    def record(folder, **extra):
        return {"num_frames": 50, "fps": 25.0, "video_duration": 2.0, "substages_timestamps": [[1.0]],
                "f1_consis": [1.0], "f1_consis_avg": 1.0,
                "path_video": f"/workspace/GEBD/data/TAPOS/{folder}/clip.mp4", **extra}

    keys = ["aaaaaaaaaaa_s00001_0_000_2_000", "bbbbbbbbbbb_s00002_1_000_3_000", "ccccccccccc_s00001_0_500_2_500"]
    one = tmp_path / "tapos_gt_val.pkl"
    one.write_bytes(pickle.dumps({k: record("videos") for k in keys}, protocol=4))
    ann = load_annotations(one)
    assert [i.action for i in ann.values()] == [UNKNOWN_ACTION] * 3 and {i.subset for i in ann.values()} == {"val"}
    two = tmp_path / "two.json"
    two.write_text(json.dumps({k: record(folder) for k, folder in zip(keys, ["vault", "jump", "vault"])}))
    assert [i.action for i in load_annotations(two).values()] == [1, 0, 1]  # names numbered in sorted order
    explicit = tmp_path / "explicit.json"
    explicit.write_text(json.dumps({keys[0]: record("videos", action=7), keys[1]: record("videos", label="beam"),
                                    keys[2]: record("videos")}))
    assert [i.action for i in load_annotations(explicit).values()] == [7, 0, UNKNOWN_ACTION]
