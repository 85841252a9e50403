"""benchmarks/real_tapos.py on small ground-truth files made in the test (the real ones stay in
../shared and are never read by tests): the reference table is written, and absent files are
reported in one line."""
import subprocess
import sys
from pathlib import Path


from tapos.data import load_annotations, load_gebd
from tapos.data.priors import BoundaryPrior, prior_predictions
from tapos.evaluate import evaluate_gebd

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "real_tapos.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_reference_table_from_ground_truth_files(tmp_path, synth_dir, cli):
    ann = synth_dir / "tapos_annotation.json"
    gt = tmp_path / "gt"
    gt.mkdir()
    for split in ("train", "val"):
        cli("tapos-data", "convert", ann, gt / f"tapos_gt_{split}.pkl", "--to", "gebd", "--split", split)
    proc = run("--gt-dir", gt, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "out" / "real_tapos.md").read_text()
    assert text.startswith("<!-- written by: python benchmarks/real_tapos.py --gt-dir")
    for needle in ("oracle-count (reads val", "prior-best: count chosen on train", "Published numbers on TAPOS val",
                   "TransParser", "The train-only choice"):
        assert needle in text, needle
    # the "3 equally spaced" row is what the GEBD protocol gives those boundaries
    val = load_annotations(gt / "tapos_gt_val.pkl")
    f1 = evaluate_gebd(load_gebd(gt / "tapos_gt_val.pkl"),
                       prior_predictions(BoundaryPrior(count=3), val.values(), seconds=True)).relative.f1
    row = next(line for line in text.splitlines() if line.startswith("| 3 equally spaced"))
    cells = [c.strip() for c in row.split("|")[2:4]]
    assert cells == [f"{f1[0]:.3f}", f"{f1.mean():.3f}"]


def test_absent_ground_truth_is_one_line(tmp_path):
    proc = run("--gt-dir", tmp_path / "nowhere", "--out", tmp_path / "out")
    assert proc.returncode == 1 and "ground truth not found" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
