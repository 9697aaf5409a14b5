"""`tectonite export` writes an init directory that `import` loads back to the same responses."""

from __future__ import annotations

import itertools

import orjson
import yaml

from app import create_app
from tests.initdir.helpers import features_body, fixed_key, fraud_init_dir

USERS = ["user_1", "user_2", "user_3", "user_nobody"]
MERCHANTS = ["fraud_Kirlin and Sons", "fraud_Sporer-Keebler", "m_nan", "m_nobody"]


def _responses(settings, database, key) -> dict[tuple[str, str], bytes]:
    """Every entity's get-features body (sloInfo aside), as raw bytes."""
    client = create_app(settings, database=database).test_client()
    out = {}
    for user, merchant in itertools.product(USERS, MERCHANTS):
        body = features_body("prod", {"user_id": user, "merchant": merchant})
        body["params"]["metadataOptions"]["includeSloInfo"] = True
        response = client.post(
            "/api/v1/feature-service/get-features",
            json=body,
            headers={"Authorization": f"Tecton-key {key}"},
        )
        assert response.status_code == 200, response.json
        assert "sloInfo" in response.json["metadata"]
        raw = response.get_data()
        # Drop only the sloInfo object; everything else is compared byte for byte.
        start = raw.index(b'"sloInfo":')
        end = raw.index(b"}", start) + 1
        out[(user, merchant)] = raw[:start] + raw[end:]
    return out


def test_export_reset_import_gives_byte_identical_responses(runner, settings, database, tmp_path):
    key = fixed_key()
    init = fraud_init_dir(tmp_path, keys=f"- {{description: k, role: consumer, key: {key}}}\n")
    with (init / "prod" / "data" / "merchant_fraud_rate.csv").open("a") as rates:
        rates.write("m_nan,2026-11-20T00:00:00.123456Z,NaN,-Infinity,1e300\n")
    # The example's events are read at a fixed "now" (see examples/fraud/features.yaml).
    runner.ok("clock", "freeze", "2026-12-01T00:00:00Z")
    runner.ok("import", str(init))
    before = _responses(settings, database, key)
    assert b"197.75" in before[("user_1", "m_nobody")]  # user_1's 3-day sum of amounts

    exported = tmp_path / "exported"
    result = runner.ok("export", "--workspace", "prod", str(exported))
    assert "5 view(s), 20 row(s)" in result.stdout
    written = sorted(p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file())
    assert written == [
        "prod/data/merchant_fraud_rate.jsonl",
        "prod/data/user_last_transaction.jsonl",
        "prod/data/user_profile.jsonl",
        "prod/data/user_transaction_amount_metrics.jsonl",
        "prod/data/user_transaction_counts.jsonl",
        "prod/features.yaml",
        "prod/transforms.py",
    ]
    assert "keys.yaml" not in written  # keys are never exported
    assert (exported / "prod" / "transforms.py").read_text() == (
        init / "prod" / "transforms.py"
    ).read_text()
    rows = [
        orjson.loads(line)
        for line in (exported / "prod/data/merchant_fraud_rate.jsonl").read_text().splitlines()
    ]
    assert rows[-1] == {
        "merchant": "m_nan",
        "timestamp": "2026-11-20T00:00:00.123456Z",
        "is_fraud_mean_1d_1d": "NaN",
        "is_fraud_mean_30d_1d": "-Infinity",
        "is_fraud_mean_90d_1d": 1e300,
    }

    events = (exported / "prod/data/user_transaction_counts.jsonl").read_text().splitlines()
    assert len(events) == 7
    assert orjson.loads(events[0]) == {
        "user_id": "user_1",
        "timestamp": "2026-11-28T09:12:00Z",
        "transaction_id": "892054b9598370dce846bb6e4b5805a1",
    }
    # Each aggregate view's file holds the columns its features read.
    amounts = (exported / "prod/data/user_transaction_amount_metrics.jsonl").read_text()
    assert orjson.loads(amounts.splitlines()[0]) == {
        "user_id": "user_1",
        "timestamp": "2026-11-28T09:12:00Z",
        "amt": 25.5,
    }

    # The regenerated definitions describe exactly what is stored: importing them is a no-op.
    assert "unchanged prod" in runner.ok("import", str(exported)).stdout

    runner.ok("workspace", "delete", "prod", "--yes")
    assert "applied prod" in runner.ok("import", str(exported)).stdout
    assert _responses(settings, database, key) == before


def test_export_keeps_development_workspaces_and_service_options(runner, tmp_path):
    init = fraud_init_dir(tmp_path)
    (init / "prod" / "workspace.yaml").write_text("live: false\n")
    definitions = init / "prod" / "features.yaml"
    text = definitions.read_text().replace(
        "  - name: fraud_detection_feature_service\n",
        "  - name: fraud_detection_feature_service\n    online_serving_enabled: false\n",
    ) + (
        "  - name: partial\n    features:\n      - {feature_view: user_profile, features: "
        "[segment], namespace: profile, join_key_map: {user_id: sender_id}}\n"
    )
    definitions.write_text(text)
    runner.ok("import", str(init))
    exported = tmp_path / "exported"
    runner.ok("export", "--workspace", "prod", str(exported))
    assert (exported / "prod" / "workspace.yaml").read_text() == "live: false\n"
    document = yaml.safe_load((exported / "prod" / "features.yaml").read_text())
    services = {s["name"]: s for s in document["feature_services"]}
    assert services["fraud_detection_feature_service"]["online_serving_enabled"] is False
    assert services["partial"]["features"] == [
        {
            "feature_view": "user_profile",
            "features": ["segment"],
            "namespace": "profile",
            "join_key_map": {"user_id": "sender_id"},
        }
    ]
    assert "unchanged prod" in runner.ok("import", str(exported)).stdout


def test_export_of_an_unknown_workspace_fails(runner, tmp_path):
    result = runner.invoke("export", "--workspace", "nope", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert 'Workspace "nope" not found.' in result.stderr
