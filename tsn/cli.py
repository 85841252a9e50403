"""``tapos-tsn``: a Temporal Segment Network whose segments follow sub-actions."""
from __future__ import annotations

import json
from pathlib import Path

import click

from tapos.data.machinery.cli_utils import DefaultCommandGroup, echo_table, parse_overrides
from tapos.data.errors import TaposError
from tapos.data.io import atomic_write_text
from tapos.data.version import __version__

from tapos.extract import FLOW_METHODS

from .schemes import SAMPLINGS
from .run import DEFAULTS, TsnConfig


@click.group(cls=DefaultCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tapos-tsn")
def main():
    """Action classification with a TSN whose snippets follow the sub-actions (paper Tables 1, 4).

    \b
      tapos-tsn --features F --annotations A --sampling uniform|aligned|parsed ... --out DIR
      tapos-tsn table DIR [DIR ...]        one comparison table from several runs
    \b
    Example:
      tapos-parse predict --model runs/tp --features feats.h5 --annotations ann.json --split all --out tp.json
      tapos-tsn --features feats.h5 --annotations ann.json --sampling parsed --boundaries tp.json --out runs/tsn_tp
    """


@main.command()
@click.option("--features", type=click.Path(dir_okay=False, path_type=Path),
              help="With --input features: the feature cache (HDF5, schema tapos-features/1).")
@click.option("--videos", type=click.Path(file_okay=False, path_type=Path),
              help="With --input frames: instance clips (<key>.mp4) or source videos (<youtube_id>.mp4).")
@click.option("--annotations", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="tapos_annotation.json or a Kinetics-GEBD-layout .json/.pkl with class labels: trains on "
                   "`train`, evaluates on `val`.")
@click.option("--boundaries", type=click.Path(dir_okay=False, path_type=Path),
              help="With a sampling of predicted sub-actions (" + ", ".join(s.name for s in SAMPLINGS.values()
                                                                        if s.predicted)
                   + "): tapos-parse predict output covering train and val (--split all).")
@TsnConfig.click_options()
@click.option("--segments", type=click.IntRange(1), default=DEFAULTS["segments"], show_default=True,
              help="Snippets per instance.")
@click.option("--epochs", type=click.IntRange(1), default=None, help=f"Default {DEFAULTS['epochs']}.")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override a default (value as JSON): " + ", ".join(DEFAULTS) + "; with --input frames "
                   "also lr_steps, momentum, clip_grad, partial_bn, weights (imagenet|random|PATH), flow ("
                   + ", ".join(sorted(FLOW_METHODS)) + "), flow_options (tvl1-torch's parameters, a JSON object), "
                   "workers.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Model directory: config.json, model.pt, log.csv, results.{json,csv,md}, confusion.png.")
@click.option("--eval-only", is_flag=True, help="Re-evaluate the model in --model on --split instead of training.")
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path), help="With --eval-only.")
def run(features, videos, annotations, boundaries, segments, epochs, overrides, out_dir, eval_only, model_dir,
        **options):
    """Train on the train subset with one sampling scheme and evaluate on val (or --split test).

    Reports top-1 accuracy and mean class accuracy ("Avg. Acc.") per modality and for their
    late fusion, in the layout of the paper's Tables 1 and 4. The numbers are the last epoch's.
    """
    from .finetune import FRAME_DEFAULTS
    from .metrics import scores_table
    from .run import evaluate, train

    config = TsnConfig.of(options)
    input_kind, sampling, label = config.input, config.sampling, config.label
    if eval_only:
        if model_dir is None:
            raise click.UsageError("--eval-only needs --model DIR")
        results = evaluate(model_dir, features, annotations, boundaries, out_dir, videos, config.split)
        label = label or json.loads((Path(model_dir) / "config.json").read_text()).get("label", "model")
    else:
        if out_dir is None:
            raise click.UsageError("--out DIR is required for training")
        if input_kind == "features" and features is None:
            raise click.UsageError("--input features needs --features CACHE.h5")
        if input_kind == "frames" and videos is None:
            raise click.UsageError("--input frames needs --videos DIR")
        scheme = SAMPLINGS[sampling]
        if scheme.predicted and boundaries is None:
            raise click.UsageError(f"--sampling {sampling} needs --boundaries PRED.json")
        extra = parse_overrides(overrides, FRAME_DEFAULTS if input_kind == "frames" else DEFAULTS)
        extra["segments"] = segments
        if epochs:
            extra["epochs"] = epochs
        label = label or scheme.label(boundaries)
        results = train(features, annotations, out_dir=out_dir, boundaries=boundaries, videos=videos,
                        **TsnConfig.of(config, overrides=extra, label=label).as_dict())
        if results is None:  # a torchrun rank other than 0
            return
    echo_table(scores_table({label: results}), "{:.2f}")


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also save as .md or .csv.")
def table(runs, out):
    """One table (Tables 1/4 layout) from the results.json of several tapos-tsn runs."""
    from .metrics import scores_table

    rows = {}
    for run_dir in runs:
        path = run_dir / "results.json"
        if not path.is_file():
            raise TaposError(f"{path}: no such file (is {run_dir} a tapos-tsn output?)")
        doc = json.loads(path.read_text())
        rows[doc["config"]["label"]] = doc["results"]
    df = scores_table(rows)
    echo_table(df, "{:.2f}")
    if out:
        text = df.to_csv() if out.suffix == ".csv" else df.to_markdown(floatfmt=".2f") + "\n"
        atomic_write_text(out, text)
