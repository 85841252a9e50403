"""``tapos-data import-features`` and ``export-features``: features made elsewhere in and out of a cache."""
from __future__ import annotations

from pathlib import Path

import click

from .features import MODALITIES
from .importing import ImportConfig


def _mapping(items) -> dict:
    out = {}
    for item in items:
        key, sep, mod = item.partition("=")
        if not sep or not key or mod not in MODALITIES:
            raise click.BadParameter(f"{item!r}: expected KEY=MODALITY with MODALITY rgb or flow", param_hint="--map")
        out[key] = mod
    return out


@click.command("import-features")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@ImportConfig.click_options()
@click.option("--map", "mapping", multiple=True, metavar="KEY=MODALITY",
              help="Arrays of dict files by name, e.g. --map resnet=rgb (other arrays are ignored).")
def import_features(src, out, mapping, **options):
    """Import per-frame features made elsewhere into the cache OUT (schema tapos-features/1).

    \b
    SRC is one of (auto picks the first that fits):
      one .h5/.npz file       {video: array}
      video_features output   <stem>_<key>.npy with <stem>_fps.npy, <stem>_timestamps_ms.npy
      one file per video      <stem>.npy/.npz/.pt/.pkl (an array or a dict of arrays)
      folders                 <youtube_id>/<instance_id>.* (key <youtube_id>_<instance_id>)

    Bad files are skipped with one line each and listed in OUT's .failures.json (exit status 1);
    a rerun skips what is imported. Example:

      tapos-data import-features vf_out/ feats.h5 --map resnet=rgb --annotations tapos_annotation.json
    """
    from .importing import import_features as run_import

    def bad(path, reason):
        click.echo(f"bad: {path}: {reason}", err=True)

    config = ImportConfig.of(options, mapping=_mapping(mapping))
    report = run_import(src, out, config, on_failure=bad)
    click.echo(f"{src} ({report.layout} layout): imported {len(report.done)}, already there {len(report.skipped)}, "
               f"failed {len(report.failed)}; {report.indexed} instances in {out}")
    if report.busy:
        click.echo(f"{len(report.busy)} being imported by another process (rerun to index them)")
    if report.unmatched:
        click.echo(f"{report.unmatched} annotated instances have no features in {src}")
    if report.failures_file:
        click.echo(f"failure report: {report.failures_file}")
        raise SystemExit(1)


@click.command("export-features")
@click.argument("cache", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["npy", "npz"]), default="npy", show_default=True,
              help="npy: video_features layout (<key>_rgb.npy, <key>_fps.npy, <key>_timestamps_ms.npy); "
                   "npz: one <key>.npz per instance.")
def export_features(cache, out_dir, fmt):
    """Write every instance of CACHE as .npy or .npz files (import-features reads them back).

    Example: tapos-data export-features feats.h5 feats_npy/ --format npy
    """
    from .importing import export_features as run_export

    n = run_export(cache, out_dir, fmt)
    click.echo(f"wrote {n} instances to {out_dir} ({fmt})")
