"""Building definitions files for tests."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "fraud"
# The fraud service with every view plain (values written directly, no aggregations): the
# serving, console and hardening tests store exact values into it. examples/fraud is the same
# service with real aggregations (tests/initdir and the README examples use it).
PLAIN_FRAUD_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "fraud_plain"

MINIMAL = """
entities:
  - name: user
    join_keys: [{name: user_id, type: String}]
feature_views:
  - name: user_stats
    entities: [user]
    ttl: 1d
    features:
      - {name: clicks, type: Int64}
      - {name: score, type: Float64}
feature_services:
  - name: svc
    features: [user_stats]
"""


def write_repo(directory: Path, yaml_text: str, transforms: str | None = None) -> Path:
    """Write `features.yaml` (and `transforms.py`) into `directory`; return the YAML path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "features.yaml"
    path.write_text(textwrap.dedent(yaml_text))
    if transforms is not None:
        (directory / "transforms.py").write_text(textwrap.dedent(transforms))
    return path


def copy_example(directory: Path) -> Path:
    """A copy of the plain fraud fixture (tests may edit it); returns its features.yaml."""
    target = directory / "fraud"
    shutil.copytree(PLAIN_FRAUD_DIR, target)
    return target / "features.yaml"


def copy_aggregating_example(directory: Path) -> Path:
    """A copy of examples/fraud itself (aggregate views fed by `transactions`)."""
    target = directory / "fraud_example"
    shutil.copytree(EXAMPLE_DIR, target)
    return target / "features.yaml"
