"""benchmarks/harness.py and the small scripts on top of it, on real files: synthetic data made once
(and refused when made otherwise), the results header, the cache size against a cache written by
the extractor's part store, and make demo's summary against the evaluation JSONs it reads."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tapos.data import load_annotations
from tapos.data.features import ExtractionSettings
from tapos.data.parts import PartStore

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import harness  # noqa: E402


def script(name, *args, cwd=None):
    return subprocess.run([sys.executable, str(BENCHMARKS / name), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def test_synthetic_data_is_made_once_and_refused_when_made_otherwise(tmp_path, capsys):
    data = tmp_path / "data"
    assert harness.synthetic(data, n_instances=12, n_classes=2, seed=3) == data
    assert json.loads((data / harness.MARKER).read_text()) == {"n_instances": 12, "n_classes": 2, "seed": 3}
    assert not (tmp_path / "data.partial").exists() and "generated" in capsys.readouterr().out
    made = (data / "tapos_annotation.json").stat().st_mtime_ns
    harness.synthetic(data, n_instances=12, n_classes=2, seed=3, progress=True)  # the same data: reused
    assert (data / "tapos_annotation.json").stat().st_mtime_ns == made and capsys.readouterr().out == ""
    with pytest.raises(SystemExit, match=r"data: made with other settings \(seed=3 \(asked: 4\)\)"):
        harness.synthetic(data, n_instances=12, n_classes=2, seed=4)
    assert harness.synthetic(data, check=False, features=True) == data  # a script that reads any dataset
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "features.h5").write_bytes(b"")
    with pytest.raises(SystemExit, match="foreign: holds files but no .complete marker"):
        harness.synthetic(foreign, check=False, features=True)
    (foreign / harness.MARKER).write_text("ok\n")  # written by the scripts before the harness, once complete
    assert harness.synthetic(foreign, features=True) == foreign


def test_a_report_starts_with_its_command_date_and_commit(tmp_path):
    proc = script("evaluate_speed.py", "--instances", 20, "--repeat", 1, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "out" / "evaluate_speed.md").read_text().splitlines()
    assert lines[0].startswith(f"<!-- written by: python benchmarks/evaluate_speed.py --instances 20 --repeat 1 "
                               f"--out {tmp_path / 'out'} (20") and ", commit " in lines[0]
    assert lines[1] == "" and lines[-1].startswith("<!-- ran ") and "CPU cores, load average" in lines[-1]
    assert any(line.startswith("| gebd protocol, 5 annotators") for line in lines)


def test_cache_size_is_the_size_of_an_extracted_cache(tmp_path, synth_dir):
    ann = synth_dir / "tapos_annotation.json"
    proc = script("cache_size.py", ann, "--stride", 3, "--dim", 16, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    # the cache tapos-extract's part store writes for those instances at stride 3, 16 values per row
    settings = ExtractionSettings(backbone="bninception", weights={"rgb": "x", "flow": "x"},
                                  modalities=("rgb", "flow"), dtype="float16", stride=3)
    store = PartStore(tmp_path / "cache" / "feats.h5")
    store.check_settings(settings, overwrite=False)
    for key, inst in load_annotations(ann).items():
        rows = math.ceil(inst.total_frames / 3)
        frames = np.arange(rows) * 3
        store.write(key, {m: np.ones((rows, 16), np.float16) for m in ("rgb", "flow")}, inst.fps / 3,
                    inst.total_frames, frames, settings, timestamps=frames / inst.fps, frame_rate=inst.fps)
    store.write_index(settings)
    disk = sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*.h5"))
    sizes = pd.read_csv(tmp_path / "cache_size.csv").set_index(["stride", "modality", "dtype"])
    computed = sizes.loc[(3, "rgb+flow", "float16"), "total"]
    assert abs(computed - disk) <= 0.02 * disk, (computed, disk)
    assert "| train (GB) |" in (tmp_path / "cache_size.md").read_text().replace("  ", "")


def test_cache_size_names_a_missing_file_in_one_line(tmp_path):
    proc = script("cache_size.py", tmp_path / "nowhere.json", "--out", tmp_path)
    assert proc.returncode == 1 and "nowhere.json" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_demo_summary_reads_the_headline_numbers_and_the_chance_lines(tmp_path, synth_dir, cli):
    demo = tmp_path / "demo"
    demo.mkdir()
    ann = demo / "tapos_annotation.json"
    ann.write_text((synth_dir / "tapos_annotation.json").read_text())
    cli("tapos-data", "uniform-boundaries", ann, "--split", "val", "--segments", 4, "--out", demo / "pred.json")
    cli("tapos-evaluate", "tapos", ann, demo / "pred.json", "--split", "val", "--json", demo / "eval_tapos.json")
    proc = script("demo_summary.py", demo)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((demo / "eval_tapos.json").read_text())
    f1 = res["relative"]["f1"]
    lines = {k: v["relative"]["f1"] for k, v in res["reference"].items() if k != "oracle-count"}
    best = max(lines, key=lambda k: np.mean(lines[k]))
    row = next(line for line in proc.stdout.splitlines() if "4 equal parts" in line and "| tapos" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == f"{f1[0]:.3f} / {np.mean(f1):.3f}"
    assert cells[3] == f"{best}: {lines[best][0]:.3f} / {np.mean(lines[best]):.3f}"
    assert cells[4] == f"{f1[0] - lines[best][0]:+.3f} / {np.mean(f1) - np.mean(lines[best]):+.3f}"
    missing = next(line for line in proc.stdout.splitlines() if line.startswith("| TransParser"))
    assert missing.count("—") == 5  # the demo stage that wrote it did not run
    assert (demo / "summary.md").read_text().startswith("<!-- written by: python benchmarks/demo_summary.py")
