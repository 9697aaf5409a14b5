"""A live fraud workspace with values, and API keys, for serving tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.repo.helpers import copy_example
from tests.serving.helpers import put_values

SERVICE = "fraud_detection_feature_service"


def seed_fraud(runner, database, tmp_path, workspace: str = "prod") -> dict[str, datetime]:
    """Apply examples/fraud to `workspace` and store values for user_1 and one merchant."""
    runner.ok("workspace", "create", workspace)
    runner.ok("apply", "-f", str(copy_example(tmp_path)), "--workspace", workspace, "--yes")
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    put_values(database, workspace, "user_transaction_amount_metrics", ["user_1"], recent,
               {"amt_mean_1d_10m": 58.349395161290275, "amt_mean_3d_10m": 40.0,
                "amt_sum_1d_10m": 842.0, "amt_sum_3d_10m": 28941.299999999977})  # fmt: skip
    put_values(database, workspace, "user_transaction_counts", ["user_1"], recent,
               {"transaction_count_1d_1d": 3, "transaction_count_30d_1d": 669,
                "transaction_id_last_3_1d_1d": ["a1", "b2", None]})  # fmt: skip
    put_values(database, workspace, "user_profile", ["user_1"], recent,
               {"credit_score": 775, "home_location": {"lat": 37.5, "lng": -122.25},
                "is_verified": True, "segment": "premium"})  # fmt: skip
    put_values(database, workspace, "merchant_fraud_rate", ["m1"], recent,
               {"is_fraud_mean_1d_1d": 0.0, "is_fraud_mean_30d_1d": 0.25,
                "is_fraud_mean_90d_1d": float("nan")})  # fmt: skip
    # Older than the view's 30d ttl: served as MISSING_DATA.
    put_values(database, workspace, "user_last_transaction", ["user_1"],
               recent - timedelta(days=31), {"amt": 12.5})  # fmt: skip
    return {"recent": recent}


@pytest.fixture
def fraud(runner, database, tmp_path):
    return seed_fraud(runner, database, tmp_path)


@pytest.fixture
def consumer_key(runner, fraud):
    result = runner.ok("api-key", "create", "--description", "model", "--workspace", "prod")
    return result.stdout.strip()


@pytest.fixture
def auth(consumer_key):
    return {"Authorization": f"Tecton-key {consumer_key}"}


@pytest.fixture
def live(committed_runner, clean_database, tmp_path, server):
    """The session's real server with the fraud workspace committed; (server, consumer key)."""
    seed_fraud(committed_runner, clean_database, tmp_path)
    key = committed_runner.ok("api-key", "create", "--description", "e2e", "--workspace", "prod")
    return server, key.stdout.strip()
