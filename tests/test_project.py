"""Rules about the code base itself that a reviewer would otherwise check by hand."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_auth_package_does_not_import_the_app():
    code = (
        "import sys, pkgutil, importlib, auth\n"
        "for m in pkgutil.walk_packages(auth.__path__, 'auth.'): importlib.import_module(m.name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'app' or m.startswith('app.'))\n"
        "print(leaked)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by the test extra")
def test_code_is_ruff_clean():
    check = subprocess.run(["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        ["ruff", "format", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout


@pytest.mark.skipif(shutil.which("mypy") is None, reason="mypy is installed by the test extra")
def test_code_passes_mypy_strict():
    """`mypy --strict` over app/ and auth/ (configured in pyproject.toml)."""
    check = subprocess.run(["mypy"], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_cli_modules_import_without_a_cycle():
    """Each command module imports on its own in a fresh interpreter (the group loads lazily)."""
    modules = [
        "app.ingest.cli",
        "app.repo.cli",
        "app.cli.keys",
        "app.cli.db",
        "app.cli.serve",
        "app.emulator.cli",
    ]
    for module in modules:
        subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, check=True)


def test_no_sql_on_the_store_tables_outside_the_store():
    """Only app/store/ reads or writes online_values (the migrations create it)."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "app").rglob("*.py")
        if "store" not in path.relative_to(ROOT / "app").parts[:1]
        and ("online_values" in path.read_text() or "OnlineValue" in path.read_text())
    ]
    assert offenders == []
