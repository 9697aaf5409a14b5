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
