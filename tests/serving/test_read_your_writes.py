"""An acknowledged ingest is served by the very next get-features, from any server process."""

from datetime import UTC, datetime, timedelta

import httpx

from tests.serving.conftest import SERVICE


def test_next_get_features_sees_each_acknowledged_write(live, committed_runner):
    server, consumer = live
    editor = committed_runner.ok(
        "api-key", "create", "--description", "writer", "--workspace", "prod", "--role", "editor"
    ).stdout.strip()
    read_body = {"params": {"workspaceName": "prod", "featureServiceName": SERVICE,
                            "joinKeyMap": {"user_id": "user_9", "merchant": "m1"},
                            "requestContextMap": {"amt": 1.0},
                            "metadataOptions": {"includeNames": True}}}  # fmt: skip
    started = datetime.now(UTC)
    for step in range(20):
        amount = 10.0 + step
        record = {"user_id": "user_9", "merchant": "m1", "amt": amount,
                  "timestamp": (started + timedelta(seconds=step)).isoformat()}  # fmt: skip
        # New connections each time, so consecutive requests land on either worker process.
        ack = httpx.post(
            f"{server.base_url}/ingest",
            json={"workspace_name": "prod", "dry_run": False,
                  "records": {"transactions": [{"record": record}]}},
            headers={"Authorization": f"Tecton-key {editor}"},
            timeout=10,
        )  # fmt: skip
        assert ack.status_code == 200, ack.text
        read = httpx.post(
            f"{server.api_url}/v1/feature-service/get-features",
            json=read_body,
            headers={"Authorization": f"Tecton-key {consumer}"},
            timeout=10,
        ).json()
        names = [item["name"] for item in read["metadata"]["features"]]
        assert read["result"]["features"][names.index("user_last_transaction.amt")] == amount
