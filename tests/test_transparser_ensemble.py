"""TransParser's change-score readout and its seed ensemble (members): the score ignores how
patterns are numbered, the ensemble averages its members, each member is the single model of its
seed, and the ensemble saves and loads whole."""
import numpy as np
import pytest
import torch

from tapos.data import FeatureDataset, TaposError, load_annotations
from tapos.parse import PARSERS, FitOptions, get_parser

TINY = {"boundaries": "change", "epochs": 2, "d_model": 16, "d_phi": 8, "d_k": 8, "d_ff": 32, "patterns": 6}


@pytest.fixture(scope="module")
def splits(synth_dir):
    ann = load_annotations(synth_dir / "tapos_annotation.json")
    feats = synth_dir / "features.h5"
    return FeatureDataset(feats, ann, "train", "rgb"), FeatureDataset(feats, ann, "val", "rgb")


@pytest.fixture(scope="module")
def ensemble(splits):
    train, val = splits
    parser = get_parser("transparser", members=2, **TINY)
    history = parser.fit(train, val, FitOptions(seed=3, progress=False))
    return parser, history


def test_change_score_ignores_the_numbering_of_patterns(splits, ensemble):
    _, val = splits
    state = ensemble[0].state()  # its first member alone
    state["config"]["members"], state["extra"] = 1, {"model": state["extra"]["model"]}
    parser = PARSERS["transparser"].from_state(state)
    x = parser.transform(val[0]["features"].numpy())
    before_labels, before_score = parser.frame_labels(x), parser.change_score(x)
    perm = torch.tensor([5, 3, 0, 1, 4, 2])
    with torch.no_grad():
        unit = parser.model.units[-1]
        unit.phi.copy_(unit.phi[perm])  # the same miner, its rows renumbered
    assert not np.array_equal(parser.frame_labels(x), before_labels)  # the argmax labels are renumbered
    assert np.allclose(parser.change_score(x), before_score, atol=1e-6)


def test_members_are_the_single_models_of_their_seeds(splits, ensemble):
    train, val = splits
    parser, history = ensemble
    assert [r["member"] for r in history] == [0, 0, 1, 1, "ensemble"]
    assert history[-1]["best"] and "val_f1_rel" in history[-1] and "tuned_threshold" in history[-1]
    assert "tuned_min_segment" not in history[-1]  # the change readout never smooths: nothing to tune
    x = parser.transform(val[1]["features"].numpy())
    scores = []
    for i, model in enumerate([parser.model, *parser.others]):
        single = get_parser("transparser", members=1, **TINY)
        single.fit(train, val, FitOptions(seed=3 * 2 + i, progress=False))
        for k, v in single.model.state_dict().items():
            assert torch.equal(v, model.state_dict()[k]), (i, k)
        scores.append(single.change_score(x))
    assert np.allclose(parser.change_score(x), np.mean(scores, axis=0), atol=1e-6)


def test_each_readout_tunes_only_its_own_option(splits, ensemble):
    _, val = splits
    state = ensemble[0].state()
    state["config"].update(members=1, boundaries="argmax", threshold="auto", min_segment="auto")
    state["extra"] = {"model": state["extra"]["model"]}
    parser = PARSERS["transparser"].from_state(state)
    assert set(parser.tune(val)) == {"min_segment"}  # argmax: the threshold would change nothing
    assert parser.config["threshold"] == parser.TUNABLE["threshold"][0]


def test_ensemble_saves_and_loads_whole(splits, ensemble):
    _, val = splits
    parser, _ = ensemble
    loaded = PARSERS["transparser"].from_state(parser.state())
    assert len(loaded.others) == 1
    for i in range(len(val)):
        item = val[i]
        f, frames = item["features"].numpy(), item["frames"].numpy()
        assert np.array_equal(loaded.predict(f, frames), parser.predict(f, frames))


def test_argmax_readout_cannot_be_ensembled():
    with pytest.raises(TaposError, match="members > 1 needs boundaries='change'"):
        get_parser("transparser", boundaries="argmax", members=3)
    with pytest.raises(TaposError, match="boundaries must be one of"):
        get_parser("transparser", boundaries="vote")
    assert get_parser("transparser", preset="paper").config["members"] == 1
    ens = get_parser("transparser", preset="ensemble").config
    assert ens["members"] == 5 and ens["boundaries"] == "change"
