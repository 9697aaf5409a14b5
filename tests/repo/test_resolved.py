"""The serving schema of a feature service: Tecton's order, types, keys, and its cache."""

import os
import subprocess
import sys
import threading

import pytest

from app import changes
from app.serving import SERVING
from app.serving.cache import ServiceCache
from app.serving.model import resolve_service
from tests.repo.helpers import MINIMAL, copy_example, write_repo

SERVICE = "fraud_detection_feature_service"


@pytest.fixture
def fraud(runner, tmp_path):
    runner.ok("workspace", "create", "prod")
    runner.ok("apply", "-f", str(copy_example(tmp_path)), "--workspace", "prod", "--yes")


def test_order_is_realtime_first_then_views_alphabetically(fraud, database):
    with database.session() as session:
        resolved = resolve_service(session, "prod", SERVICE)
    assert [f.name for f in resolved.features] == [
        "transaction_amount_is_higher_than_average.transaction_amount_is_higher_than_average",
        "merchant_fraud_rate.is_fraud_mean_1d_1d",
        "merchant_fraud_rate.is_fraud_mean_30d_1d",
        "merchant_fraud_rate.is_fraud_mean_90d_1d",
        "user_last_transaction.amt",
        "user_profile.credit_score",
        "user_profile.home_location",
        "user_profile.is_verified",
        "user_profile.segment",
        "user_transaction_amount_metrics.amt_mean_1d_10m",
        "user_transaction_amount_metrics.amt_mean_3d_10m",
        "user_transaction_amount_metrics.amt_sum_1d_10m",
        "user_transaction_amount_metrics.amt_sum_3d_10m",
        "user_transaction_counts.transaction_count_1d_1d",
        "user_transaction_counts.transaction_count_30d_1d",
        "user_transaction_counts.transaction_id_last_3_1d_1d",
    ]


def test_types_keys_and_metadata(fraud, database):
    with database.session() as session:
        resolved = resolve_service(session, "prod", SERVICE)
    types = {f.name: f.data_type for f in resolved.features}
    assert types["user_profile.credit_score"] == {"type": "int64"}
    assert types["user_profile.is_verified"] == {"type": "boolean"}
    assert types["user_transaction_counts.transaction_id_last_3_1d_1d"] == {
        "type": "array",
        "elementType": {"type": "string"},
    }
    assert types["user_profile.home_location"] == {
        "type": "struct",
        "fields": [
            {"name": "lat", "dataType": {"type": "float64"}},
            {"name": "lng", "dataType": {"type": "float64"}},
        ],
    }
    assert [(k.name, k.data_type) for k in resolved.join_keys] == [
        ("user_id", {"type": "string"}),
        ("merchant", {"type": "string"}),
    ]
    assert [(k.name, k.data_type) for k in resolved.request_context_keys] == [
        ("amt", {"type": "float64"})
    ]
    amt = next(f for f in resolved.features if f.name == "user_last_transaction.amt")
    assert (amt.description, amt.tags) == ("Amount of the last transaction", {"team": "fraud"})
    assert resolved.servable
    # The realtime view reads its upstream view; both are one store read.
    metrics_reads = [r for r in resolved.reads if r.view_name == "user_transaction_amount_metrics"]
    assert len(metrics_reads) == 1
    assert resolved.realtime[0].inputs[1].read == resolved.reads.index(metrics_reads[0])


def test_namespace_subset_and_join_key_map(runner, tmp_path, database):
    runner.ok("workspace", "create", "prod")
    text = MINIMAL.replace(
        "features: [user_stats]",
        "features:\n      - user_stats\n"
        "      - {feature_view: user_stats, features: [score], namespace: sender, "
        "join_key_map: {user_id: sender_id}}",
    )
    runner.ok("apply", "-f", str(write_repo(tmp_path, text)), "--workspace", "prod", "--yes")
    with database.session() as session:
        resolved = resolve_service(session, "prod", "svc")
    assert [f.name for f in resolved.features] == [
        "sender.score",
        "user_stats.clicks",
        "user_stats.score",
    ]
    assert [k.name for k in resolved.join_keys] == ["user_id", "sender_id"]
    assert sorted(r.key_names for r in resolved.reads) == [("sender_id",), ("user_id",)]


def test_unknown_service_and_non_servable_services(runner, tmp_path, database):
    runner.ok("workspace", "create", "dev", "--development")
    path = write_repo(tmp_path, MINIMAL)
    runner.ok("apply", "-f", str(path), "--workspace", "dev", "--yes")
    with database.session() as session:
        assert resolve_service(session, "dev", "nope") is None
        assert resolve_service(session, "dev", "svc").servable is False
    runner.ok("workspace", "create", "prod")
    write_repo(tmp_path, MINIMAL + "    online_serving_enabled: false\n")
    runner.ok("apply", "-f", str(path), "--workspace", "prod", "--yes")
    with database.session() as session:
        assert resolve_service(session, "prod", "svc").servable is False


def test_cache_is_invalidated_when_the_workspace_changes(app, runner, tmp_path, database):
    service_cache = SERVING.get(app).services
    runner.ok("workspace", "create", "prod")
    path = write_repo(tmp_path, MINIMAL)
    runner.ok("apply", "-f", str(path), "--workspace", "prod", "--yes")
    first = service_cache.get(database.session, "prod", "svc")
    assert service_cache.get(database.session, "prod", "svc") is first  # cached
    write_repo(
        tmp_path, MINIMAL.replace("{name: score, type: Float64}", "{name: score, type: Int64}")
    )
    runner.ok("apply", "-f", str(path), "--workspace", "prod", "--yes")
    second = service_cache.get(database.session, "prod", "svc")
    assert second is not first
    assert second.features[1].data_type == {"type": "int64"}


def test_a_change_applied_by_another_process_reaches_this_one_within_a_second(
    settings, tmp_path, clean_database
):
    """`tectonite apply` runs as its own process; only LISTEN/NOTIFY can tell this one."""
    feed = changes.ChangeFeed()
    cache = ServiceCache(feed)
    dropped = threading.Event()

    def on_change(detail: str) -> None:
        if detail == "prod":
            dropped.set()

    feed.subscribe(changes.DEFINITIONS_TOPIC, on_change)
    listener = feed.start_listener(settings.libpq_url)
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    try:
        assert listener.connected.wait(10)
        cli = [sys.executable, "-m", "app.cli"]
        subprocess.run([*cli, "workspace", "create", "prod"], env=env, check=True)
        assert cache.get(clean_database.session, "prod", "svc") is None
        assert ("prod", "svc") in cache.unknown  # the miss is remembered (apart from services)
        dropped.clear()
        path = write_repo(tmp_path, MINIMAL)
        subprocess.run(
            [*cli, "apply", "-f", str(path), "--workspace", "prod", "--yes"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        assert dropped.wait(1.0)
        assert ("prod", "svc") not in cache.unknown
        assert cache.get(clean_database.session, "prod", "svc").name == "svc"
    finally:
        feed.stop_listener()
