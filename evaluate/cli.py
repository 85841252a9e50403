"""``tapos-evaluate``: score boundary predictions with a registered protocol (GEBD, TAPOS, ...)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from tapos.data.annotations import load_annotations
from tapos.data.machinery.cli_utils import TaposGroup, echo_table
from tapos.data.gebd import load_gebd
from tapos.data.io import atomic_write_text
from tapos.data.predictions import load_predictions
from tapos.data.version import __version__

from .protocols import MIN_CONSISTENCY, human_agreement, human_rounds
from .reference import headline, margins, reference_lines
from .registry import PROTOCOLS
from .report import plot_result, reference_table, result_tables


class ProtocolGroup(TaposGroup):
    """tapos-evaluate's commands: its own (human) and one per registered protocol, looked up at
    each call (a protocol registered after this module was imported is a command too)."""

    def list_commands(self, ctx):
        return sorted({*self.commands, *PROTOCOLS})

    def get_command(self, ctx, name):
        if name in PROTOCOLS and name not in self.commands:
            return protocol_command(PROTOCOLS[name])
        return super().get_command(ctx, name)


@click.group(cls=ProtocolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tapos-evaluate")
def main():
    """Boundary precision, recall and F1 of sub-action predictions, in each protocol (the
    commands below; human: agreement of each annotator with the others).

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


def _reference_for(protocol, gt, truth, prior_from, options):
    """The ``reference`` argument of ``_report``: ``(lines, source)``."""
    evaluated = truth.annotations if truth.annotations is not None else load_annotations(gt)
    instances = truth.instances if truth.instances is not None else evaluated
    train, source = _prior_source(evaluated, prior_from)
    overlap = sum(1 for i in train or () if i.key in instances)
    if overlap:
        click.echo(f"warning: the prior reads {overlap} of the evaluated instances ({source})", err=True)
    return reference_lines(protocol, instances.values(), train, truth.scored, **options), source


_json_opt = click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help="Write the scores as JSON (documented shape: docs/formats.md).")
_plot_opt = click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help="Write precision/recall/F1 against the threshold as a PNG (paper Figure 7).")
_reference_opts = (
    click.option("--prior-from", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Annotation file (either layout) whose train split (or, naming none, every "
                      "instance) the prior lines read; default: the evaluated file's train split."),
    click.option("--no-reference", is_flag=True,
                 help="Do not score the reference lines (prior, prior-best, prior-length, oracle-count) under "
                      "the table."),
)


def protocol_command(protocol) -> click.Command:
    """``tapos-evaluate NAME GT PRED``: the same steps for every protocol (its own options are
    passed to its methods by name)."""

    def run(gt, pred, json_out, plot, prior_from, no_reference, **options):
        truth = protocol.load(gt, **options)
        predictions = load_predictions(pred)
        result = protocol.score(truth.scored, predictions, **options)
        reference = None if no_reference else _reference_for(protocol, gt, truth, prior_from, options)
        _report(result, json_out, plot, protocol.title, reference)
        protocol.report_more(truth, predictions, json_out, plot, **options)

    params = [click.argument("gt", type=click.Path(dir_okay=False, path_type=Path)),
              click.argument("pred", type=click.Path(dir_okay=False, path_type=Path)),
              _json_opt, _plot_opt, *protocol.options, *_reference_opts]
    for param in reversed(params):
        run = param(run)
    return click.command(protocol.name, help=protocol.help or protocol.summary, short_help=protocol.summary)(run)


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
