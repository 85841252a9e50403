"""MkDocs hooks for the tapos site (mkdocs.yml, ``hooks:``).

- **The API pages find the code.** The five folders install as ``tapos.*`` through setup.cfg's
  ``package_dir`` (there is no ``tapos/`` folder), which griffe, mkdocstrings' loader, cannot
  follow. A temporary tree of links, ``tapos/data -> data/`` and so on, read from setup.cfg, is
  put first on the Python handler's search path.
- **Results files read as sections.** Every results number is included from
  ``benchmarks/results/*.md`` with pymdownx.snippets. Those files start with their own ``#``
  title, so the headings of an included file are moved below the heading that includes it (the
  page keeps one title and its table of contents lists the file's sections), and the
  ``<!-- written by: COMMAND (DATE, commit) -->`` line at the top becomes a visible note.
- **Help written for a terminal reads on a page.** mkdocs-click puts each command's help in the
  page as Markdown; tapos's help texts are laid out for ``--help`` (aligned columns, indented
  examples, ``<key>`` placeholders). Paragraphs with indented lines or examples become text
  blocks, ``<`` and ``>`` are escaped, and click 8.3's ``Sentinel.UNSET`` (no default) reads as
  an empty cell, as does a declared default of ``None``.
- **Docstrings written for Sphinx read as Markdown.** ``:func:`x``` and its siblings become
  ``x`` in code.
- **Command output in a page.** ``<!-- generated: tapos-parse methods -->`` becomes what that
  command prints (the command's entry point is read from setup.cfg), so option defaults and
  presets listed on a page are the code's.
- **The benchmark figures** (``benchmarks/results/*.png``) are published as ``results/img/*.png``.
"""
from __future__ import annotations

import atexit
import configparser
import importlib
import re
import shlex
import shutil
import tempfile
from pathlib import Path

import mkdocs.plugins
from markdown import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
RESULTS = "benchmarks/results"
INCLUDE = re.compile(r'^(\s*)--8<--\s+"(' + re.escape(RESULTS) + r'/[^"]+\.md)"\s*$')
BEGIN, END = "<!-- results-file:begin -->", "<!-- results-file:end -->"
HEADING = re.compile(r"^(#{1,6})(\s.*)$")
WRITTEN_BY = re.compile(r"^<!--\s*written by:\s*(.*?)\s*(\(([^()]*)\))?\s*-->\s*$")
GENERATED = re.compile(r"^(\s*)<!--\s*generated:\s*(.+?)\s*-->\s*$")
ROLE = re.compile(r":(?:func|meth|class|mod|attr|data|obj|exc):`~?([^`]+)`")


def setup_cfg(key: str, section: str = "options") -> dict:
    """``NAME = VALUE`` lines of a setup.cfg option (package_dir, console_scripts) as a dict."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg[section][key].strip().splitlines()
    return dict((part.strip() for part in line.partition("=")[::2]) for line in lines)


def package_links(target: Path) -> None:
    """Links ``target/tapos/data -> ROOT/data``, ... for every entry of setup.cfg's package_dir."""
    for name, folder in setup_cfg("package_dir").items():
        link = target.joinpath(*name.split("."))
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT / folder, target_is_directory=True)


@mkdocs.plugins.event_priority(100)  # before mkdocstrings builds its handlers in its own on_config
def on_config(config):
    tree = Path(tempfile.mkdtemp(prefix="tapos-docs-api-"))
    atexit.register(shutil.rmtree, tree, True)
    package_links(tree)
    python = config.plugins["mkdocstrings"].config["handlers"].setdefault("python", {})
    python["paths"] = [str(tree), *python.get("paths", [])]
    config.markdown_extensions.append(TaposMarkdown())
    return config


def on_files(files, config):
    for png in sorted((ROOT / RESULTS).glob("*.png")):
        files.append(File.generated(config, f"results/img/{png.name}", abs_src_path=str(png)))
    return files


def written_by(match) -> str:
    """The provenance line of a results file, as a visible note."""
    when = f" ({match.group(3)})" if match.group(3) else ""
    return f"*Written by `{match.group(1)}`{when}.*"


def command_output(command: str) -> str:
    """What ``tapos-x ARGS`` prints, run in this process through click's test runner."""
    from click.testing import CliRunner

    name, *args = shlex.split(command)
    module, _, attr = setup_cfg("console_scripts", "options.entry_points")[name].partition(":")
    result = CliRunner().invoke(getattr(importlib.import_module(module), attr), args, prog_name=name)
    if result.exit_code != 0:
        raise RuntimeError(f"docs: `{command}` failed with exit status {result.exit_code}: {result.output}")
    return result.output


def on_page_markdown(markdown, page, config, files):
    lines = []
    for line in markdown.splitlines():
        match = GENERATED.match(line)
        if match:
            indent, command = match.groups()
            block = ["```text", *command_output(command).rstrip("\n").splitlines(), "```"]
            lines += [indent + row if row else row for row in block]
        else:
            lines.append(line)
    return "\n".join(lines)


class MarkIncludes(Preprocessor):
    """Before snippets (priority 32): wrap each results include in begin/end markers."""

    def run(self, lines):
        out = []
        for line in lines:
            if INCLUDE.match(line):
                out += [BEGIN, "", line, "", END]
            else:
                out.append(line)
        return out


class ShiftIncluded(Preprocessor):
    """After snippets: headings inside the markers go below the last heading before them."""

    def run(self, lines):
        out, level, inside, shift, fenced, note = [], 1, False, 0, False, []
        for line in lines:
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            heading = None if fenced else HEADING.match(line)
            if line == BEGIN:
                inside, shift = True, None
                out += ['<div class="results" markdown="1">', ""]
            elif line == END:
                out += [*note, "", "</div>"]  # a file without a heading: its note at its end
                inside, note = False, []
            elif inside and WRITTEN_BY.match(line):
                note = ["", written_by(WRITTEN_BY.match(line)), ""]  # shown under the file's title
            elif inside and heading:
                shift = level + 1 - len(heading.group(1)) if shift is None else shift
                out += ["#" * min(6, len(heading.group(1)) + shift) + heading.group(2), *note]
                note = []
            else:
                if heading:
                    level = len(heading.group(1))
                out.append(line)
        return out


CLICK_BEGIN, CLICK_END = "<!-- click:begin -->", "<!-- click:end -->"


class MarkClick(Preprocessor):
    """Before mkdocs-click (priority 141): wrap each ``::: mkdocs-click`` directive in markers."""

    def run(self, lines):
        out, inside = [], False
        for line in lines:
            if inside and not line[:1].isspace():  # the directive's options are its indented lines
                out.append(CLICK_END)
                inside = False
            if line.strip() == "::: mkdocs-click":
                out.append(CLICK_BEGIN)
                inside = True
            out.append(line)
        return out + ([CLICK_END] if inside else [])


def escape_html(text: str) -> str:
    """``<`` and ``>`` outside code spans as entities (``<key>`` is a placeholder, not a tag)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def help_paragraph(lines: list) -> list:
    """One paragraph of a command's help: a text block when laid out for a terminal."""
    laid_out = any(line[:1].isspace() for line in lines) or lines[0].startswith(("Example:", "Examples:"))
    return (["```text", *lines, "```"] if laid_out else [escape_html(line) for line in lines]) + [""]


def clean_line(line: str) -> str:
    """A row of mkdocs-click's options table or an item of its subcommand list, with no
    placeholder eaten and no sentinel shown."""
    if line.startswith("|"):
        return (escape_html(line).replace("`Sentinel.UNSET`", "").replace("| N/A |", "|  |")
                .replace("| None |", "|  |"))  # an option declared with no default
    return escape_html(line) if line.startswith("- ") else line


class FixClick(Preprocessor):
    """After mkdocs-click: inside the markers, each command's description (between its heading and
    ``**Usage:**``) is laid out paragraph by paragraph; the options table and the list of
    subcommands are cleaned."""

    def run(self, lines):
        out, inside, paragraph, describing = [], False, [], False
        for line in lines:
            if line in (CLICK_BEGIN, CLICK_END):
                inside = line == CLICK_BEGIN
            elif not inside:
                out.append(line)
            elif HEADING.match(line) or line.startswith("**Usage:**"):
                out += help_paragraph(paragraph) if paragraph else []
                paragraph, describing = [], bool(HEADING.match(line))
                out += [line, ""]
            elif describing and line.strip():
                paragraph.append(line)
            elif describing:
                out += help_paragraph(paragraph) if paragraph else []
                paragraph = []
            else:
                out.append(clean_line(line))
        return out


class SphinxRoles(Preprocessor):
    """``:func:`x``` (docstrings written for Sphinx) -> ``x`` in code."""

    def run(self, lines):
        return [ROLE.sub(r"`\1`", line) for line in lines]


class TaposMarkdown(Extension):
    def extendMarkdown(self, md):
        md.preprocessors.register(MarkClick(md), "tapos_mark_click", 142)
        md.preprocessors.register(FixClick(md), "tapos_fix_click", 140)
        md.preprocessors.register(MarkIncludes(md), "tapos_mark_includes", 33)
        md.preprocessors.register(ShiftIncluded(md), "tapos_shift_included", 31)
        md.preprocessors.register(SphinxRoles(md), "tapos_sphinx_roles", 29)
