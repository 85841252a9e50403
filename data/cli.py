"""``tapos-data``: annotations, statistics, conversions and the synthetic dataset."""
from __future__ import annotations

from pathlib import Path

import click

from .annotations import SPLITS, SUBSETS, load_annotations, save_annotations
from .machinery.cli_utils import TaposGroup, echo_table, parse_overrides
from .machinery.fetch import FetchConfig, fetch_videos
from .errors import TaposError
from .synth import SynthConfig
from .version import __version__


@click.group(cls=TaposGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tapos-data")
def main():
    """TAPOS annotations, dataset statistics, format conversion and a synthetic dataset.

    \b
    Examples:
      tapos-data synth demo/ --features --videos      # offline TAPOS-like dataset
      tapos-data stats tapos_annotation.json --out stats/
      tapos-data validate tapos_annotation.json
      tapos-data convert tapos_annotation.json val.pkl --to gebd --split val
      tapos-data import-features vf_out/ feats.h5 --map resnet=rgb   # features made elsewhere
      tapos-data fetch-videos tapos_annotation.json youtube/   # the source videos (pip install 'tapos[fetch]')
      tapos-data check-videos tapos_annotation.json youtube/   # before extracting them
    """


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@SynthConfig.click_options()
def synth(out_dir, **options):
    """Write a synthetic TAPOS-like dataset to OUT_DIR.

    \b
    Outputs:
      OUT_DIR/tapos_annotation.json  annotations in the released TAPOS layout (train/val)
      OUT_DIR/gebd_annotators.json   the same boundaries in GEBD layout, 3 simulated annotators
      OUT_DIR/synth_truth.json       planted truth: class templates, prototype of each segment
      OUT_DIR/features.h5            with --features: schema tapos-features/1, one row per frame
      OUT_DIR/videos/<key>.mp4       with --videos: one small video per instance
      OUT_DIR/sources/<id>.mp4       with --sources: the source videos, instances at their times

    With --like, the instances are those of real annotation files (every one, or --max-instances
    per file): frame counts, fps, boundaries, splits, ids and classes are the file's, only the
    content is synthetic. A GEBD video whose file name names no split goes to train or val by
    val_fraction per YouTube id; classes absent from the file are drawn over --classes.

    \b
    Examples: tapos-data synth demo/ --features --videos
              tapos-data synth tsn/ --features --preset signature --seed 11
              tapos-data synth tapos_like/ --like ../shared/tapos_gt/tapos_gt_train.pkl --max-instances 1200 \\
                  --like ../shared/tapos_gt/tapos_gt_val.pkl --max-instances 300 --features
    """
    from .synth import DEFAULTS, write_dataset

    like, max_instances = options["like"], options["max_instances"]
    if like and options["n_instances"] is not None:
        raise TaposError("--instances cannot be used with --like (the instances are those of the --like files; "
                         "use --max-instances)")
    if like and options["sources"]:
        raise TaposError("--sources cannot be used with --like: the real shot layout (where each instance lies in "
                         "its source video) is not known for GEBD files")
    if max_instances and not like:
        raise TaposError("--max-instances needs --like")
    if len(max_instances) > 1 and len(max_instances) != len(like):
        raise TaposError(f"--max-instances given {len(max_instances)} times for {len(like)} --like files "
                         f"(give it once for every file, or once per --like, in the same order)")
    options.update(settings=parse_overrides(options["settings"], DEFAULTS), like=list(like) or None,
                   max_instances=list(max_instances) or None)
    paths = write_dataset(out_dir, config=SynthConfig.of(options))
    ann = load_annotations(paths["annotations"])
    click.echo(f"wrote {len(ann)} instances ({len(ann.split('train'))} train, {len(ann.split('val'))} val) to {out_dir}")
    for name, path in paths.items():
        click.echo(f"  {name}: {path}")


@main.command()
@click.argument("annotations", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Save the tables as CSV and the figures as PNG here.")
@click.option("--lenient", is_flag=True, help="Skip malformed instances (counted) instead of stopping.")
def stats(annotations, out_dir, lenient):
    """Dataset statistics of an annotation file (paper section 3.2, Figures 1 and 2).

    Prints the summary, the per-class table (instances per split, mean duration, mean number of
    sub-actions) and the distribution of boundary positions over normalized time. With --out,
    writes summary.csv, per_class.csv, boundary_positions.csv, instances.csv,
    subactions_per_class.png and boundary_positions.png.

    Example: tapos-data stats tapos_annotation.json --out stats/
    """
    from .stats import boundary_histogram, per_class_table, summary_table, write_stats

    ann = load_annotations(annotations, lenient=lenient)
    if len(ann) == 0:
        raise TaposError(f"{annotations}: no instances")
    click.echo("== summary")
    echo_table(summary_table(ann), "{:g}")
    click.echo("\n== per class")
    echo_table(per_class_table(ann), "{:.2f}")
    click.echo("\n== boundary positions (fraction of instance length)")
    echo_table(boundary_histogram(ann), "{:.3f}")
    if out_dir is not None:
        for path in write_stats(ann, out_dir):
            click.echo(f"wrote {path}")


@main.command()
@click.argument("annotations", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--lenient", is_flag=True, help="Report every malformed instance instead of stopping at the first.")
def validate(annotations, lenient):
    """Check an annotation file; exit status 1 when any instance is malformed.

    Example: tapos-data validate tapos_annotation.json --lenient
    """
    ann = load_annotations(annotations, lenient=lenient)
    for reason in ann.skipped:
        click.echo(f"bad: {reason}")
    counts = {s: len(ann.split(s)) for s in SUBSETS}
    click.echo(f"{annotations}: {len(ann)} valid instances "
               f"({', '.join(f'{n} {s}' for s, n in counts.items() if n)}), {len(ann.skipped)} malformed")
    if ann.skipped:
        raise SystemExit(1)


@main.command()
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", "target", type=click.Choice(["gebd", "tapos"]), required=True,
              help="gebd: TAPOS json -> Kinetics-GEBD layout (.json or .pkl by DST suffix); "
                   "tapos: GEBD layout -> TAPOS json.")
@click.option("--split", type=click.Choice(SPLITS), default="all", show_default=True,
              help="Only instances of this subset.")
@click.option("--lenient", is_flag=True, help="Skip malformed TAPOS instances instead of stopping.")
def convert(src, dst, target, split, lenient):
    """Convert between the TAPOS layout and the Kinetics-GEBD layout.

    TAPOS -> GEBD follows the GEBD authors' conversion (fps = total_frames / duration, boundaries
    in seconds, one annotator, f1_consis 1.0). GEBD -> TAPOS needs <youtube_id>_<instance_id> keys.

    \b
    Examples:
      tapos-data convert tapos_annotation.json val.pkl --to gebd --split val
      tapos-data convert val.pkl tapos_val.json --to tapos
    """
    from .gebd import gebd_to_tapos, load_gebd, save_gebd, tapos_to_gebd

    if target == "gebd":
        ann = load_annotations(src, lenient=lenient).split(split)
        save_gebd(tapos_to_gebd(ann.values()), dst)
        click.echo(f"wrote {len(ann)} instances to {dst} (GEBD layout)")
    else:
        videos = load_gebd(src)
        instances = gebd_to_tapos(videos.values(), subset="val" if split == "all" else split)
        if split != "all":
            instances = [i for i in instances if i.subset == split]
        save_annotations(instances, dst)
        click.echo(f"wrote {len(instances)} instances to {dst} (TAPOS layout)")


@main.command("uniform-boundaries")
@click.argument("annotations", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Prediction file to write ({key: [boundary, ...]}).")
@click.option("--split", type=click.Choice(SPLITS), default="val", show_default=True)
@click.option("--segments", type=click.IntRange(1), default=4, show_default=True,
              help="Every instance is cut into this many equal parts.")
@click.option("--seconds", is_flag=True, help="Boundaries in seconds (GEBD protocol) instead of frames.")
def uniform_boundaries(annotations, out, split, segments, seconds):
    """Evenly spaced boundaries for every instance: the chance-level reference a parser must beat.

    The prior parser with a fixed count (tapos-parse train --method prior --set count=K; see
    tapos.data.priors), without a model: boundary i of n-1 at i/n of the instance. Frames are
    relative to the instance start in annotation frames, fractional (TAPOS protocol); --seconds
    gives seconds from the instance start (GEBD protocol). tapos-evaluate prints the prior's lines
    under every score by itself.

    Example: tapos-data uniform-boundaries tapos_annotation.json --split val --out pred.json
    """
    from .predictions import save_predictions
    from .priors import BoundaryPrior, prior_predictions

    ann = load_annotations(annotations).split(split)
    preds = prior_predictions(BoundaryPrior(count=segments - 1), ann.values(), seconds)
    save_predictions(preds, out)
    click.echo(f"wrote {len(preds)} predictions ({segments} equal segments, "
               f"{'seconds' if seconds else 'frames'}) to {out}")


@main.command("fetch-videos")
@click.argument("annotations", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@FetchConfig.click_options()
def fetch_videos_command(annotations, out_dir, **options):
    """Download the source video of every instance into OUT_DIR/<youtube_id>.<ext> with yt-dlp.

    \b
    Needs yt-dlp: pip install 'tapos[fetch]'. What tapos-extract --annotations reads.
    A video is downloaded under a hidden temporary name in OUT_DIR and renamed once it probes
    complete, so a file under its final name is always whole: rerun the same command after a
    crash, it skips the complete files. Each failure gets one line (private, removed,
    unavailable in your region, network, http 404, not a video, truncated, ...) and an entry in
    OUT_DIR/failures.json, which lists the last run's failures (a run without any removes it);
    exit status 1 when any failed.
    The summary says, per split, how many instances have their source now.

    \b
    Examples: tapos-data fetch-videos tapos_annotation.json youtube/ --jobs 8
              tapos-data fetch-videos tapos_annotation.json val/ --split val --url-template https://host/{id}.mp4
    """
    report = fetch_videos(annotations, out_dir, FetchConfig.of(options),
                          on_failure=lambda failure: click.echo(failure.line, err=True))
    click.echo(f"{out_dir}: {len(report.downloaded)} downloaded, {len(report.skipped)} complete already, "
               f"{len(report.failed)} failed")
    for name, (have, lack) in report.coverage.items():
        click.echo(f"  {name}: {have} of {have + lack} instances have their source video, {lack} missing")
    if report.failed:
        raise click.ClickException(f"{len(report.failed)} videos failed (listed in {report.failures_file}); "
                                   f"rerun to retry them")


@main.command("check-videos")
@click.argument("annotations", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("videos", type=click.Path(file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(SPLITS), default="all", show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the table and every instance's status and reason here.")
@click.option("--jobs", type=click.IntRange(1), default=4, show_default=True, help="Videos probed in parallel.")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any instance is not ok (default: 0, "
                                             "whatever was found).")
def check_videos_command(annotations, videos, split, json_out, jobs, strict):
    """Check the source videos of every instance before extracting them.

    \b
    Each instance, found as tapos-extract finds it, gets one status:
      missing      no <youtube_id>.<ext> (nor <key>.<ext>) in VIDEOS
      undecodable  it does not probe, has no frames, or is truncated
      too short    it ends before the instance, or before the instance's shot ends
      wrong rate   its frames drift from the annotation's (total_frames / duration) by more
                   than 1% and more than a frame over the instance; it still extracts by time
      ok
    and two counts beside: rescaled (the source's frames land more than half a frame off the
    annotation's, so boundaries move to other frames by the clock) and irregular timing (frames
    missing or repeated within the video). Prints a table by split and the first problems.

    \b
    Example: tapos-data check-videos tapos_annotation.json youtube/ --json check.json
    """
    from .machinery.check_videos import check_videos, summary_table, write_report

    checks = check_videos(annotations, videos, split=split, jobs=jobs)
    echo_table(summary_table(checks), "{:g}")
    problems = [c for c in checks if c.status != "ok"]
    for c in problems[:10]:
        click.echo(f"  {c.key}: {c.status}: {c.reason}", err=True)
    if len(problems) > 10:
        click.echo(f"  ... and {len(problems) - 10} more" + (f" (all in {json_out})" if json_out else ""), err=True)
    if json_out is not None:
        write_report(checks, json_out, annotations, videos)
        click.echo(f"wrote {json_out}")
    if strict and problems:
        raise click.ClickException(f"{len(problems)} of {len(checks)} instances are not ok (--strict)")


from .cli_features import export_features, import_features  # noqa: E402

main.add_command(import_features)
main.add_command(export_features)

if __name__ == "__main__":  # pragma: no cover
    main()
