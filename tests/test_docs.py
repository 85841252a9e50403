"""The documentation: README's copied table equals its results file, and the docs site builds in
strict mode with its generated pages (command-line and API reference) and included results.

The site is built once per session into a temporary folder (about 10 s on 2 cores)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- (.+?) from (\S+\.md) -->$")
END = "<!-- end of table -->"
COMMANDS = ("tapos-data", "tapos-extract", "tapos-parse", "tapos-evaluate", "tapos-tsn")


def readme_blocks(text: str) -> list:
    """(title, path, rows) of every table README copies from a results file."""
    lines, blocks = text.splitlines(), []
    for i, line in enumerate(lines):
        match = MARKER.match(line)
        if match:
            end = lines.index(END, i + 1)
            blocks.append((match[1], match[2], lines[i + 1:end]))
    return blocks


def first_table_under(path: Path, title: str) -> list:
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"#+\s+" + re.escape(title) + r"\s*", line))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return rows


def test_readme_headline_table_is_its_results_file():
    blocks = readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    sources = [path for _, path, _ in blocks]
    assert "benchmarks/results/parsing_tables_tapos_like.md" in sources
    for title, path, rows in blocks:
        expected = first_table_under(ROOT / path, title)
        assert len(expected) > 2, f"{path}: no table under {title!r}"
        assert rows == expected, f"README's copy of {path} ({title}) is stale: run python benchmarks/splice_readme.py"


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    # .ci/run runs `make test`, the test command README documents
    assert "make test" in text and "make demo" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(((?:docs/)[^)#]+)", text):
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def splice(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "splice_readme.py"), *args],
                          cwd=cwd, capture_output=True, text=True)


def test_splice_readme_rewrites_a_stale_copy(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.md").write_text(
        "<!-- written by: x -->\n# Title\n\n## Table 2\n\n| a | b |\n|--:|--:|\n| 1 | 2 |\n\ntext\n\n"
        "## Table 3\n\n| c |\n|--|\n| 9 |\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- Table 2 from results/t.md -->\n| a | b |\n|--:|--:|\n| 0 | 0 |\n"
                      "<!-- end of table -->\nafter\n", encoding="utf-8")
    assert splice(str(readme), "--check", cwd=tmp_path).returncode == 1
    assert splice(str(readme), cwd=tmp_path).returncode == 0
    assert readme.read_text(encoding="utf-8") == ("intro\n<!-- Table 2 from results/t.md -->\n| a | b |\n|--:|--:|\n"
                                                  "| 1 | 2 |\n<!-- end of table -->\nafter\n")
    assert splice(str(readme), "--check", cwd=tmp_path).returncode == 0


def test_splice_readme_names_a_missing_heading(tmp_path):
    (tmp_path / "t.md").write_text("# Title\n\n| a |\n|--|\n| 1 |\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- Table 9 from t.md -->\n<!-- end of table -->\n", encoding="utf-8")
    result = splice(str(readme), cwd=tmp_path)
    assert result.returncode == 1
    assert "t.md: no heading 'Table 9'" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                             str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text(encoding="utf-8")


def test_site_builds_strict_with_one_title_per_page(site):
    pages = sorted(site.rglob("index.html"))
    assert len(pages) >= 25
    for html in pages:
        # an included results file's own "# title" is moved under the page's (docs/hooks.py)
        assert len(re.findall(r"<h1[ >]", html.read_text(encoding="utf-8"))) == 1, html


def test_cli_reference_is_generated_from_the_commands(site):
    from click.testing import CliRunner

    for name in COMMANDS:
        html = page(site, f"reference/cli/{name}")
        module = __import__(f"tapos.{name.split('-')[1]}.cli", fromlist=["main"])
        for sub in module.main.commands:
            assert f'id="{name}-{sub}"' in html, f"{name} {sub} is missing from its reference page"
        first_line = CliRunner().invoke(module.main, ["--help"]).output.splitlines()[2].strip()
        assert first_line in html
        assert "Sentinel.UNSET" not in html and "<youtube_id>" not in html


def test_api_reference_is_generated_from_docstrings(site):
    assert "Fit on" in page(site, "reference/api/parse") and 'id="tapos.parse.Parser"' in page(site, "reference/api/parse")
    assert 'id="tapos.data.features.FeatureReader"' in page(site, "reference/api/features")
    assert 'id="tapos.data.clock.row_boundary_frames"' in page(site, "reference/api/clock")
    assert 'id="tapos.evaluate.evaluate_tapos"' in page(site, "reference/api/evaluate")


def test_results_pages_include_their_files(site):
    # the headline file's Table 2 rows show on its page, cell for cell
    rows = first_table_under(ROOT / "benchmarks/results/parsing_tables_tapos_like.md", "Table 2")[2:]
    html = page(site, "results/tapos-structure")
    for row in rows:
        first_cell = row.strip("|").split("|")[0].strip()
        assert re.search(rf"<td[^>]*>{re.escape(first_cell)}</td>", html), first_cell
    # every results file a page includes is there with its numbers (its first data row)
    for md in sorted((ROOT / "docs").rglob("*.md")):
        for path in re.findall(r'--8<-- "(benchmarks/results/[^"]+)"', md.read_text(encoding="utf-8")):
            name = md.relative_to(ROOT / "docs").with_suffix("")
            built = page(site, str(name.parent if name.name == "index" else name))
            data = [line for line in (ROOT / path).read_text(encoding="utf-8").splitlines()
                    if line.startswith("|") and not set(line) <= set("|:- ")]
            last_cell = data[1].strip("|").split("|")[-1].strip()
            assert re.search(rf"<td[^>]*>{re.escape(last_cell)}</td>", built), f"{path} is not on {md.name}"
