"""The TAPOS paper's protocol, the human agreement and the tapos-evaluate command line."""
import json
import pickle

import numpy as np
import pytest

from tapos.data import load_annotations, save_predictions
from tapos.data.gebd import GebdVideo, save_gebd
from tapos.evaluate import ABSOLUTE_THRESHOLDS, evaluate_tapos, evaluate_tapos_by_class, human_agreement


@pytest.fixture
def val(annotation_file):
    return load_annotations(annotation_file).split("val")


def test_hand_computed(val):
    # a_b..: gt 60, 120, 200 of 300 frames; Zz..: gt 50 of 120 frames
    preds = {"a_b-c_d-e_f_s00012_1_000_11_000": [58, 131, 290, 400],  # 400 > 300: dropped
             "Zz-_09aB_cD_s00001_0_000_4_000": [47]}
    res = evaluate_tapos(val, preds)
    rel, ab = res.relative, res.absolute
    assert rel.detections.tolist() == [4] * 10 and rel.positives.tolist() == [4] * 10
    # rel 0.05: tol 15 (a_b) and 6 (Zz): 58~60 ok, 120: nearest 131 (11) ok, 200: 290 too far; 47~50 ok
    assert rel.tp[0] == 3
    # abs 5: 58 ok, 131 (11) no, 47 ok -> 2; abs 10: same; abs 15: 131 ok -> 3
    assert ab.tp[:3].tolist() == [2, 2, 3]
    # rel 0.3: tol 90: 200 <-> 290 -> 4
    assert rel.tp[5] == 4
    assert res.counts["dropped_out_of_range"] == 1
    prec, rec, f1 = ab.prf
    assert prec[0] == 0.5 and rec[0] == 0.5 and f1[0] == 0.5
    js = res.to_json()
    assert set(js) == {"protocol", "relative", "absolute"} and js["protocol"] == "tapos"
    assert js["absolute"]["thresholds"] == list(ABSOLUTE_THRESHOLDS)
    assert set(js["relative"]) == {"thresholds", "precision", "recall", "f1", "avg_precision", "avg_recall", "avg_f1"}


def test_perfect_and_empty(val):
    perfect = {k: list(i.boundaries) for k, i in val.items()}
    res = evaluate_tapos(val, perfect)
    assert res.to_json()["relative"]["avg_f1"] == 1.0 and res.to_json()["absolute"]["avg_f1"] == 1.0
    res = evaluate_tapos(val, {})
    assert res.to_json()["relative"]["avg_f1"] == 0.0 and res.counts["missing_predictions"] == 2


def test_by_class(annotation_file):
    ann = load_annotations(annotation_file)
    preds = {k: list(i.boundaries) for k, i in ann.items() if i.action == 3}
    by = evaluate_tapos_by_class(ann, preds)
    assert sorted(by) == [3, 11]
    assert by[3].relative.f1.tolist() == [1.0] * 10
    assert by[11].relative.f1.tolist() == [0.0] * 10 and by[11].counts["videos"] == 2


def test_human_agreement():
    gt = {
        "v1": GebdVideo("v1", 10.0, [np.array([2.0, 5.0]), np.array([2.1, 5.0]), np.array([8.0])]),
        "v2": GebdVideo("v2", 10.0, [np.array([3.0])]),  # one annotator: not used
    }
    res = human_agreement(gt, thresholds=[0.05])
    assert sorted(res) == [0, 1, 2]
    # annotator 0 vs {1, 2}: against 1: 2 of 2 -> F1 1 (best)
    assert res[0].relative.f1.tolist() == [1.0] and res[0].counts["videos"] == 1
    # annotator 2 ([8.0]) vs {0, 1}: nothing matches: tp 0, positives of the first (best on tie) = 2
    assert res[2].relative.tp.tolist() == [0] and res[2].relative.positives.tolist() == [2]


def test_human_rounds_against_the_first_as_the_paper():
    from tapos.evaluate import human_rounds

    gt = {  # 10 s at 30 fps; round 1 at 2 s and 5 s
        "v1": GebdVideo("v1", 10.0, [np.array([2.0, 5.0]), np.array([2.3, 5.0]), np.array([8.0])], 300, 30.0),
        "v2": GebdVideo("v2", 10.0, [np.array([3.0]), np.array([3.0])], 300, 30.0),  # no third round
    }
    res = human_rounds(gt, relative=[0.01, 0.05], absolute=[5, 10])
    assert sorted(res) == [1, 2] and res[1].counts["videos"] == 2 and res[2].counts["videos"] == 1
    # round 2 against round 1: 5.0 and 3.0 match within 0.1 s; 2.3 only within 0.5 s (rel 0.05) or 10 frames
    assert res[1].relative.tp.tolist() == [2, 3] and res[1].absolute.tp.tolist() == [2, 3]
    assert res[2].relative.tp.tolist() == [0, 0] and res[2].relative.positives.tolist() == [2, 2]
    no_rate = {"v": GebdVideo("v", 10.0, [np.array([2.0]), np.array([2.0])])}
    assert human_rounds(no_rate)[1].absolute is None and human_rounds(no_rate)[1].relative.f1[0] == 1.0


# --- command line ---------------------------------------------------------------------------

def test_cli_tapos_json_plot_by_class(annotation_file, tmp_path, cli):
    ann = load_annotations(annotation_file)
    pred = tmp_path / "pred.json"
    save_predictions({k: list(i.boundaries) for k, i in ann.items()}, pred)
    out = tmp_path / "scores.json"
    png = tmp_path / "scores.png"
    proc = cli("tapos-evaluate", "tapos", annotation_file, pred, "--split", "all", "--json", out, "--plot", png,
                   "--by-class")
    assert "avg" in proc.stdout and "per class" in proc.stdout
    js = json.loads(out.read_text())
    assert js["relative"]["avg_f1"] == 1.0 and js["absolute"]["f1"] == [1.0] * 10
    assert png.stat().st_size > 10_000 and (tmp_path / "scores_by_class.png").stat().st_size > 10_000
    assert set(json.loads((tmp_path / "scores_by_class.json").read_text())) == {"3", "11"}


def test_cli_gebd_and_human(annotation_file, tmp_path, cli):
    gt = tmp_path / "gt.pkl"
    cli("tapos-data", "convert", annotation_file, gt, "--to", "gebd", "--split", "val")
    pred = tmp_path / "pred.pkl"
    pred.write_bytes(pickle.dumps({"a_b-c_d-e_f_s00012_1_000_11_000": [2.0, 4.0, 6.6667], "unknown": [1.0]}))
    out = tmp_path / "g.json"
    proc = cli("tapos-evaluate", "gebd", gt, pred, "--json", out)
    js = json.loads(out.read_text())
    assert set(js) == {"protocol", "relative", "reference", "prior_source", "margin"} and js["protocol"] == "gebd"
    cli("tapos-evaluate", "gebd", gt, pred, "--json", out, "--no-reference")
    assert set(json.loads(out.read_text())) == {"protocol", "relative"}  # no absolute thresholds in GEBD
    # 3 of 4 positives (the other video has no prediction), 3 of 3 detections
    assert js["relative"]["precision"][0] == 1.0 and js["relative"]["recall"][0] == 0.75
    assert "1 prediction keys are not in the ground truth" in proc.stderr
    assert "1 of 2 ground-truth videos have no prediction" in proc.stderr
    multi = tmp_path / "multi.json"
    save_gebd([GebdVideo("v1", 10.0, [np.array([2.0, 5.0]), np.array([2.1, 5.0])])], multi)
    proc = cli("tapos-evaluate", "human", multi)
    assert "mean" in proc.stdout and "round 2" in proc.stdout and "against round 1" in proc.stdout
    proc = cli("tapos-evaluate", "human", multi, "--against", "others")
    assert "mean" in proc.stdout and "annotator 1" in proc.stdout
    proc = cli("tapos-evaluate", "human", gt, check=False)
    assert proc.returncode == 1 and "no video has two or more annotators" in proc.stderr


@pytest.mark.parametrize("content,message", [
    ('["not", "a", "mapping"]', "expected a mapping"),
    ('{"k": [1, "two"]}', "is not a number"),
    ('{"k": [NaN]}', "not finite"),
])
def test_cli_bad_prediction_files(annotation_file, tmp_path, cli, content, message):
    pred = tmp_path / "pred.json"
    pred.write_text(content)
    proc = cli("tapos-evaluate", "tapos", annotation_file, pred, check=False)
    assert proc.returncode == 1
    assert message in proc.stderr and str(pred) in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_cli_missing_files(annotation_file, tmp_path, cli):
    proc = cli("tapos-evaluate", "tapos", tmp_path / "none.json", tmp_path / "p.json", check=False)
    assert proc.returncode == 1 and "none.json: no such file" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("tapos-evaluate", "gebd", annotation_file, tmp_path / "p.json", check=False)
    # a TAPOS file is not a GEBD file: its records lack the GEBD fields
    assert proc.returncode == 1 and "missing field 'video_duration'" in proc.stderr
