"""The one training loop (tapos.data.machinery.training): selection, weighted means, schedules,
progress into a log file, and no other loop in the library."""
import ast
import io
from pathlib import Path

import pytest
import torch

from tapos.data.machinery.training import Training, to_device, train_epochs

ROOT = Path(__file__).resolve().parents[1]


def toy_run(scores=None, **kw):
    """A linear model on a fixed batch; ``scores``: what the evaluation reports epoch by epoch."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    snapshots = []  # the weights at the end of each epoch

    def evaluate():
        snapshots.append(model.weight.detach().clone())
        return {"val_score": scores[len(snapshots) - 1]} if scores else {}

    run = Training(model, torch.optim.SGD(model.parameters(), lr=0.1), len(scores or [0, 0, 0]),
                   batches=lambda epoch: [(x[:5], y[:5]), (x[5:], y[5:])],
                   losses=lambda b: {"loss": torch.nn.functional.mse_loss(model(b[0]), b[1])},
                   evaluate=evaluate, progress=False, **kw)
    return run, snapshots


def test_selection_keeps_the_best_epoch_and_marks_its_row():
    run, snapshots = toy_run([0.2, 0.9, 0.4], select="val_score")
    history = train_epochs(run)
    assert [r.get("best", False) for r in history] == [True, True, False]
    assert torch.equal(run.model.weight, snapshots[1]) and not torch.equal(snapshots[1], snapshots[2])


def test_without_selection_the_last_epoch_stays():
    run, snapshots = toy_run([0.2, 0.9, 0.4])
    history = train_epochs(run)
    assert torch.equal(run.model.weight, snapshots[2]) and not any("best" in r for r in history)


def test_a_missing_selection_key_keeps_the_last_epoch():
    run, snapshots = toy_run(select="val_f1_rel")  # no selection split: nothing reports the key
    history = train_epochs(run)
    assert all(r["best"] for r in history) and torch.equal(run.model.weight, snapshots[-1])


def test_the_row_holds_the_weighted_mean_of_each_term():
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    batches = [torch.zeros(2, 1), torch.zeros(6, 1)]
    seen = iter([1.0, 3.0])  # the loss of the first and of the second batch

    def losses(b):
        value = next(seen)
        return {"loss": model(b).sum() * 0 + value, "other": torch.tensor(2 * value)}

    run = Training(model, torch.optim.SGD(model.parameters(), lr=0.0), 1, batches=lambda e: batches, losses=losses,
                   weight=len, row={"modality": "rgb"}, progress=False)
    (row,) = train_epochs(run)
    assert list(row)[:2] == ["modality", "epoch"] and row["modality"] == "rgb"
    assert row["loss"] == pytest.approx((2 * 1.0 + 6 * 3.0) / 8) and row["other"] == pytest.approx(2 * 2.5)
    assert row["seconds"] >= 0


def test_hooks_schedule_and_clipping_follow_the_epochs():
    run, _ = toy_run([0.1, 0.2, 0.3])
    run.scheduler = torch.optim.lr_scheduler.StepLR(run.optimizer, step_size=1, gamma=0.5)
    seen = []
    run.before_epoch = seen.append
    run.clip = 1e-6  # every step then moves the weights by at most lr * 1e-6
    before = run.model.weight.detach().clone()
    train_epochs(run)
    assert seen == [1, 2, 3] and run.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 3)
    assert (run.model.weight - before).abs().max() < 1e-5


def test_into_a_log_file_one_line_per_epoch(monkeypatch):
    err = io.StringIO()  # not a terminal, as a cluster job's log
    monkeypatch.setattr("sys.stderr", err)
    run, _ = toy_run([0.25, 0.5, 0.75], select="val_score", show=("val_score",), desc="toy")
    run.progress = True
    train_epochs(run)
    lines = err.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in err.getvalue()
    assert lines[-1].startswith("toy: 3/3 epochs (100%)") and "val_score=0.75" in lines[-1] and "loss=" in lines[-1]


def test_to_device_leaves_host_objects_alone():
    batch = {"x": torch.ones(2), "keys": ["a"], "rows": [torch.zeros(1)]}
    assert to_device(batch, "cpu") is batch
    if torch.cuda.is_available():
        moved = to_device(batch, "cuda")
        assert moved["x"].is_cuda and moved["keys"] == ["a"] and not moved["rows"][0].is_cuda


def test_no_other_training_loop_in_the_library():
    """Every gradient step of the library is the loop's: no other module calls backward() or zero_grad()."""
    steps = []
    for pkg in ("data", "extract", "parse", "tsn", "evaluate"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("backward", "zero_grad"):
                    steps.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert len(steps) == 2 and all(s.startswith("data/machinery/training.py") for s in steps), steps
