import numpy as np
import pandas as pd
import pytest

from tapos.data import load_annotations
from tapos.data.stats import boundary_histogram, boundary_positions, per_class_table, summary_table, write_stats


def test_tables_by_hand(annotation_file):
    ann = load_annotations(annotation_file)
    table = per_class_table(ann)
    assert table.loc[11, "train"] == 1 and table.loc[11, "val"] == 1 and table.loc[11, "total"] == 2
    assert table.loc[3, "train"] == 1 and table.loc[3, "val"] == 1
    # class 3: 4.0 s and 3 sub-actions; 4.0 s and 2 sub-actions
    assert table.loc[3, "mean_duration_s"] == pytest.approx(4.0)
    assert table.loc[3, "mean_subactions"] == 2.5
    # class 11: 7.831 s and 2 sub-actions; 10 s and 4 sub-actions
    assert table.loc[11, "mean_duration_s"] == pytest.approx((7.831 + 10.0) / 2)
    assert table.loc[11, "mean_subactions"] == 3.0
    summary = summary_table(ann)
    assert summary.loc["instances", "value"] == 4 and summary.loc["classes", "value"] == 2
    assert summary.loc["instances (val)", "value"] == 2


def test_boundary_distribution(annotation_file):
    ann = load_annotations(annotation_file)
    pos = boundary_positions(ann)
    expected = sorted([79 / 195, 0.2, 0.5, 0.2, 0.4, 200 / 300, 50 / 120])
    np.testing.assert_allclose(sorted(pos), expected)
    hist = boundary_histogram(ann, bins=10)
    assert hist["count"].sum() == 7 and hist["probability"].sum() == pytest.approx(1.0)
    assert hist.loc[2, "count"] == 2  # 0.2 twice in [0.2, 0.3)


def test_write_stats_files(annotation_file, tmp_path):
    ann = load_annotations(annotation_file)
    paths = write_stats(ann, tmp_path / "stats")
    names = sorted(p.name for p in paths)
    assert names == ["boundary_positions.csv", "boundary_positions.png", "instances.csv", "per_class.csv",
                     "subactions_per_class.png", "summary.csv"]
    per_class = pd.read_csv(tmp_path / "stats/per_class.csv", index_col="action")
    assert per_class.loc[3, "mean_subactions"] == 2.5
    for p in paths:
        assert p.stat().st_size > 0
    assert (tmp_path / "stats/boundary_positions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
