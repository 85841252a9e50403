"""No method collapses on data it was never tuned on: on synthetic datasets drawn with other
generator settings and seeds than the defaults, every parser predicts a plausible number of
boundaries (not none, not boundaries everywhere), selecting on a dev split as tapos-parse does."""
import numpy as np
import pytest

from tapos.data import FeatureDataset, load_annotations
from tapos.data.selection import carve_dev
from tapos.data.synth import write_dataset
from tapos.parse import FitOptions, get_parser, predict_dataset

SMALL = {  # small models and few epochs; every other option is the method's default
    "transparser": {"epochs": 6, "d_model": 64, "d_phi": 32, "d_ff": 128},
    "kmeans": {"k": 16},
    "isba": {"epochs": 5, "k": 16, "hidden": 64},
    "ctm": {"epochs": 5, "hidden": 64},
    "tcn": {"epochs": 5, "hidden": 64},
    "pa": {},
    "tsm": {},
    "kcpd": {},
    "embed": {"epochs": 8, "hidden": 64},
}

# generator settings far from the defaults: other feature widths, lengths, frame rates, counts, noise
SETTINGS = {
    "long-wide": dict(seed=21, n_classes=4, dim=96, duration_range=[4.0, 10.0], fps_choices=[30],
                      min_subactions=3, max_subactions=7, white_noise=0.3),
    "short-narrow": dict(seed=22, n_classes=6, dim=24, duration_range=[2.0, 5.0], fps_choices=[15, 25],
                         min_subactions=2, max_subactions=5, transition=0.2, smooth_noise=0.6),
}


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def held_out(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    write_dataset(out, n_instances=54, features=True, progress=False, **SETTINGS[request.param])
    ann = load_annotations(out / "tapos_annotation.json")
    fit, dev = carve_dev(ann.split("train"), 0.2)
    feats = out / "features.h5"
    return (request.param, FeatureDataset(feats, fit, "all", "rgb+flow"), FeatureDataset(feats, dev, "all", "rgb+flow"),
            FeatureDataset(feats, ann, "val", "rgb+flow"))


@pytest.mark.parametrize("method", sorted(SMALL))
def test_no_method_collapses(held_out, method):
    name, train, dev, val = held_out
    parser = get_parser(method, **SMALL[method])
    parser.fit(train, dev, FitOptions(seed=0, progress=False))
    preds = predict_dataset(parser, val)
    truth = np.mean([len(i.boundaries) for i in val.instances])
    got = np.mean([len(v) for v in preds.values()])
    rows = np.mean([val.reader.info(k).num_rows for k in val.keys])
    empty = np.mean([len(v) == 0 for v in preds.values()])
    assert got >= 0.3 * truth and empty <= 0.5, f"{method} on {name}: {got:.2f} boundaries per instance " \
                                                f"for {truth:.2f} ({empty:.0%} of instances without any)"
    assert got <= min(4 * truth, 0.25 * rows), f"{method} on {name}: {got:.2f} boundaries per instance for " \
                                               f"{truth:.2f} in {rows:.0f} rows"
