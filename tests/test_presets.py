"""Paper presets: the methods as their papers describe them, next to our defaults."""
import json

import numpy as np
import pytest
import torch

from tapos.data import FeatureDataset, TaposError, load_annotations
from tapos.parse import PARSERS, FitOptions, get_parser, predict_dataset

PAPER_METHODS = ("transparser", "kmeans", "isba", "ctm", "tcn", "pa")  # the methods of the TAPOS paper


def test_every_method_has_a_paper_preset_and_options_win():
    for name in PAPER_METHODS:  # the label-free methods added later (tsm, kcpd) are from no paper
        cls = PARSERS[name]
        assert "paper" in cls.PRESETS, name
        assert set(cls.PRESETS["paper"]) <= set(cls.DEFAULTS), name
    tp = get_parser("transparser", preset="paper")
    assert (tp.config["d_model"], tp.config["scaled"], tp.config["post_norm"], tp.config["min_segment"]) == \
        (None, False, False, 1)
    assert get_parser("transparser", preset="paper", min_segment=3).config["min_segment"] == 3
    assert get_parser("transparser").config["d_model"] == 256 and get_parser("transparser").preset == "default"
    with pytest.raises(TaposError, match="unknown preset 'papr'"):
        get_parser("tcn", preset="papr")


def test_paper_transparser_single_unit_parses_the_refined_features():
    """Eq. (3) without normalisation, and with one unit the responses of f' to the patterns."""
    p = get_parser("transparser", preset="paper", units=1, patterns=4, d_phi=8, d_k=8, d_ff=16)
    p.dim, p.num_classes = 6, 3
    net = p.build_model().eval()
    unit = net.units[0]
    x = torch.randn(10, 6)
    f, att = net(x)
    assert isinstance(net.inp, torch.nn.Identity) and not unit.post_norm and unit.scale == 1.0
    alpha = unit.responses(x)
    v = torch.einsum("md,hdk->hmk", unit.phi, unit.w_v)
    r = unit.merge(torch.einsum("hnm,hmd->hnd", alpha, v).permute(1, 0, 2).reshape(10, -1))
    assert torch.allclose(f, unit.ffn(x + r), atol=1e-6)  # f' = FFN(f + r~)
    assert torch.allclose(att, unit.responses(f).mean(0), atol=1e-6)  # attention computed on f'
    two = get_parser("transparser", preset="paper", units=2, patterns=4, d_phi=8, d_k=8, d_ff=16)
    two.dim, two.num_classes = 6, 3
    net2 = two.build_model().eval()
    f2, att2 = net2(x)
    assert torch.allclose(att2, net2.units[1].responses(net2.units[0](x)[0]).mean(0), atol=1e-6)  # the last unit's


def test_paper_isba_groups_frames(synth_dir):
    ann = load_annotations(synth_dir / "tapos_annotation.json")
    train = FeatureDataset(synth_dir / "features.h5", ann, "train", "rgb")
    p = get_parser("isba", preset="paper", epochs=2, k=8, hidden=32)
    p.fit(train, None, FitOptions(seed=0, progress=False))
    assert all(len(t) == len(train[i]["row_boundaries"]) + 1 for i, t in
               ((i, p.transcripts[train.keys[i]]) for i in range(5)))
    assert len({lab for t in p.transcripts.values() for lab in t}) > 1
    assert np.isfinite(np.concatenate(list(predict_dataset(p, train).values()) or [np.zeros(0)])).all()


def test_preset_from_the_command_line(synth_dir, tmp_path, cli):
    feats, ann = synth_dir / "features.h5", synth_dir / "tapos_annotation.json"
    cli("tapos-parse", "train", "--method", "tcn", "--features", feats, "--annotations", ann, "--out", tmp_path / "a",
        "--preset", "paper", "--epochs", "1", "--set", "hidden=16")
    config = json.loads((tmp_path / "a/config.json").read_text())
    assert config["preset"] == "paper" and config["config"]["threshold"] == 0.5 and config["config"]["hidden"] == 16
    cli("tapos-parse", "train", "--method", "pa", "--features", feats, "--annotations", ann, "--out", tmp_path / "b",
        "--set", "preset=paper")
    assert json.loads((tmp_path / "b/config.json").read_text())["config"]["threshold"] == 0.5
    bad = cli("tapos-parse", "train", "--method", "pa", "--features", feats, "--annotations", ann, "--out",
              tmp_path / "c", "--preset", "nope", check=False)
    assert bad.returncode == 1 and "unknown preset 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    listing = cli("tapos-parse", "methods").stdout
    assert listing.count("--preset paper:") == sum("paper" in cls.PRESETS for cls in PARSERS.values())
