"""``tapos-extract``: BNInception RGB and flow features from videos to the HDF5 feature cache."""
from __future__ import annotations

import os
from pathlib import Path

import click

from tapos.data.machinery.cli_utils import DefaultCommandGroup, parse_overrides
from tapos.data.version import __version__

from .config import ExtractConfig
from .flow import FLOW_METHODS


@click.group(cls=DefaultCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tapos-extract")
def main():
    """Extract BNInception features (RGB and optical flow) from videos into a feature cache.

    \b
      tapos-extract VIDEOS OUT.h5 [options]      (same as: tapos-extract run ...)
      tapos-extract merge OUT.h5 [MERGED.h5]     one self-contained file
    \b
    Examples:
      tapos-extract videos/ feats.h5 --modality rgb,flow --flow dis
      tapos-extract youtube/ feats.h5 --annotations tapos_annotation.json --weights imagenet
      torchrun --nproc-per-node 4 -m tapos.extract videos/ feats.h5 --device cuda --precision fp16
    """


def _option_names() -> dict:
    """Every flow method's option names: a method that takes none refuses them when it runs, in
    one line naming the methods that do."""
    return {name: None for m in FLOW_METHODS.values() if m.DEFAULTS is not None for name in m.DEFAULTS}


@main.command()
@click.argument("videos", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--annotations", type=click.Path(dir_okay=False, path_type=Path),
              help="tapos_annotation.json: cut each instance out of VIDEOS/<youtube_id>.<ext>, keyed globally.")
@ExtractConfig.click_options()
@click.option("--set", "flow_set", multiple=True, metavar="NAME=VALUE",
              help="A flow method's parameter (value as JSON): " + "; ".join(
                  f"{m.name}: {', '.join(m.DEFAULTS)}" for m in FLOW_METHODS.values() if m.DEFAULTS is not None) + ".")
def run(videos, out, annotations, flow_set, **options):
    """Extract features of the videos in VIDEOS (a folder, searched recursively, or one file) into OUT.

    \b
    OUT is an index file; the features live in OUT's .parts/ folder beside it, one file per
    instance, so a crash never loses finished work: rerun the same command to resume.
    Clips that cannot be extracted are listed with the reason in OUT's .failures.json beside it.
    Without --annotations a video's key is its path below VIDEOS without extension, with
    "/" replaced by "__" (videos/a/b.mp4 -> a__b).
    """
    from .pipeline import extract

    if options["stride"] != 1 and options["fps"] is not None:
        raise click.BadParameter("give --stride or --fps, not both", param_hint="--fps")
    config = ExtractConfig.of(options, flow_options=parse_overrides(flow_set, _option_names()) or None)
    report = extract(videos, out, annotations=annotations, **config.as_dict())
    rank = int(os.environ.get("RANK", "0"))
    rate = report.rows / report.seconds if report.seconds > 0 else 0.0
    click.echo(f"{out}: {len(report.done)} extracted ({report.rows} rows), {len(report.skipped)} already done, "
               f"{len(report.busy)} left to other processes, {len(report.failed)} failed "
               f"in {report.seconds:.1f} s ({rate:.0f} rows/s)"
               + (f"; index links {report.indexed} instances" if rank == 0 else ""))
    if report.notes:
        click.echo(f"  {len(report.notes)} clip(s) with missing or repeated frames, extracted by their timestamps "
                   f"(first: {report.notes[0][0]}: {report.notes[0][1]})", err=True)
    if report.run_failed:
        for key, msg in report.failed[:10]:
            click.echo(f"  {key}: {msg}", err=True)
        if rank == 0:
            where = f" (all listed in {report.failures_file})" if report.failures_file else ""
            raise click.ClickException(f"{report.run_failed} of {report.run_items} clips failed{where}; the rest are "
                                       f"in {out}; rerun to retry")
        raise click.ClickException(f"rank {rank}: {len(report.failed)} of {report.run_items} clips failed "
                                   f"(rank 0 lists every rank's failures beside {out})")


@main.command()
@click.argument("index", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("merged", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--no-progress", is_flag=True)
def merge(index, merged, no_progress):
    """Copy every instance of INDEX into one self-contained file MERGED (default: replace INDEX).

    The parts folder is left in place; delete it yourself once the merged file is where you want it.
    """
    from .store import merge as merge_cache

    target = merged or index
    n = merge_cache(index, target, progress=not no_progress)
    click.echo(f"{target}: {n} instances in one file")
