"""The GEBD challenge protocol (every TAPOS result since 2021): ``tapos-evaluate gebd``."""
from __future__ import annotations

import click

from tapos.data.gebd import MIN_CONSISTENCY, load_gebd

from .protocols import evaluate_gebd
from .registry import GroundTruth, Protocol, register_protocol


@register_protocol
class GebdProtocol(Protocol):
    name = "gebd"
    title = "GEBD"
    seconds = True
    summary = ("GEBD challenge (every TAPOS result since 2021): GT in Kinetics-GEBD layout, predictions "
               "{key: [seconds, ...]}, relative thresholds 0.05..0.5 of the duration.")
    help = """GEBD protocol: GT (Kinetics-GEBD .json/.pkl) against PRED ({key: [seconds, ...]}).

    Under the scores, the reference lines (content-free boundaries, tapos.evaluate.reference):
    the prior (train median count, equally spaced), prior-best (the count best on train),
    prior-length (the count expected for the video's duration, fitted on train) and oracle-count
    (each video's true count: reads the evaluated file), with the method's margin over the three
    train-only lines. A val file has no train split: pass --prior-from.

    Example: tapos-evaluate gebd val.pkl pred.json --prior-from train.pkl --json scores.json
    """
    options = (click.option("--min-consistency", type=float, default=MIN_CONSISTENCY, show_default=True,
                            help="Skip videos whose f1_consis_avg is below this (the challenge uses 0.3)."),)

    def load(self, path, **options) -> GroundTruth:
        return GroundTruth(load_gebd(path))

    def score(self, truth, predictions, min_consistency: float = MIN_CONSISTENCY, **options):
        return evaluate_gebd(truth, predictions, min_consistency=min_consistency)
