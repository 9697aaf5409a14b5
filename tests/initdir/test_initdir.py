"""`tectonite import DIR` (the loader behind `serve --init`): state, idempotence, errors."""

from __future__ import annotations

import pytest
from flask import Flask

from app import create_app
from auth import store
from tests.initdir.helpers import features_body, fixed_key, fraud_init_dir

JOIN_KEYS = {"user_id": "user_1", "merchant": "fraud_Kirlin and Sons"}


def _client(settings, database) -> Flask:
    return create_app(settings, database=database).test_client()


def _features(client, key, workspace="prod", join_keys=None):
    return client.post(
        "/api/v1/feature-service/get-features",
        json=features_body(workspace, join_keys or JOIN_KEYS),
        headers={"Authorization": f"Tecton-key {key}"},
    )


def _stored(database):
    """Everything the store and the key tables hold, to compare before and after."""
    with database.session() as session:
        keys = sorted((k.id, k.description) for k in store.list_api_keys(session))
        accounts = len(store.list_service_accounts(session))
        rows = session.connection().exec_driver_sql(
            "SELECT feature_view_id, entity_key, event_time, features::text FROM online_values"
            " UNION ALL SELECT feature_view_id, entity_key, tile_start, partials::text"
            " FROM aggregation_tiles ORDER BY 1, 2, 3"
        )
        return keys, accounts, rows.all()


def test_import_loads_definitions_values_and_fixed_keys(runner, settings, database, tmp_path):
    key = fixed_key()
    init = fraud_init_dir(
        tmp_path, keys=f"- {{description: ci model, role: consumer, workspace: prod, key: {key}}}\n"
    )
    runner.ok("clock", "freeze", "2026-12-01T00:00:00Z")  # the example's events' "now"
    result = runner.ok("import", str(init))
    assert "applied prod" in result.stdout
    assert "read 19 rows, wrote 19" in result.stdout
    response = _features(_client(settings, database), key)
    assert response.status_code == 200, response.json
    names = [f["name"] for f in response.json["metadata"]["features"]]
    values = dict(zip(names, response.json["result"]["features"], strict=True))
    assert values["user_profile.credit_score"] == "775"
    assert values["merchant_fraud_rate.is_fraud_mean_90d_1d"] == 0.0101
    # Aggregates of data/'s events at 2026-12-01T00:00:00Z, by hand: the 1-day windows hold
    # 11-30's two transactions, the 3-day window 11-28's to 11-30's four, the 30-day all four.
    assert values["user_transaction_amount_metrics.amt_sum_1d_10m"] == 52.25
    assert values["user_transaction_amount_metrics.amt_mean_1d_10m"] == 26.125
    assert values["user_transaction_amount_metrics.amt_sum_3d_10m"] == 197.75
    assert values["user_transaction_amount_metrics.amt_mean_3d_10m"] == 49.4375
    assert values["user_transaction_counts.transaction_count_1d_1d"] == "2"
    assert values["user_transaction_counts.transaction_count_30d_1d"] == "4"
    assert values["user_transaction_counts.transaction_id_last_3_1d_1d"] == [
        "43a9799c961de6ebb22c122d8c7eb340",
        "5f2b6e1c0a9d4e7f8b3c2a1d0e9f8a7b",
    ]
    times = {f["name"]: f.get("effectiveTime") for f in response.json["metadata"]["features"]}
    assert times["user_transaction_amount_metrics.amt_sum_1d_10m"] == "2026-11-30T23:50:00Z"
    assert times["user_transaction_counts.transaction_count_1d_1d"] == "2026-11-30T00:00:00Z"
    third = _features(_client(settings, database), key, join_keys={"user_id": "user_3",
                                                                  "merchant": "m"})  # fmt: skip
    named = dict(zip(names, third.json["result"]["features"], strict=True))
    assert named["user_transaction_amount_metrics.amt_sum_3d_10m"] is None  # 11-26: too old
    assert named["user_transaction_counts.transaction_count_30d_1d"] == "1"
    # The key is consumer on prod only: another workspace's service is forbidden.
    with database.session() as session:
        (stored,) = store.list_api_keys(session)
        assert stored.id == key[6:38]


def test_importing_again_changes_nothing(runner, database, tmp_path):
    init = fraud_init_dir(
        tmp_path,
        keys=(
            f"- {{description: fixed, role: consumer, key: {fixed_key()}}}\n"
            "- {description: generated, role: editor, workspace: prod}\n"
            "- {description: operator, role: admin}\n"
        ),
    )
    first = runner.ok("import", str(init))
    assert first.stdout.count("tecto_") == 2  # the two generated keys, shown once
    before = _stored(database)
    second = runner.ok("import", str(init))
    assert "unchanged prod" in second.stdout
    assert "0 key(s) created" in second.stdout
    assert "tecto_" not in second.stdout
    assert _stored(database) == before


def test_newer_values_survive_a_restart_with_the_same_directory(runner, database, tmp_path):
    init = fraud_init_dir(tmp_path)
    runner.ok("clock", "freeze", "2026-12-01T00:00:00Z")
    runner.ok("import", str(init))
    newer = tmp_path / "newer.csv"
    newer.write_text(
        "user_id,timestamp,credit_score,home_location,is_verified,segment\n"
        'user_1,2026-11-30T00:00:00Z,801,"{""lat"": 1, ""lng"": 2}",true,gold\n'
    )
    runner.ok("ingest", "--workspace", "prod", "--feature-view", "user_profile", str(newer))
    before = _stored(database)
    result = runner.ok("import", str(init))
    # user_1's profile row is older than the stored one; events are not loaded twice.
    assert "read 5 rows, wrote 4" in result.stdout
    assert "events kept (already loaded) in prod/user_transaction_amount_metrics" in result.stdout
    assert _stored(database) == before


def test_a_changed_key_role_is_applied_without_a_new_key(runner, database, tmp_path):
    init = fraud_init_dir(tmp_path, keys="- {description: svc, role: consumer}\n")
    runner.ok("import", str(init))
    (init / "keys.yaml").write_text("- {description: svc, role: editor, workspace: prod}\n")
    runner.ok("import", str(init))
    with database.session() as session:
        (key,) = store.list_api_keys(session)
        bindings = store.list_role_bindings(session, key.service_account_id)
        assert [(b.role, b.workspace) for b in bindings] == [("editor", "prod")]


def test_workspace_yaml_makes_a_development_workspace(runner, tmp_path):
    init = fraud_init_dir(tmp_path)
    (init / "prod" / "workspace.yaml").write_text("live: false\n")
    runner.ok("import", str(init))
    listed = runner.ok("workspace", "list", "--json").stdout
    assert '"live": false' in listed.replace("False", "false")


@pytest.mark.parametrize(
    ("keys", "line", "message"),
    [
        ("- {description: a, role: consumer}\n- {description: b, role: king}\n", 2, "`role`"),
        ("- {description: a, role: consumer, key: tecto_nope}\n", 1, "not a valid Tectonite"),
        ("- {description: a, role: admin, workspace: prod}\n", 1, "cluster-wide"),
        ("- {role: consumer}\n", 1, "`description` is required"),
        ("- {description: a, role: consumer}\n- {description: a, role: viewer}\n", 2, "line 1"),
    ],
)
def test_bad_keys_file_names_file_and_line_and_changes_nothing(
    runner, database, tmp_path, keys, line, message
):
    init = fraud_init_dir(tmp_path, keys=keys)
    result = runner.invoke("import", str(init))
    assert result.exit_code == 1
    assert f"{init / 'keys.yaml'}:{line}: " in result.stderr
    assert message in result.stderr
    assert "prod" not in runner.ok("workspace", "list", "--json").stdout


def test_a_fixed_key_with_a_wrong_checksum_is_refused(runner, tmp_path):
    key = fixed_key()
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    init = fraud_init_dir(tmp_path, keys=f"- {{description: a, role: viewer, key: {tampered}}}\n")
    result = runner.invoke("import", str(init))
    assert result.exit_code == 1
    assert "checksum mismatch" in result.stderr


def test_a_fixed_key_whose_id_is_taken_is_refused(runner, database, tmp_path):
    key = fixed_key()
    init = fraud_init_dir(tmp_path, keys=f"- {{description: one, role: viewer, key: {key}}}\n")
    runner.ok("import", str(init))
    (init / "keys.yaml").write_text(f"- {{description: two, role: viewer, key: {key}}}\n")
    result = runner.invoke("import", str(init))
    assert result.exit_code == 1
    assert f"{init / 'keys.yaml'}:1: the key's id" in result.stderr
    assert "belongs to another stored key ('one')" in result.stderr


def test_a_bad_data_row_names_file_and_line_and_changes_nothing(runner, database, tmp_path):
    init = fraud_init_dir(tmp_path)
    path = init / "prod" / "data" / "user_profile.csv"
    path.write_text(path.read_text() + "user_3,2026-11-01T00:00:00Z,many,,true,x\n")
    result = runner.invoke("import", str(init))
    assert result.exit_code == 1
    assert f"{path}: line 5: column `credit_score`" in result.stderr
    assert "prod" not in runner.ok("workspace", "list", "--json").stdout
    assert _stored(database)[2] == []


def test_a_data_file_for_an_unknown_view_is_refused(runner, tmp_path):
    init = fraud_init_dir(tmp_path)
    (init / "prod" / "data" / "user_profil.jsonl").write_text("{}\n")
    result = runner.invoke("import", str(init))
    assert result.exit_code == 1
    assert 'user_profil.jsonl: feature view "user_profil" does not exist' in result.stderr


def test_a_bad_definition_names_file_and_line(runner, tmp_path):
    init = fraud_init_dir(tmp_path)
    definitions = init / "prod" / "features.yaml"
    text = definitions.read_text().replace("type: Int64, tags", "type: Int65, tags")
    definitions.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "- name: user_profile" in t)
    result = runner.invoke("import", str(init))
    assert result.exit_code == 1
    assert f"{definitions}:{line}: feature view 'user_profile': features[0].type" in result.stderr


def test_invalid_yaml_names_the_line(runner, tmp_path):
    init = fraud_init_dir(tmp_path)
    (init / "prod" / "workspace.yaml").write_text("live: true\n  oops: [\n")
    result = runner.invoke("import", str(init))
    assert result.exit_code == 1
    assert f"{init / 'prod' / 'workspace.yaml'}:2: not valid YAML" in result.stderr


def test_a_folder_without_definitions_is_refused(runner, tmp_path):
    init = fraud_init_dir(tmp_path)
    (init / "staging").mkdir()
    (init / ".cache").mkdir()  # hidden folders are skipped
    result = runner.invoke("import", str(init))
    assert result.exit_code == 1
    assert f"{init / 'staging'}: every workspace folder needs a features.yaml" in result.stderr
