"""`tectonite mirror` against a real Tectonite server standing in for a Tecton cluster."""

from __future__ import annotations

import httpx
import orjson
import pytest
import yaml
from tecton_client import MetadataOptions, TectonClient

from tests.conftest import start_server
from tests.initdir.helpers import SERVICE, fixed_key, fraud_init_dir


def _metadata(server, key):
    with httpx.Client() as http:
        client = TectonClient(server.base_url, key, default_workspace_name="prod", client=http)
        return client.get_feature_service_metadata(feature_service_name=SERVICE)


@pytest.fixture
def cluster(new_database, tmp_path):
    """A server holding examples/fraud, standing in for the cluster; (server, key)."""
    key = fixed_key()
    init = fraud_init_dir(
        tmp_path / "cluster", keys=f"- {{description: ci, role: viewer, key: {key}}}\n"
    )
    server = start_server({"DATABASE_URL": new_database(), "WEB_CONCURRENCY": "1"}, "--init",
                          str(init))  # fmt: skip
    yield server, key
    server.stop()


def test_mirrored_directory_serves_the_same_metadata(cluster, runner, new_database, tmp_path):
    server, key = cluster
    mirrored = tmp_path / "mirrored"
    args = ["--url", server.base_url, "--api-key", key, "--workspace", "prod", "--service", SERVICE]
    result = runner.ok("mirror", *args, "--rows", "5", "--seed", "7", str(mirrored))
    assert f"tectonite serve --init {mirrored}" in result.stdout

    document = yaml.safe_load((mirrored / "prod" / "features.yaml").read_text())
    assert [v["name"] for v in document["realtime_feature_views"]] == [
        "transaction_amount_is_higher_than_average"
    ]
    rows = (mirrored / "prod" / "data" / "user_profile.jsonl").read_text().splitlines()
    assert len(rows) == 5
    first = orjson.loads(rows[0])
    assert first["user_id"] == "user_id_1"
    assert first["merchant"] == "merchant_1"
    assert isinstance(first["credit_score"], int)
    assert set(first["home_location"]) == {"lat", "lng"}

    # Deterministic with --seed; another seed gives other values.
    again = tmp_path / "again"
    runner.ok("mirror", *args, "--rows", "5", "--seed", "7", str(again))
    other = tmp_path / "other"
    runner.ok("mirror", *args, "--rows", "5", "--seed", "8", str(other))
    files = sorted(p.relative_to(mirrored) for p in mirrored.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for path in files:
        assert (mirrored / path).read_bytes() == (again / path).read_bytes()
    profile = "prod/data/user_profile.jsonl"
    assert (mirrored / profile).read_bytes() != (other / profile).read_bytes()

    mirror_key = fixed_key()
    (mirrored / "keys.yaml").write_text(
        f"- {{description: ci, role: consumer, key: {mirror_key}}}\n"
    )
    copy = start_server({"DATABASE_URL": new_database(), "WEB_CONCURRENCY": "1"}, "--init",
                        str(mirrored))  # fmt: skip
    try:
        original = _metadata(server, key)
        assert len(original.feature_values) == 16
        assert [k["name"] for k in original.input_request_context_keys] == ["amt"]
        assert _metadata(copy, mirror_key) == original  # the client's dataclass, field by field
        with httpx.Client() as http:
            client = TectonClient(copy.base_url, mirror_key, default_workspace_name="prod",
                                  client=http)  # fmt: skip
            response = client.get_features(
                feature_service_name=SERVICE,
                join_key_map={"user_id": "user_id_3", "merchant": "merchant_3"},
                request_context_map={"amt": 1.0},
                metadata_options=MetadataOptions(
                    include_names=True, include_data_types=True, include_serving_status=True
                ),
            )
        statuses = {f["name"]: f["status"] for f in response.metadata["features"]}
        assert set(statuses.values()) == {"PRESENT"}, statuses
        assert None not in response.get_features_dict().values()
    finally:
        copy.stop()


def test_mirror_reports_the_clusters_error(cluster, runner, tmp_path):
    server, _ = cluster
    result = runner.invoke(
        "mirror", "--url", server.base_url, "--api-key", fixed_key(), "--workspace", "prod",
        "--service", SERVICE, str(tmp_path / "out"),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "the cluster answered 401" in result.stderr
    assert not (tmp_path / "out").exists()
