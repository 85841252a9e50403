"""``tapos-evaluate``: score boundary predictions with the GEBD or the TAPOS protocol."""
from __future__ import annotations

import json
from pathlib import Path

import click

from tapos.data.annotations import SPLITS, load_annotations
from tapos.data.machinery.cli_utils import TaposGroup, echo_table
from tapos.data.gebd import load_gebd
from tapos.data.io import atomic_write_text
from tapos.data.predictions import load_predictions
from tapos.data.version import __version__

from .protocols import (MIN_CONSISTENCY, evaluate_gebd, evaluate_tapos, evaluate_tapos_by_class, human_agreement,
                        human_rounds)
from .reference import headline, margins, reference_lines
from .report import class_table, plot_by_class, plot_result, reference_table, result_tables


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


def _report(result, json_out, plot, title, reference=None) -> None:
    for name, table in result_tables(result).items():
        click.echo(f"== {title}: {name} thresholds ({result.counts['videos']} videos)")
        echo_table(table)
    _warn(result.counts)
    out = result.to_json()
    if reference is not None:
        out.update(_echo_reference(result, title, *reference))
    if json_out:
        atomic_write_text(json_out, json.dumps(out, indent=1))
        click.echo(f"wrote {json_out}")
    if plot:
        click.echo(f"wrote {plot_result(result, plot, title)}")


def _prior_source(evaluated, prior_from):
    """``(training instances, where they come from)`` for the prior lines: the evaluated file's
    train split, or ``--prior-from``'s (all of it when it names no split); ``(None, why not)``."""
    if prior_from is not None:
        ann = load_annotations(prior_from)
        train = [i for i in ann.values() if i.subset == "train"]
        return (train, f"{prior_from}, train split") if train else (list(ann.values()), f"{prior_from}, every instance")
    train = [i for i in evaluated.values() if i.subset == "train"]  # not "all": a GEBD file naming no split
    if train:
        return train, f"{evaluated.path}, train split"
    return None, f"{evaluated.path} has no train split (pass --prior-from TRAIN_FILE for the prior lines)"


def _echo_reference(result, title, lines, source) -> dict:
    """Print the reference lines and the method's margins; return them for --json."""
    what = f"the prior reads {source}" if any(ln.prior for ln in lines) else f"no prior lines: {source}"
    click.echo(f"== reference lines ({title} protocol): content-free boundaries; {what}")
    margin = margins(result, lines)
    echo_table(reference_table(headline(result), {ln.name: headline(ln.result) for ln in lines}, margin))
    for ln in lines:
        click.echo(f"  {ln.label}")
    return {"reference": {ln.name: ln.to_json() for ln in lines}, "prior_source": source,
            "margin": {f"over_{name}": m for name, m in margin.items()}}


def _reference_for(protocol, evaluated, instances, prior_from, **kw):
    """The ``reference`` argument of ``_report``: ``(lines, source)``."""
    train, source = _prior_source(evaluated, prior_from)
    overlap = sum(1 for i in train or () if i.key in instances)
    if overlap:
        click.echo(f"warning: the prior reads {overlap} of the evaluated instances ({source})", err=True)
    return reference_lines(protocol, instances.values(), train, **kw), source


_json_opt = click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help="Write the scores as JSON (documented shape: docs/formats.md).")
_plot_opt = click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help="Write precision/recall/F1 against the threshold as a PNG (paper Figure 7).")


def _reference_opts(f):
    f = click.option("--no-reference", is_flag=True,
                     help="Do not score the reference lines (prior, prior-best, prior-length, oracle-count) under "
                          "the table.")(f)
    return click.option("--prior-from", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Annotation file (either layout) whose train split (or, naming none, every "
                             "instance) the prior lines read; default: the evaluated file's train split.")(f)


@main.command()
@click.argument("gt", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("pred", type=click.Path(dir_okay=False, path_type=Path))
@_json_opt
@_plot_opt
@click.option("--min-consistency", type=float, default=MIN_CONSISTENCY, show_default=True,
              help="Skip videos whose f1_consis_avg is below this (the challenge uses 0.3).")
@_reference_opts
def gebd(gt, pred, json_out, plot, min_consistency, prior_from, no_reference):
    """GEBD protocol: GT (Kinetics-GEBD .json/.pkl) against PRED ({key: [seconds, ...]}).

    Under the scores, the reference lines (content-free boundaries, tapos.evaluate.reference):
    the prior (train median count, equally spaced), prior-best (the count best on train),
    prior-length (the count expected for the video's duration, fitted on train) and oracle-count
    (each video's true count: reads the evaluated file), with the method's margin over the three
    train-only lines. A val file has no train split: pass --prior-from.

    Example: tapos-evaluate gebd val.pkl pred.json --prior-from train.pkl --json scores.json
    """
    videos = load_gebd(gt)
    result = evaluate_gebd(videos, load_predictions(pred), min_consistency=min_consistency)
    reference = None
    if not no_reference:
        evaluated = load_annotations(gt)
        reference = _reference_for("gebd", evaluated, evaluated, prior_from, gebd=videos,
                                   min_consistency=min_consistency)
    _report(result, json_out, plot, "GEBD", reference)


@main.command()
@click.argument("annotations", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("pred", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(SPLITS), default="val", show_default=True)
@_json_opt
@_plot_opt
@click.option("--by-class", is_flag=True,
              help="Also score each action class: a table, PLOT_by_class.png with --plot and "
                   "JSON_by_class.json with --json.")
@_reference_opts
def tapos(annotations, pred, split, json_out, plot, by_class, prior_from, no_reference):
    """TAPOS protocol: tapos_annotation.json against PRED ({key: [frame, ...]}).

    Frames are relative to the instance start, in annotation frames. Under the scores, the
    reference lines (content-free boundaries, tapos.evaluate.reference): the prior (the train
    split's median count, equally spaced), prior-best (the count best on train), prior-length (the
    count expected for the instance's duration, fitted on train) and oracle-count (each instance's
    true count: reads the evaluated split), with the method's margin over the three train-only
    lines.

    Example: tapos-evaluate tapos tapos_annotation.json pred.json --split val --plot f1.png
    """
    ann = load_annotations(annotations)
    instances = ann.split(split)
    if len(instances) == 0:
        raise click.ClickException(f"{annotations}: split {split!r} has no instances")
    preds = load_predictions(pred)
    result = evaluate_tapos(instances, preds)
    reference = None if no_reference else _reference_for("tapos", ann, instances, prior_from)
    _report(result, json_out, plot, "TAPOS", reference)
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
