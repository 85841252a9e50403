"""The TAPOS paper's protocol: ``tapos-evaluate tapos``."""
from __future__ import annotations

import json

import click

from tapos.data.annotations import SPLITS, load_annotations
from tapos.data.errors import TaposError
from tapos.data.io import atomic_write_text
from tapos.data.machinery.cli_utils import echo_table

from .protocols import evaluate_tapos, evaluate_tapos_by_class
from .registry import GroundTruth, Protocol, register_protocol


@register_protocol
class TaposProtocol(Protocol):
    name = "tapos"
    title = "TAPOS"
    relative_unit = "rel. distance"
    summary = ("The TAPOS paper: GT tapos_annotation.json, predictions {key: [frame, ...]}, relative 0.05..0.5 of "
               "the length and absolute 5..50 frames.")
    help = """TAPOS protocol: GT (tapos_annotation.json) against PRED ({key: [frame, ...]}).

    Frames are relative to the instance start, in annotation frames. Under the scores, the
    reference lines (content-free boundaries, tapos.evaluate.reference): the prior (the train
    split's median count, equally spaced), prior-best (the count best on train), prior-length (the
    count expected for the instance's duration, fitted on train) and oracle-count (each instance's
    true count: reads the evaluated split), with the method's margin over the three train-only
    lines.

    Example: tapos-evaluate tapos tapos_annotation.json pred.json --split val --plot f1.png
    """
    options = (
        click.option("--split", type=click.Choice(SPLITS), default="val", show_default=True),
        click.option("--by-class", is_flag=True,
                     help="Also score each action class: a table, PLOT_by_class.png with --plot and "
                          "JSON_by_class.json with --json."),
    )

    def load(self, path, split: str = "val", **options) -> GroundTruth:
        ann = load_annotations(path)
        instances = ann.split(split)
        if len(instances) == 0:
            raise TaposError(f"{path}: split {split!r} has no instances")
        return GroundTruth(instances, ann, instances)

    def score(self, truth, predictions, **options):
        return evaluate_tapos(truth, predictions)

    def report_more(self, truth, predictions, json_out, plot, by_class: bool = False, **options) -> None:
        if not by_class:
            return
        from .report import class_table, plot_by_class

        per_class = evaluate_tapos_by_class(truth.scored, predictions)
        click.echo("== per class (average over thresholds)")
        echo_table(class_table(per_class))
        if json_out:
            path = json_out.with_name(f"{json_out.stem}_by_class.json")
            atomic_write_text(path, json.dumps({str(a): r.to_json() for a, r in per_class.items()}, indent=1))
            click.echo(f"wrote {path}")
        if plot:
            click.echo(f"wrote {plot_by_class(per_class, plot.with_name(f'{plot.stem}_by_class.png'))}")
