"""``tapos-parse``: train parsers on cached features and predict sub-action boundaries."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tapos.data.annotations import SPLITS
from tapos.data.machinery.cli_utils import RegistryChoice, TaposGroup, echo_table, parse_overrides
from tapos.data.predictions import save_predictions
from tapos.data.version import __version__

from tapos.extract import FLOW_METHODS

from .analyze import DEFAULTS as ANALYSIS
from .analyze import methods_with_patterns
from .registry import PARSERS
from .run import RUN_DEFAULTS, TrainConfig, default_select_on


@click.group(cls=TaposGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tapos-parse")
def main():
    """Temporal action parsing on cached features: TransParser and its baselines.

    \b
    Methods: see tapos-parse methods (each with its options and defaults).
    \b
    Example:
      tapos-parse train --method transparser --features feats.h5 --annotations tapos_annotation.json --out runs/tp
      tapos-parse predict --model runs/tp --features feats.h5 --annotations tapos_annotation.json --out pred.json
      tapos-evaluate tapos tapos_annotation.json pred.json
      tapos-parse analyze --model runs/tp --features feats.h5 --annotations tapos_annotation.json --out report/
      tapos-parse video my_clip.mp4 --model runs/tp --out my_clip/
    """


@main.command()
@click.option("--method", type=RegistryChoice(PARSERS), required=True)
@click.option("--features", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Feature cache (HDF5, schema tapos-features/1).")
@click.option("--annotations", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="tapos_annotation.json or a Kinetics-GEBD-layout .json/.pkl: trains on `train` (minus the dev "
                   "split, see --select-on).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Model directory: config.json, model.pt, log.csv, training.png.")
@TrainConfig.click_options()
@click.option("--preset", default=None, help="A named set of option values, e.g. paper: the method as its paper "
              "describes it (tapos-parse methods lists them). Options given with --set still win.")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override a method default (value as JSON), e.g. --set min_segment=3.")
def train(method, features, annotations, out_dir, preset, overrides, **options):
    """Train METHOD on the train subset; choose the epoch and 'auto' options on the dev split.

    After every epoch the selection split is scored with both protocols: the paper's (F1 averaged
    over the relative and the absolute thresholds) and GEBD's (F1 at 0.05 and averaged over
    0.05..0.5); the paper's relative average chooses. Example:

      tapos-parse train --method transparser --features feats.h5 --annotations ann.json --out runs/tp
    """
    from .run import train as run_train

    method_options = parse_overrides(overrides, {**PARSERS[method].DEFAULTS, "preset": None})
    if preset is not None:
        method_options.setdefault("preset", preset)
    config = TrainConfig.of(options, overrides=method_options)
    select_on = config.select_on or default_select_on(method)
    _, history = run_train(method, features, annotations, out_dir, config)
    import pandas as pd

    df = pd.DataFrame(history)
    # an ensemble's log repeats epochs (one run per member, then the ensemble's row): index by row
    index = ["member", "epoch"] if "member" in df else ["epoch"]
    cols = [c for c in df.columns if c in ("loss", "val_f1_rel", "val_f1_abs", "val_gebd_f1_05", "val_prec_rel",
                                           "val_rec_rel")]
    if cols:  # a method without losses and without a selection split has nothing per epoch to show
        shown = df.set_index(index)[cols]
        echo_table(shown.rename(columns=lambda c: c.replace("val_", f"{select_on}_")))
    if "val_f1_rel" in df:
        pos = df.index[df["best"] == True][-1] if "best" in df else df["val_f1_rel"].idxmax()  # noqa: E712
        row = df.loc[pos]
        # an ensemble's best row is always its own (the members' rows come before it)
        label = "ensemble" if row.get("member") == "ensemble" else f"best epoch {row['epoch']}"
        click.echo(f"{label}: {select_on} {_scores(row)}")
        tuned = {c[6:]: row[c] for c in df.columns if c.startswith("tuned_") and "val_" not in c and pd.notna(row[c])}
        if tuned:
            chosen = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in tuned.items())
            pre = "tuned_" if pd.notna(row.get("tuned_val_f1_rel")) else ""
            click.echo(f"chosen on {select_on}: {chosen}: {select_on} {_scores(row, pre)}")
    else:
        click.echo(f"no selection split (--select-on {select_on}): the last epoch and the first candidate of "
                   "every 'auto' option are kept")
    click.echo(f"wrote {out_dir}/model.pt, config.json, log.csv, training.png")


def _scores(row, pre: str = "") -> str:
    """One line of a log row's scores in both protocols."""
    return (f"avg F1 {row[pre + 'val_f1_rel']:.4f} (rel), {row[pre + 'val_f1_abs']:.4f} (abs); "
            f"GEBD F1@0.05 {row[pre + 'val_gebd_f1_05']:.4f}, avg {row[pre + 'val_gebd_avg']:.4f}")


@main.command()
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True,
              help="A directory written by tapos-parse train.")
@click.option("--features", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--annotations", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Predict the instances of --split, in annotation frames. Without: every cached instance.")
@click.option("--split", type=click.Choice(SPLITS), default=RUN_DEFAULTS["split"], show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Prediction file {key: [boundary, ...]} for tapos-evaluate.")
@click.option("--format", "fmt", type=click.Choice(["frames", "seconds", "gebd"]), default="frames",
              show_default=True, help="frames: annotation frames (TAPOS protocol); seconds: seconds from the "
              "instance start; gebd: the GEBD challenge submission {video_id: [seconds, ...]} (pickle for a .pkl "
              "OUT, else JSON), read by tapos-evaluate gebd.")
@click.option("--seconds", is_flag=True, help="Same as --format seconds.")
def predict(model_dir, features, annotations, split, out, fmt, seconds):
    """Predict sub-action boundaries with a trained model.

    Frames are relative to the instance start in annotation frames (with --annotations, TAPOS or
    GEBD layout) or frames of the cached clip (without); --format seconds or gebd gives seconds.
    Example:

      tapos-parse predict --model runs/tp --features feats.h5 --annotations ann.json --out pred.json
      tapos-parse predict --model runs/tp --features feats.h5 --annotations k400_val.pkl --format gebd --out sub.pkl
    """
    from .run import predict as run_predict

    in_seconds = seconds or fmt != "frames"
    preds = run_predict(model_dir, features, annotations, split, in_seconds)
    save_predictions(preds, out)
    n = sum(len(v) for v in preds.values())
    what = "GEBD submission, seconds" if fmt == "gebd" else "seconds" if in_seconds else "frames"
    click.echo(f"wrote {len(preds)} instances, {n} boundaries ({what}) to {out}")


@main.command()
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True,
              help="A directory written by tapos-parse train (a method with patterns: "
              f"{', '.join(methods_with_patterns())}).")
@click.option("--features", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--annotations", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Report directory: index.html, img/, CSV and JSON tables.")
@click.option("--split", type=click.Choice(SPLITS), default=ANALYSIS["split"], show_default=True)
@click.option("--videos", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Instance clips (<key>.mp4) or source videos (<youtube_id>.mp4): exemplar thumbnails.")
@click.option("--truth", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="synth_truth.json of a synthetic dataset: measure recovery of its planted shared sub-actions.")
@click.option("--top", type=click.IntRange(1), default=ANALYSIS["top"], show_default=True,
              help="Exemplar frames per pattern.")
@click.option("--min-share", type=click.FloatRange(0, 1), default=ANALYSIS["min_share"], show_default=True,
              help="A class uses a pattern when this share of its frames has it as argmax.")
def analyze(model_dir, features, annotations, out_dir, split, videos, truth, top, min_share):
    """Mine what the learned sub-action patterns say about the actions (paper 5.2, 6.4).

    Pattern usage per class, patterns shared across classes (inter-action), each class's typical
    sequence of patterns (intra-action), exemplar frames per pattern and the most discriminative
    sub-action per class, as a static HTML report with CSV/JSON tables. Example:

      tapos-parse analyze --model runs/tp --features feats.h5 --annotations ann.json --videos videos/ --out report/
    """
    from tapos.data.annotations import load_annotations

    from .analyze import analyze as run_analyze
    from .report import write_report

    ann = load_annotations(annotations)
    result = run_analyze(model_dir, features, ann, truth=truth, split=split, top=top, min_share=min_share)
    page = write_report(result, out_dir, ann, videos)
    click.echo(f"{result.frames} frames of {result.instances} {split} instances; "
               f"{result.patterns_used} of {result.patterns} patterns used, "
               f"{len(result.shared)} shared by two or more classes")
    if result.recovery:
        r = result.recovery
        click.echo(f"planted shared sub-actions recovered: {r['recovered']}/{r['planted']} "
                   f"({r['specific']} with a pattern of their own), NMI {r['nmi']:.3f}")
    click.echo(f"wrote {page}")


@main.command()
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True)
@click.option("--features", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--annotations", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--key", default=None, help="The instance's global key (<youtube_id>_<instance_id>). "
              "Default: the first val instance.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG file.")
@click.option("--videos", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Instance clips or source videos: a filmstrip at the predicted segment centres.")
def show(model_dir, features, annotations, key, out, videos):
    """Draw one instance as a timeline: annotated and predicted segments, the pattern of each
    frame and the response to each pattern. Example:

      tapos-parse show --model runs/tp --features feats.h5 --annotations ann.json --key KEY --out key.png
    """
    from .timeline import show_instance

    res = show_instance(model_dir, features, annotations, key, out, videos)
    fmt = lambda v: " ".join(f"{b:.2f}" for b in v) or "none"  # noqa: E731
    click.echo(f"instance {res['key']}")
    click.echo(f"annotated boundaries (s): {fmt(res['annotated'])}")
    click.echo(f"predicted boundaries (s): {fmt(res['predicted'])}")
    click.echo(f"wrote {out}")


@main.command()
@click.argument("clip", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True,
              help="A model trained on a tapos-extract cache (any method).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory: boundaries.json, timeline.png, features.h5.")
@click.option("--weights", default=None, help="imagenet, random or a .pth file. Default: those the model's "
              "training features were extracted with (recorded in its config.json).")
@click.option("--flow-weights", default=None, help="Flow network weights (default: as recorded).")
@click.option("--flow", type=RegistryChoice(FLOW_METHODS), default=None,
              help="Flow method (default: as recorded).")
@click.option("--stride", type=click.IntRange(1), default=None, help="Default: as recorded.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None, help="Default: as recorded.")
@click.option("--device", default=RUN_DEFAULTS["device"], show_default=True)
@click.option("--overwrite", is_flag=True, help="Re-extract the clip's features already in OUT (other settings).")
def video(clip, model_dir, out_dir, weights, flow_weights, flow, stride, fps, device, overwrite):
    """Parse a video of your own: extract its features, predict its sub-actions, draw them.

    Features are extracted like the cache the model was trained on. Example:

      tapos-parse video my_vault.mp4 --model runs/tp --out my_vault/
    """
    from .video import parse_video

    res = parse_video(clip, model_dir, out_dir, device=device, overwrite=overwrite, weights=weights,
                      flow_weights=flow_weights, flow=flow, stride=stride, fps=fps)
    import pandas as pd

    df = pd.DataFrame(res["segments"]).rename_axis("sub-action")
    df.index += 1
    echo_table(df[["start", "end", "start_frame", "end_frame"]], "{:.2f}")
    click.echo(f"{len(res['segments'])} sub-actions in {res['duration']:.2f} s ({res['method']} on {res['modality']}); "
               f"wrote {out_dir}/boundaries.json, {out_dir}/timeline.png")


@main.command()
def methods():
    """List the methods and their options with defaults."""
    for name in sorted(PARSERS):
        cls = PARSERS[name]
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().replace("\n", " ")
        doc = doc.split(": ")[0].split(". ")[0]
        more = "".join(f"; {what} with {key}=true" for key, what in cls.SUPERVISION_OPTIONS.items())
        click.echo(f"{name} (supervision: {cls.supervision}{more}): {doc}")
        for k, v in cls.DEFAULTS.items():
            click.echo(f"    {k} = {json.dumps(v)}")
        for preset, values in cls.PRESETS.items():
            click.echo(f"  --preset {preset}: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items()))


if __name__ == "__main__":  # pragma: no cover
    main()
