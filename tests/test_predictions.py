import pickle

import numpy as np
import pytest

from tapos.data import PredictionError, load_predictions, save_predictions


def test_roundtrip_json_and_pickle(tmp_path):
    preds = {"k1": [3, 10, 27], "k2": [], "k3": np.array([0.5, 1.25])}
    for name in ("p.json", "p.pkl"):
        save_predictions(preds, tmp_path / name)
        back = load_predictions(tmp_path / name)
        assert list(back) == ["k1", "k2", "k3"]
        assert back["k1"].tolist() == [3.0, 10.0, 27.0]
        assert back["k2"].size == 0
        assert back["k3"].tolist() == [0.5, 1.25]
    assert '"k1": [\n  3,' in (tmp_path / "p.json").read_text()  # integers stay integers


@pytest.mark.parametrize("content,message", [
    ("[1, 2]", "expected a mapping"),
    ('{"k": 3}', "expected a list of boundaries"),
    ('{"k": [1, "x"]}', "is not a number"),
    ('{"k": [1, NaN]}', "not finite"),
    ('{"k": [Infinity]}', "not finite"),
    ('{"k": [true]}', "is not a number"),
    ('{"k": [1, 2]', "not valid JSON"),
])
def test_structurally_bad_json(tmp_path, content, message):
    path = tmp_path / "pred.json"
    path.write_text(content)
    with pytest.raises(PredictionError, match=message) as err:
        load_predictions(path)
    assert str(path) in str(err.value)


def test_bad_pickles(tmp_path):
    path = tmp_path / "pred.pkl"
    path.write_bytes(pickle.dumps({"k": [1.0, float("nan")]}))
    with pytest.raises(PredictionError, match="not finite"):
        load_predictions(path)
    path.write_bytes(pickle.dumps({1: [1.0]}))
    with pytest.raises(PredictionError, match="is not a string"):
        load_predictions(path)


def test_missing_file(tmp_path):
    with pytest.raises(PredictionError, match="no such file"):
        load_predictions(tmp_path / "none.json")
