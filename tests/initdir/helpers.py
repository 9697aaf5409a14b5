"""Init directories for tests: the fraud example laid out as `DIR/prod/…`."""

from __future__ import annotations

import shutil
from pathlib import Path

from auth.keys import generate_key

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "fraud"
SERVICE = "fraud_detection_feature_service"


def fraud_init_dir(root: Path, workspace: str = "prod", keys: str | None = None) -> Path:
    """`root/init/<workspace>/` holding examples/fraud (definitions, transforms, data)."""
    init = root / "init"
    shutil.copytree(EXAMPLE_DIR, init / workspace)
    if keys is not None:
        (init / "keys.yaml").write_text(keys)
    return init


def fixed_key() -> str:
    return generate_key().key


def features_body(workspace: str, join_keys: dict[str, str], amt: float = 100.0) -> dict:
    return {
        "params": {
            "workspaceName": workspace,
            "featureServiceName": SERVICE,
            "joinKeyMap": join_keys,
            "requestContextMap": {"amt": amt},
            "metadataOptions": {
                "includeNames": True,
                "includeDataTypes": True,
                "includeEffectiveTimes": True,
                "includeServingStatus": True,
                "includeFeatureDescriptions": True,
                "includeFeatureTags": True,
            },
        }
    }
