"""The pytest plugin (entry point `pytest11: tectonite`): options, the marker and fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_tectonite.server import Clock, Faults, Journal, Tectonite, connect, find_command, start

RESET_MARKER = "tectonite_reset"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "tectonite_init_dir",
        "Init directory the session's Tectonite server starts from (relative to the ini file).",
        default="",
    )
    parser.addini(
        "tectonite_workspace",
        "Default workspace of the fixtures (default: the init directory's only workspace).",
        default="",
    )
    parser.addini(
        "tectonite_serve_args", "Extra arguments for `tectonite serve`.", type="args", default=[]
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{RESET_MARKER}: reset Tectonite to the init directory's state before the test.",
    )


def _init_dir(config: pytest.Config) -> Path | None:
    raw = os.environ.get("TECTONITE_INIT_DIR") or config.getini("tectonite_init_dir")
    if not raw:
        return None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    path = (base / raw).resolve()
    if not path.is_dir():
        raise pytest.UsageError(f"tectonite_init_dir {raw!r}: {path} is not a directory")
    return path


def _default_workspace(config: pytest.Config, init_dir: Path | None) -> str | None:
    configured = config.getini("tectonite_workspace")
    if configured:
        return str(configured)
    if init_dir is None:
        return None
    folders = [p.name for p in init_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return folders[0] if len(folders) == 1 else None


@pytest.fixture(scope="session")
def tectonite_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tectonite]:
    """The session's server: started from the init directory, or TECTONITE_URL's."""
    config = request.config
    init_dir = _init_dir(config)
    workspace = _default_workspace(config, init_dir)
    if os.environ.get("TECTONITE_URL"):
        server = connect(os.environ, init_dir, workspace)
    else:
        command = find_command()
        if command is None:
            raise pytest.UsageError(
                "pytest-tectonite: no `tectonite` command; install Tectonite (pipx install "
                "tectonite), set TECTONITE_COMMAND, or point TECTONITE_URL at a running server"
            )
        server = start(
            command,
            init_dir=init_dir,
            data_dir=tmp_path_factory.mktemp("tectonite") / "data",
            env={k: v for k, v in os.environ.items() if k == "DATABASE_URL"},
            extra_args=list(config.getini("tectonite_serve_args")),
            workspace=workspace,
        )
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def tectonite(request: pytest.FixtureRequest, tectonite_server: Tectonite) -> Tectonite:
    """The session's server; reset first when the test has the `tectonite_reset` marker."""
    if request.node.get_closest_marker(RESET_MARKER) is not None:
        tectonite_server.reset()
    return tectonite_server


@pytest.fixture
def tectonite_reset(tectonite_server: Tectonite) -> Tectonite:
    """Reset to the init directory's state before this test (same as the marker)."""
    tectonite_server.reset()
    return tectonite_server


@pytest.fixture
def tectonite_key(tectonite: Tectonite) -> Callable[..., str]:
    """`tectonite_key("editor", workspace="prod")`: a key with that role (made once)."""

    def make(role: str = "consumer", workspace: str | None = None) -> str:
        return tectonite.key(role, workspace)

    return make


@pytest.fixture
def tectonite_client(tectonite: Tectonite) -> Any:
    """A `TectonClient` on the server with a consumer key, on the default workspace."""
    return tectonite.client()


@pytest.fixture
def tectonite_clock(tectonite: Tectonite) -> Clock:
    return tectonite.clock


@pytest.fixture
def tectonite_faults(tectonite: Tectonite) -> Iterator[Faults]:
    """Fault rules; the ones a test adds are removed after it."""
    faults = tectonite.faults
    yield faults
    faults.clear()


@pytest.fixture
def tectonite_journal(tectonite: Tectonite) -> Journal:
    return tectonite.journal
