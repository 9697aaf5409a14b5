"""Console fixtures: the fraud example in two workspaces and keys with different roles."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.repo.helpers import copy_example
from tests.serving.conftest import seed_fraud


@dataclass(frozen=True)
class Keys:
    admin: str
    prod_consumer: str  # consumer on `prod` only
    staging_viewer: str  # viewer on `staging` only


def _key(runner, *args: str) -> str:
    return runner.ok("api-key", "create", "--description", "console test", *args).stdout.strip()


def make_keys(runner) -> Keys:
    return Keys(
        admin=_key(runner, "--admin"),
        prod_consumer=_key(runner, "--workspace", "prod"),
        staging_viewer=_key(runner, "--workspace", "staging", "--role", "viewer"),
    )


@pytest.fixture
def keys(runner, database, tmp_path) -> Keys:
    """prod (live) and staging (development) with the fraud repository, and three keys."""
    seed_fraud(runner, database, tmp_path / "prod", "prod")
    seed_staging(runner, tmp_path / "staging")
    return make_keys(runner)


def seed_staging(runner, directory) -> None:
    """A development workspace holding the same definitions and no values."""
    runner.ok("workspace", "create", "staging", "--development")
    runner.ok("apply", "-f", str(copy_example(directory)), "--workspace", "staging", "--yes")


@pytest.fixture
def client(app):
    return app.test_client()
