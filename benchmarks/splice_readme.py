"""README's tables are copies of results files: this rewrites them from their files (`make readme`).

A copied table sits in README.md between two markers:

    <!-- Table 2 from benchmarks/results/parsing_tables_tapos_like.md -->
    | config | ... |
    <!-- end of table -->

and is the first Markdown table under the heading ``Table 2`` (any level) of that file, the path
relative to README's folder. The docs site includes results files whole (pymdownx.snippets); README
is read on GitHub, which includes nothing, hence the copy. tests/test_docs.py fails when a copy
differs from its file.

    python benchmarks/splice_readme.py            # rewrite README.md's tables
    python benchmarks/splice_readme.py --check    # exit status 1 when one is stale
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tapos.data.io import atomic_path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- (?P<title>.+?) from (?P<path>\S+\.md) -->$")
END = "<!-- end of table -->"


class SpliceError(Exception):
    """A marker README cannot be filled from: one line naming the file and the problem."""


def table_under(path: Path, title: str) -> list:
    """The rows of the first table under the heading ``title`` of the Markdown file ``path``."""
    if not path.is_file():
        raise SpliceError(f"{path}: no such results file")
    lines = path.read_text(encoding="utf-8").splitlines()
    heading = re.compile(r"^#+\s+" + re.escape(title) + r"\s*$")
    start = next((i for i, line in enumerate(lines) if heading.match(line)), None)
    if start is None:
        raise SpliceError(f"{path}: no heading {title!r}")
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append(line)
        elif rows or line.startswith("#"):
            break
    if not rows:
        raise SpliceError(f"{path}: no table under the heading {title!r}")
    return rows


def splice(text: str, base: Path) -> str:
    """``text`` (README) with every marked table replaced by its file's current table."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        out.append(lines[i])
        match = MARKER.match(lines[i])
        i += 1
        if not match:
            continue
        end = next((j for j in range(i, len(lines)) if lines[j] == END), None)
        if end is None:
            raise SpliceError(f"README: {lines[i - 1]} has no {END} after it")
        out += table_under(base / match["path"], match["title"])
        i = end
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readme", nargs="?", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="Change nothing; exit 1 when a table is stale.")
    args = parser.parse_args(argv)
    try:
        text = args.readme.read_text(encoding="utf-8")
        new = splice(text, args.readme.resolve().parent)
    except (OSError, SpliceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if new != text:
            print(f"{args.readme}: a table differs from its results file; run python benchmarks/splice_readme.py",
                  file=sys.stderr)
        return int(new != text)
    if new != text:
        with atomic_path(args.readme) as tmp:
            tmp.write_text(new, encoding="utf-8")
        print(f"{args.readme}: tables rewritten from their results files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
