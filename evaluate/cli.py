"""``tapos-evaluate``: score boundary predictions with the GEBD or the TAPOS protocol."""
from __future__ import annotations

import json
from pathlib import Path

import click

from tapos.data.annotations import SPLITS, load_annotations
from tapos.data.cli_utils import TaposGroup, echo_table
from tapos.data.gebd import load_gebd
from tapos.data.io import atomic_write_text
from tapos.data.predictions import load_predictions
from tapos.data.version import __version__

from .protocols import (MIN_CONSISTENCY, evaluate_gebd, evaluate_tapos, evaluate_tapos_by_class, human_agreement,
                        human_rounds)
from .report import class_table, plot_by_class, plot_result, result_tables


@click.group(cls=TaposGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tapos-evaluate")
def main():
    """Boundary precision, recall and F1 of sub-action predictions.

    \b
    Protocols:
      gebd   GEBD challenge (every TAPOS result since 2021): GT in Kinetics-GEBD layout,
             predictions {key: [seconds, ...]}, relative thresholds 0.05..0.5 of the duration
      tapos  the TAPOS paper: GT tapos_annotation.json, predictions {key: [frame, ...]},
             relative 0.05..0.5 of the length and absolute 5..50 frames
      human  agreement of each annotator with the others (GEBD layout, several annotators)
    \b
    Examples:
      tapos-evaluate gebd val.pkl pred_seconds.json --json scores.json --plot scores.png
      tapos-evaluate tapos tapos_annotation.json pred_frames.json --split val --by-class
    """


def _warn(counts: dict) -> None:
    if counts.get("dropped_out_of_range"):
        click.echo(f"warning: {counts['dropped_out_of_range']} predicted boundaries outside [0, length] "
                   "dropped (protocol rule)", err=True)
    if counts.get("unknown_prediction_keys"):
        click.echo(f"warning: {counts['unknown_prediction_keys']} prediction keys are not in the ground truth "
                   "and were ignored", err=True)
    if counts.get("missing_predictions"):
        click.echo(f"warning: {counts['missing_predictions']} of {counts['videos']} ground-truth videos have no "
                   "prediction (their boundaries count as missed)", err=True)
    if counts.get("skipped_low_consistency"):
        click.echo(f"note: {counts['skipped_low_consistency']} videos skipped by the annotator-consistency filter",
                   err=True)


def _report(result, json_out, plot, title) -> None:
    for name, table in result_tables(result).items():
        click.echo(f"== {title}: {name} thresholds ({result.counts['videos']} videos)")
        echo_table(table)
    _warn(result.counts)
    if json_out:
        atomic_write_text(json_out, json.dumps(result.to_json(), indent=1))
        click.echo(f"wrote {json_out}")
    if plot:
        click.echo(f"wrote {plot_result(result, plot, title)}")


_json_opt = click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help="Write the scores as JSON (documented shape, see README).")
_plot_opt = click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help="Write precision/recall/F1 against the threshold as a PNG (paper Figure 7).")


@main.command()
@click.argument("gt", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("pred", type=click.Path(dir_okay=False, path_type=Path))
@_json_opt
@_plot_opt
@click.option("--min-consistency", type=float, default=MIN_CONSISTENCY, show_default=True,
              help="Skip videos whose f1_consis_avg is below this (the challenge uses 0.3).")
def gebd(gt, pred, json_out, plot, min_consistency):
    """GEBD protocol: GT (Kinetics-GEBD .json/.pkl) against PRED ({key: [seconds, ...]}).

    Example: tapos-evaluate gebd val.pkl pred.json --json scores.json
    """
    result = evaluate_gebd(load_gebd(gt), load_predictions(pred), min_consistency=min_consistency)
    _report(result, json_out, plot, "GEBD")


@main.command()
@click.argument("annotations", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("pred", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(SPLITS), default="val", show_default=True)
@_json_opt
@_plot_opt
@click.option("--by-class", is_flag=True,
              help="Also score each action class: a table, PLOT_by_class.png with --plot and "
                   "JSON_by_class.json with --json.")
def tapos(annotations, pred, split, json_out, plot, by_class):
    """TAPOS protocol: tapos_annotation.json against PRED ({key: [frame, ...]}).

    Frames are relative to the instance start, in annotation frames.

    Example: tapos-evaluate tapos tapos_annotation.json pred.json --split val --plot f1.png
    """
    instances = load_annotations(annotations).split(split)
    if len(instances) == 0:
        raise click.ClickException(f"{annotations}: split {split!r} has no instances")
    preds = load_predictions(pred)
    result = evaluate_tapos(instances, preds)
    _report(result, json_out, plot, "TAPOS")
    if by_class:
        per_class = evaluate_tapos_by_class(instances, preds)
        click.echo("== per class (average over thresholds)")
        echo_table(class_table(per_class))
        if json_out:
            path = json_out.with_name(f"{json_out.stem}_by_class.json")
            atomic_write_text(path, json.dumps({str(a): r.to_json() for a, r in per_class.items()}, indent=1))
            click.echo(f"wrote {path}")
        if plot:
            click.echo(f"wrote {plot_by_class(per_class, plot.with_name(f'{plot.stem}_by_class.png'))}")


@main.command()
@click.argument("gt", type=click.Path(dir_okay=False, path_type=Path))
@_json_opt
@click.option("--against", type=click.Choice(["first", "others"]), default="first", show_default=True,
              help="first: rounds 2, 3, ... scored against round 1 with the TAPOS protocol (the paper's human "
                   "rows); others: each annotator against the best of the others (GEBD protocol).")
@click.option("--min-consistency", type=float, default=MIN_CONSISTENCY, show_default=True,
              help="With --against others: videos whose annotators agree less are skipped (GEBD).")
def human(gt, json_out, against, min_consistency):
    """Agreement between annotators, as human performance.

    GT is a Kinetics-GEBD layout file with several annotators per video (annotator 0 is the first
    round). Prints one row per round or annotator (average F1 over the relative thresholds, and
    over the absolute ones when the file has frame rates) and the mean.

    Example: tapos-evaluate human gebd_annotators.json --json human.json
    """
    videos = load_gebd(gt)
    if against == "first":
        results, name = human_rounds(videos), "round {}"
        title = "== human agreement (each later round against round 1, TAPOS protocol)"
    else:
        results, name = human_agreement(videos, min_consistency=min_consistency), "annotator {}"
        title = "== human agreement (each annotator against the others, GEBD protocol)"
    results = {i: r for i, r in results.items() if r.counts["videos"]}
    if not results:
        raise click.ClickException(f"{gt}: no video has two or more annotators")
    import pandas as pd

    rows = []
    for i, res in results.items():
        prec, rec, f1 = res.relative.prf
        row = {"": name.format(i + 1 if against == "first" else i), "videos": res.counts["videos"],
               "avg precision": prec.mean(), "avg recall": rec.mean(), "avg F1": f1.mean(), "F1@0.05": f1[0]}
        if res.absolute is not None:
            row["avg F1 (abs)"] = res.absolute.prf[2].mean()
        rows.append(row)
    df = pd.DataFrame(rows).set_index("")
    df.index.name = None
    df.loc["mean"] = df.mean(numeric_only=True)
    click.echo(title)
    echo_table(df)
    if json_out:
        atomic_write_text(json_out, json.dumps({str(i): r.to_json() for i, r in results.items()}, indent=1))
        click.echo(f"wrote {json_out}")


if __name__ == "__main__":  # pragma: no cover
    main()
