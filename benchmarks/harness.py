"""The benchmarks' harness: their common arguments, the synthetic data made once, and the one way a
results file is written (atomically, the command that wrote it, the date and the commit first).

Every script in ``benchmarks/`` imports it as a sibling module (``python benchmarks/x.py`` puts
``benchmarks/`` on the path)::

    ap = harness.arguments(__file__, __doc__, data="/tmp/x", seeds=5, resume=True, jobs=True, tag=True)
    ap.add_argument("--epochs", ...)                     # the script's own options
    args = harness.parse(ap)                             # args.out is a Path, args.command the command line
    data = harness.synthetic(args.data, features=True)   # write_dataset(args.data, features=True), once
    harness.write_report(args, f"x{args.tag}.md", text)  # "<!-- written by: ... -->", text, "<!-- ran ... -->"
    harness.write_csv(args, f"x{args.tag}.csv", frame)   # the numbers behind the report
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tapos.data.io import atomic_write_text

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MARKER = ".complete"  # written last into a synthetic dataset folder: the data is complete
ABSENT, REQUIRED = object(), object()  # for arguments(data=...): no --data option; --data without a default


def arguments(script: str, doc: str, *, data=ABSENT, data_help: str = "", seeds: int | None = None,
              resume: bool = False, jobs: bool = False, tag: bool = False, out=RESULTS) -> argparse.ArgumentParser:
    """An argument parser with the options the benchmarks share: ``--out`` always (default
    ``out``; None when the script derives it); ``--data`` (a default path, ``REQUIRED``, or None
    when the script derives it: say how in ``data_help``), ``--seeds N``, ``--resume``, ``--jobs``
    and ``--tag`` when asked. The usage is ``doc``."""
    first, _, rest = (doc or "").strip().partition("\n")
    ap = argparse.ArgumentParser(prog=f"benchmarks/{Path(script).name}", description=first, epilog=rest,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    if data is not ABSENT:
        ap.add_argument("--data", required=data is REQUIRED, default=None if data is REQUIRED else data,
                        help=data_help or f"synthetic dataset folder, made once if missing (default: {data})")
    if seeds is not None:
        ap.add_argument("--seeds", type=int, default=seeds, help=f"seeds 0..N-1 of every configuration (default {seeds})")
    if resume:
        ap.add_argument("--resume", action="store_true", help="keep the runs already written, run the others")
    if jobs:
        ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes of one thread each)")
    if tag:
        ap.add_argument("--tag", default="", help="suffix of the results files' names")
    ap.add_argument("--out", type=Path, default=out, help=f"where the results files go (default: {out or 'see above'})")
    return ap


def parse(ap: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``ap.parse_args(argv)``, with ``command``: the command line, as a results file names it, and
    when the run started (its clock and the machine's load then, for the report's last line)."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = ap.parse_args(argv)
    args.command = shlex.join(["python", ap.prog, *argv])
    args.started = (time.time(), os.getloadavg()[0])
    return args


# --- results files ---------------------------------------------------------------------------------
def header(command: str) -> str:
    """``<!-- written by: python benchmarks/x.py ARGS (2026-01-02 03:04 UTC, commit abc1234) -->``: a
    results file's first line (``+changes`` after the commit when the checkout had uncommitted edits
    outside ``benchmarks/results/``: results rewritten by an earlier run do not count)."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!-- written by: {command} ({when}{_commit()}) -->"


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=HERE).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                ":(top,exclude)benchmarks/results"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked release)
        return ""
    return f", commit {head}{'+changes' if dirty else ''}"


def write_report(args: argparse.Namespace, name: str, text: str) -> Path:
    """Write ``args.out / name`` atomically: the header line, a blank line, ``text``, and a last
    line saying how long the run took on how many cores and how busy the machine was (timings from
    a machine shared with other jobs are read with that in mind)."""
    path = Path(args.out) / name
    atomic_write_text(path, f"{header(args.command)}\n\n{text.strip(chr(10))}\n\n{footer(args)}\n")
    return path


def footer(args: argparse.Namespace) -> str:
    """``<!-- ran 3.2 min on 2 CPU cores, load average 1.4 at the start -->`` (a resumed run: its own time)."""
    start, load = args.started
    return (f"<!-- ran {(time.time() - start) / 60:.1f} min on {os.cpu_count()} CPU cores, load average {load:.1f} "
            "at the start -->")


def write_csv(args: argparse.Namespace, name: str, frame, index: bool = False) -> Path:
    """Write the table ``frame`` (a pandas DataFrame) as ``args.out / name`` atomically. A CSV has
    no header line (it is read back as data); the report beside it names the command."""
    path = Path(args.out) / name
    atomic_write_text(path, frame.to_csv(index=index))
    return path


# --- synthetic data, made once -----------------------------------------------------------------------
def synthetic(path, *, check: bool = True, **settings) -> Path:
    """The folder ``path`` holding what ``tapos.data.synth.write_dataset(path, **settings)`` writes,
    generated once: into ``<path>.partial``, then the marker ``.complete`` (the settings, JSON) and a
    rename, so an interrupted run leaves no half dataset under ``path``. A complete folder made with
    other settings stops the run with one line, or with ``check=False`` is used as it is (a script
    that reads whatever dataset it is given; ``settings`` only say what to make when it is missing).
    A folder without the marker (made by something else, or before the harness) is refused."""
    path = Path(path)
    settings.pop("progress", None)  # generated quietly
    want = canonical_settings(settings)
    marker = path / MARKER
    if marker.is_file():
        have = _recorded(marker)
        wrong = [] if have is None or not check else sorted(k for k in {*want, *have} if have.get(k) != want.get(k))
        if wrong:
            diff = ", ".join(f"{k}={have.get(k)} (asked: {want.get(k)})" for k in wrong)
            raise SystemExit(f"{path}: made with other settings ({diff}); pass another --data")
        return path
    if path.exists() and any(path.iterdir()):
        raise SystemExit(f"{path}: holds files but no {MARKER} marker (not made by benchmarks/harness.py, or made "
                         "before it): remove it or pass another --data")
    from tapos.data.synth import write_dataset

    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # an interrupted generation of ours
    t = time.time()
    write_dataset(partial, progress=False, **settings)
    atomic_write_text(partial / MARKER, json.dumps(want, indent=1, sort_keys=True) + "\n")
    if path.exists():
        path.rmdir()  # empty (checked above)
    os.replace(partial, path)
    print(f"generated {path} in {time.time() - t:.0f} s", flush=True)
    return path


def existing(path, *names: str) -> Path:
    """The folder ``path`` when it holds every file of ``names``; else one line and exit 1."""
    path = Path(path)
    missing = [n for n in names if not (path / n).exists()]
    if missing:
        raise SystemExit(f"{path}: no {', '.join(missing)} (make it first; see the script's usage)")
    return path


def canonical_settings(settings: dict) -> dict:
    """``settings`` as the marker records them: JSON values, annotation paths resolved, and without
    what equals ``write_dataset``'s own default (so ``seed=0`` and no seed are the same data)."""
    from tapos.data.synth import write_dataset

    defaults = {k: p.default for k, p in inspect.signature(write_dataset).parameters.items()
                if p.default is not inspect.Parameter.empty}
    out = {k: v for k, v in settings.items() if k != "progress" and not (k in defaults and defaults[k] == v)}
    if "like" in out:
        out["like"] = [str(Path(p).resolve()) for p in out["like"]]
    return json.loads(json.dumps(out))


def _recorded(marker: Path):
    """The settings a marker records; None for a marker written before the harness (``ok``: complete,
    its settings named only by the folder's name)."""
    try:
        return json.loads(marker.read_text())
    except json.JSONDecodeError:
        return None
