import json

import numpy as np
import pytest

from tapos.data import AnnotationError, load_annotations, parse_instance_id, rescale_boundaries, split_key
from tapos.data.annotations import annotations_from_dict, save_annotations


def test_loads_released_layout(annotation_file):
    ann = load_annotations(annotation_file)
    assert len(ann) == 4
    inst = ann["yMK2zxDDs2A_s00004_0_100_7_931"]
    assert inst.youtube_id == "yMK2zxDDs2A" and inst.instance_id == "s00004_0_100_7_931"
    assert inst.action == 11 and inst.subset == "train" and inst.total_frames == 195
    assert inst.boundaries == (79,)
    assert inst.num_subactions == 2
    # times come from the id's text, exactly as the GEBD conversion scripts parse them
    assert inst.duration == float("7.931") - float("0.100")
    assert inst.fps == 195.0 / (float("7.931") - float("0.100"))
    assert inst.start == pytest.approx(43.46) and inst.end == pytest.approx(51.291)
    assert inst.shot == 4


def test_youtube_ids_with_underscores(annotation_file):
    ann = load_annotations(annotation_file)
    key = "a_b-c_d-e_f_s00012_1_000_11_000"
    assert key in ann
    assert ann[key].youtube_id == "a_b-c_d-e_f"
    assert split_key(key) == ("a_b-c_d-e_f", "s00012_1_000_11_000")
    assert ann[key].fps == 30.0
    assert ann[key].boundaries_seconds() == [2.0, 4.0, 20 / 3]


def test_splits_and_roundtrip(annotation_file, tmp_path):
    ann = load_annotations(annotation_file)
    assert sorted(ann.split("val")) == ["Zz-_09aB_cD_s00001_0_000_4_000", "a_b-c_d-e_f_s00012_1_000_11_000"]
    assert len(ann.split("train")) == 2 and len(ann.split("test")) == 0
    assert ann.actions == [3, 11]
    out = tmp_path / "copy.json"
    save_annotations(ann.values(), out)
    assert json.loads(out.read_text()) == json.loads(annotation_file.read_text())


def test_parse_instance_id():
    assert parse_instance_id("s00004_0_100_7_931") == (4, 0.1, 7.931)
    assert parse_instance_id("s123456_12_005_13_050") == (123456, 12.005, 13.05)
    for bad in ("s4_0_100_7_931x", "00004_0_100_7_931", "s00004_0_1_7_931", "s00004_0_100_7"):
        with pytest.raises(ValueError):
            parse_instance_id(bad)


def test_rescale_boundaries():
    # a 195-frame annotation on a re-downloaded 390-frame video
    np.testing.assert_array_equal(rescale_boundaries([79, 100], 195, 390), [158.0, 200.0])
    assert rescale_boundaries([1], 3, 2)[0] == 1 * 2 / 3


BAD = [
    (lambda e: e.pop("substages"), "missing field 'substages'"),
    (lambda e: e.pop("subset"), "missing field 'subset'"),
    (lambda e: e.update(substages=[0, 79.5, 195]), "index 1 value 79.5 is not an integer"),
    (lambda e: e.update(substages=[0, 100, 79, 195]), "not increasing at index 2 (79 after 100)"),
    (lambda e: e.update(substages=[0, 79, 79, 195]), "not increasing at index 2"),
    (lambda e: e.update(substages=[0, 79, 196]), "outside [0, total_frames=195]"),
    (lambda e: e.update(substages=[-3, 79, 195]), "outside [0, total_frames=195]"),
    (lambda e: e.update(substages=[0]), "at least two frame indices"),
    (lambda e: e.update(subset="testing"), "unknown subset 'testing'"),
    (lambda e: e.update(total_frames="195"), "field 'total_frames'"),
    (lambda e: e.update(action=True), "field 'action'"),
    (lambda e: e.update(shot_timestamps=[43.36]), "field 'shot_timestamps'"),
]


@pytest.mark.parametrize("mutate,message", BAD)
def test_malformed_entries_name_instance_and_field(tmp_path, raw_annotations, mutate, message):
    mutate(raw_annotations["yMK2zxDDs2A"]["s00004_0_100_7_931"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw_annotations))
    with pytest.raises(AnnotationError) as err:
        load_annotations(path)
    text = str(err.value)
    assert message in text
    assert str(path) in text and "yMK2zxDDs2A_s00004_0_100_7_931" in text
    assert "\n" not in text


@pytest.mark.parametrize("bad_id", ["s00004_0_100_7", "clip_0001", "s00004_7_931_0_100"])
def test_malformed_instance_ids(raw_annotations, bad_id):
    raw_annotations["yMK2zxDDs2A"][bad_id] = raw_annotations["yMK2zxDDs2A"]["s00004_0_100_7_931"]
    with pytest.raises(AnnotationError, match="malformed instance id"):
        annotations_from_dict(raw_annotations, "f.json")


def test_lenient_skips_and_counts(tmp_path, raw_annotations, capsys):
    raw_annotations["yMK2zxDDs2A"]["s00004_0_100_7_931"]["subset"] = "nope"
    raw_annotations["a_b-c_d-e_f"]["bad_id"] = {}
    raw_annotations["broken"] = [1, 2]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw_annotations))
    ann = load_annotations(path, lenient=True)
    assert len(ann) == 3
    assert len(ann.skipped) == 3
    assert "skipped 3 malformed" in capsys.readouterr().err


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ("[1, 2, 3]", "expected an object"),
    ('{"abcdefghijk": 5}', "expected an object of instances"),
])
def test_structurally_bad_files(tmp_path, content, message):
    path = tmp_path / "a.json"
    path.write_text(content)
    with pytest.raises(AnnotationError, match=message):
        load_annotations(path)


def test_missing_file(tmp_path):
    with pytest.raises(AnnotationError, match="no such file"):
        load_annotations(tmp_path / "nope.json")
