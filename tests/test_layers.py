"""The layer rule (docs/architecture.md; contracts in .importlinter): data imports no stage, extract
and evaluate import only data, parse imports no tsn, the other stages use only extract's public API
(plus the rules inside data). import-linter reads the installed packages'
imports, so a new import across a layer fails this test and CI."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(config), "--no-cache"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_every_layer_contract_is_kept():
    config = ROOT / ".importlinter"
    proc = lint(config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    declared = config.read_text().count("[importlinter:contract:")  # every contract of the file ran
    assert declared >= 8  # the stages' four, data's own three, parse's use of extract's public API
    assert f"{declared} kept, 0 broken" in proc.stdout


def test_a_forbidden_import_is_caught(tmp_path):
    """The contracts are not vacuous: forbidding an import the code makes (parse reads the cache
    through data) breaks a contract."""
    config = tmp_path / "contracts.ini"
    config.write_text("[importlinter]\nroot_packages =\n    tapos.data\n    tapos.parse\n\n"
                      "[importlinter:contract:x]\nname = parse without data\ntype = forbidden\n"
                      "source_modules =\n    tapos.parse\nforbidden_modules =\n    tapos.data\n")
    proc = lint(config)
    assert proc.returncode != 0 and "BROKEN" in proc.stdout and "tapos.parse" in proc.stdout
