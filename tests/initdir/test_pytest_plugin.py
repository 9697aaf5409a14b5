"""pytest-tectonite (clients/pytest-tectonite), installed as a user installs it, run by pytester
and on the sample project under examples/pytest-project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import start_server
from tests.initdir.helpers import fixed_key, fraud_init_dir

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "clients" / "pytest-tectonite"
EXAMPLE = ROOT / "examples" / "pytest-project"
TECTONITE_COMMAND = f"{sys.executable} -m app.cli"


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory) -> Path:
    """The plugin built and installed (with its pytest11 entry point) into a folder of its
    own, which child pytest runs get on PYTHONPATH: this suite's environment stays as it is."""
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(PLUGIN)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    assert (target / "pytest_tectonite" / "plugin.py").is_file()
    return target


@pytest.fixture
def plugin_env(plugin_site, new_database, monkeypatch) -> dict[str, str]:
    """The environment of a child pytest run: the plugin, the command, a database of its own."""
    env = {
        "PYTHONPATH": str(plugin_site),
        "TECTONITE_COMMAND": TECTONITE_COMMAND,
        "DATABASE_URL": new_database(),
        "WEB_CONCURRENCY": "1",
        "TECTONITE_THREADS": "4",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("TECTONITE_URL", "TECTONITE_ADMIN_KEY", "TECTONITE_INIT_DIR", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)
    return env


def test_the_sample_project_passes_its_own_tests(plugin_env, tmp_path):
    # Its own --basetemp: a run on pytest's default one would prune this run's temp folders
    # (pytest keeps the three newest), the embedded test database's among them.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'sample'}",
        ],
        cwd=EXAMPLE,
        env={**os.environ, **plugin_env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout


def test_fixtures_with_an_init_dir_from_the_ini_option(pytester, plugin_env, tmp_path):
    fraud_init_dir(pytester.path)  # pytester.path/init/prod
    pytester.makeini("[pytest]\ntectonite_init_dir = init\n")
    pytester.makepyfile(
        """
        import sys

        import pytest

        SERVICE = "fraud_detection_feature_service"
        KEYS = {"user_id": "user_1", "merchant": "fraud_Sporer-Keebler"}

        def features(client):
            return client.get_features(
                feature_service_name=SERVICE, join_key_map=KEYS, request_context_map={"amt": 1.0}
            ).result.features

        def test_client_reads_the_init_directory(tectonite, tectonite_client):
            assert tectonite.workspace == "prod"
            assert "775" in features(tectonite_client)

        def test_ingest_then_reset_restores_the_directory(tectonite, tectonite_reset):
            tectonite.ingest("transactions", [{"user_id": "user_1", "merchant": "x",
                                               "transaction_id": "t9", "amt": 9.5,
                                               "timestamp": "2026-12-01T00:00:00Z"}])
            assert 9.5 in features(tectonite.client())
            tectonite.reset()
            assert 9.5 not in features(tectonite.client())

        def test_keys_by_role(tectonite, tectonite_key):
            import tecton_client.exceptions as errors
            viewer = tectonite_key("viewer", workspace="prod")
            assert viewer == tectonite_key("viewer", workspace="prod")  # made once
            with pytest.raises(errors.ForbiddenError):
                features(tectonite.client(api_key=viewer))

        def test_the_plugin_imports_no_tectonite_package():
            leaked = [m for m in sys.modules
                      if m.split(".")[0] in ("app", "auth", "migrations")]
            assert leaked == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=600)
    result.assert_outcomes(passed=4)


def test_a_running_server_from_tectonite_url(pytester, plugin_env, tmp_path, monkeypatch):
    admin = fixed_key()
    init = fraud_init_dir(tmp_path, keys=f"- {{description: admin, role: admin, key: {admin}}}\n")
    server = start_server({"DATABASE_URL": plugin_env["DATABASE_URL"], "WEB_CONCURRENCY": "1"},
                          "--init", str(init))  # fmt: skip
    monkeypatch.setenv("TECTONITE_URL", server.base_url)
    monkeypatch.setenv("TECTONITE_ADMIN_KEY", admin)
    try:
        pytester.makepyfile(
            f"""
            def test_uses_the_running_server(tectonite, tectonite_key):
                assert tectonite.url == "{server.base_url}"
                assert tectonite.process is None
                assert tectonite.admin_key == "{admin}"
                assert tectonite_key("consumer").startswith("tecto_")
            """
        )
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
        result.assert_outcomes(passed=1)
    finally:
        server.stop()


def test_without_a_command_the_plugin_says_what_to_do(pytester, plugin_env, monkeypatch):
    monkeypatch.delenv("TECTONITE_COMMAND")
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent.parent / "nowhere"))
    pytester.makepyfile("def test_needs_a_server(tectonite):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.stdout.fnmatch_lines(["*no `tectonite` command*TECTONITE_COMMAND*TECTONITE_URL*"])
    assert result.ret != 0
