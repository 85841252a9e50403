"""The five folders install as tapos.* and every module ends up in the wheel."""
import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("data", "extract", "parse", "evaluate", "tsn")
SCRIPTS = ("tapos-data", "tapos-evaluate", "tapos-extract", "tapos-parse", "tapos-tsn")


def _source_modules():
    mods = set()
    for stage in STAGES:
        folder = ROOT / stage
        if not folder.is_dir():
            continue
        for py in folder.rglob("*.py"):
            rel = py.relative_to(ROOT)
            mods.add("tapos/" + rel.as_posix())
    return mods


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    for name in ("setup.cfg", "pyproject.toml", "README.md", *STAGES):
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif p.exists():
            shutil.copy(p, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
                   check=True, capture_output=True)
    (whl,) = out.glob("tapos-*.whl")
    return whl


def test_every_module_is_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = _source_modules()
    assert modules, "no stage folder found"
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    assert "tapos/__init__.py" not in names  # tapos is a namespace package
    assert not any(n.startswith(("data/", "evaluate/", "tests/")) for n in names)  # nothing at top level


def test_wheel_declares_console_scripts(wheel):
    zf = zipfile.ZipFile(wheel)
    ep = next(n for n in zf.namelist() if n.endswith("entry_points.txt"))
    text = zf.read(ep).decode()
    for stage in STAGES:
        script = f"tapos-{stage}"
        if (ROOT / stage / "cli.py").exists():
            assert f"{script} = tapos.{stage}.cli:main" in text


def test_installed_version_and_imports():
    import tapos.data
    import tapos.evaluate

    assert tapos.data.__version__ == importlib.metadata.version("tapos")
    assert Path(tapos.data.__file__).resolve().parent == ROOT / "data"
    # the repository's top-level folders never shadow PyPI names
    assert "data" not in sys.modules and "evaluate" not in sys.modules


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_and_version(script, cli):
    stage = script.split("-")[1]
    if not (ROOT / stage / "cli.py").exists():
        pytest.skip(f"stage {stage} not built yet")
    proc = cli(script, "--help", process=True)  # the installed console script itself
    assert "Example" in proc.stdout
    proc = cli(script, "--version", process=True)
    assert importlib.metadata.version("tapos") in proc.stdout


def test_the_wheel_works_on_its_own(wheel, tmp_path):
    """Install the wheel into a bare folder and import from there, not from the source tree."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    code = (
        "import sys\n"
        # drop the editable install's finder so that only the wheel's files can be found
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__.lower()"
        " and 'editable' not in getattr(f, '__name__', '').lower()]\n"
        f"sys.path.insert(0, {str(target)!r})\n"
        "import tapos.data, tapos.evaluate.cli\n"
        "print(tapos.data.__file__)\n"
        "tapos.evaluate.cli.main(['--version'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(str(target))
    assert importlib.metadata.version("tapos") in proc.stdout
