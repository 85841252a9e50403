"""tapos-data from the shell, as users run it."""
import json

import pytest

from tapos.data import load_annotations, load_gebd, load_predictions


def test_synth_stats_convert_uniform(tmp_path, cli):
    out = tmp_path / "ds"
    proc = cli("tapos-data", "synth", out, "--instances", "30", "--classes", "3", "--seed", "2", "--features",
               "--dim", "16", "--dtype", "float16", "--set", "annotators=2")
    assert "wrote 30 instances" in proc.stdout
    assert (out / "features.h5").exists() and not (out / "videos").exists()
    assert all(len(v.annotators) == 2 for v in load_gebd(out / "gebd_annotators.json").values())
    proc = cli("tapos-data", "stats", out / "tapos_annotation.json", "--out", tmp_path / "stats")
    assert "per class" in proc.stdout and "mean_subactions" in proc.stdout
    assert (tmp_path / "stats/subactions_per_class.png").exists()
    cli("tapos-data", "convert", out / "tapos_annotation.json", tmp_path / "val.pkl", "--to", "gebd", "--split", "val")
    cli("tapos-data", "convert", tmp_path / "val.pkl", tmp_path / "back.json", "--to", "tapos")
    ann = load_annotations(out / "tapos_annotation.json").split("val")
    back = load_annotations(tmp_path / "back.json")
    assert [i.to_entry() for i in back.values()] == [i.to_entry() for i in ann.values()]
    cli("tapos-data", "uniform-boundaries", out / "tapos_annotation.json", "--segments", "3", "--out",
        tmp_path / "p.json")
    preds = load_predictions(tmp_path / "p.json")
    assert set(preds) == set(ann)
    key = next(iter(ann))
    t = ann[key].total_frames
    assert preds[key].tolist() == pytest.approx([t / 3, 2 * t / 3])  # instants, not whole frames (the prior's rule)


def test_validate(tmp_path, annotation_file, raw_annotations, cli):
    proc = cli("tapos-data", "validate", annotation_file)
    assert "4 valid instances (2 train, 2 val), 0 malformed" in proc.stdout
    raw_annotations["yMK2zxDDs2A"]["s00004_0_100_7_931"]["substages"] = [0, 300, 195]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw_annotations))
    proc = cli("tapos-data", "validate", bad, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("Error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "yMK2zxDDs2A_s00004_0_100_7_931" in proc.stderr and "substages" in proc.stderr
    proc = cli("tapos-data", "validate", bad, "--lenient", check=False)
    assert proc.returncode == 1 and "3 valid instances" in proc.stdout and "bad: instance" in proc.stdout


def test_errors_are_one_line(tmp_path, cli):
    for args in (("stats", tmp_path / "missing.json"),
                 ("convert", tmp_path / "missing.pkl", tmp_path / "o.json", "--to", "tapos")):
        proc = cli("tapos-data", *args, check=False)
        assert proc.returncode == 1, proc.stderr
        assert "no such file" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("tapos-data", "synth", tmp_path / "x", "--set", "nonsense=1", check=False)
    assert proc.returncode == 2 and "NAME=VALUE" in proc.stderr
