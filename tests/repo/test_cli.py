"""workspace / plan / apply as a user runs them."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.models import Feature, FeatureService, FeatureView, Workspace
from app.store.tables import OnlineValue
from tests.repo.helpers import MINIMAL, copy_example, write_repo
from tests.serving.helpers import put_values


@pytest.fixture
def ws(runner):
    runner.ok("workspace", "create", "prod")
    return "prod"


def version(database, name="prod"):
    with database.session() as session:
        return session.scalar(select(Workspace.definitions_version).where(Workspace.name == name))


def test_workspace_create_list_delete(runner):
    assert (
        runner.ok("workspace", "create", "prod").output.strip() == 'Created live workspace "prod".'
    )
    runner.ok("workspace", "create", "scratch", "--development")
    listed = json.loads(runner.ok("workspace", "list", "--json").output)
    assert listed == [{"name": "prod", "live": True}, {"name": "scratch", "live": False}]
    text = runner.ok("workspace", "list").output
    assert text.index("prod") < text.index("Development Workspaces") < text.index("scratch")
    assert runner.invoke("workspace", "create", "prod").exit_code == 1

    refused = runner.invoke("workspace", "delete", "scratch", input="n\n")
    assert refused.exit_code == 1
    assert len(json.loads(runner.ok("workspace", "list", "--json").output)) == 2

    runner.ok("workspace", "delete", "scratch", "--yes")
    assert json.loads(runner.ok("workspace", "list", "--json").output) == [
        {"name": "prod", "live": True}
    ]
    missing = runner.invoke("workspace", "delete", "nope", "--yes")
    assert missing.exit_code == 1 and 'Workspace "nope" not found.' in missing.output


def test_plan_shows_creates_and_changes_nothing(runner, ws, tmp_path, database):
    path = write_repo(tmp_path, MINIMAL)
    output = runner.ok("plan", "-f", str(path), "--workspace", ws).output
    assert "+ Create Entity\n    name:            user" in output
    assert "+ Create FeatureView\n    name:            user_stats" in output
    assert "+ Create FeatureService\n    name:            svc" in output
    assert "Plan: 3 to create, 0 to update, 0 to delete." in output
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(FeatureView)) == 0
    assert version(database) == 0


def test_apply_then_apply_again_is_a_no_op(runner, ws, tmp_path, database):
    path = copy_example(tmp_path)
    first = runner.ok("apply", "-f", str(path), "--workspace", ws, "--yes").output
    assert 'Done! Applied changes to 10 objects in workspace "prod".' in first
    assert version(database) == 1
    second = runner.ok("apply", "-f", str(path), "--workspace", ws, "--yes").output
    assert "The remote and local state are the same, nothing to do!" in second
    assert "Done!" not in second
    assert version(database) == 1  # nothing written


def test_apply_asks_for_confirmation(runner, ws, tmp_path, database):
    path = write_repo(tmp_path, MINIMAL)
    declined = runner.invoke("apply", "-f", str(path), "--workspace", ws, input="n\n")
    assert declined.exit_code == 1
    assert 'Are you sure you want to apply this plan to: "prod"?' in declined.output
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(FeatureView)) == 0
    accepted = runner.invoke("apply", "-f", str(path), "--workspace", ws, input="y\n")
    assert accepted.exit_code == 0 and "Done!" in accepted.output


def test_update_shows_field_level_changes_and_keeps_values(runner, ws, tmp_path, database):
    path = write_repo(tmp_path, MINIMAL)
    runner.ok("apply", "-f", str(path), "--workspace", ws, "--yes")
    store_value(database, "user_stats")
    write_repo(
        tmp_path,
        MINIMAL.replace("ttl: 1d", "ttl: 7d").replace(
            "{name: score, type: Float64}",
            "{name: score, type: Float64, description: Model score}\n"
            "      - {name: views, type: Int64}",
        ),
    )
    output = runner.ok("plan", "-f", str(path), "--workspace", ws).output
    assert "~ Update FeatureView\n    name:            user_stats" in output
    assert "ttl:             1d -> 7d" in output
    assert "features:        + views (Int64)" in output
    assert "features:        ~ score description: (none) -> Model score" in output
    assert "Plan: 0 to create, 1 to update, 0 to delete." in output
    runner.ok("apply", "-f", str(path), "--workspace", ws, "--yes")
    with database.session() as session:
        view = session.scalars(select(FeatureView).where(FeatureView.name == "user_stats")).one()
        assert view.ttl_seconds == 7 * 86400
        assert [f.name for f in view.features] == ["clicks", "score", "views"]
        assert session.scalar(select(func.count()).select_from(OnlineValue)) == 1


def test_changing_a_feature_type_deletes_the_views_values(runner, ws, tmp_path, database):
    path = write_repo(tmp_path, MINIMAL)
    runner.ok("apply", "-f", str(path), "--workspace", ws, "--yes")
    store_value(database, "user_stats")
    write_repo(
        tmp_path, MINIMAL.replace("{name: clicks, type: Int64}", "{name: clicks, type: String}")
    )
    output = runner.ok("apply", "-f", str(path), "--workspace", ws, "--yes").output
    assert "features:        ~ clicks type: Int64 -> String" in output
    assert "(stored feature values of this view will be deleted)" in output
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(OnlineValue)) == 0


def test_removing_objects_deletes_them_and_their_values(runner, ws, tmp_path, database):
    path = copy_example(tmp_path)
    runner.ok("apply", "-f", str(path), "--workspace", ws, "--yes")
    store_value(database, "user_profile")
    reduced = (
        path.read_text()
        .split("feature_services:")[0]
        .replace(
            path.read_text()
            .split("  - name: user_profile")[1]
            .split("  - name: merchant_fraud_rate")[0],
            "",
        )
    )
    reduced = reduced.replace("  - name: user_profile", "")
    path.write_text(reduced)
    output = runner.ok("apply", "-f", str(path), "--workspace", ws, "--yes").output
    assert "- Delete FeatureService\n    name:            fraud_detection_feature_service" in output
    assert "- Delete FeatureView\n    name:            user_profile" in output
    assert output.index("Delete FeatureService") < output.index("Delete FeatureView")
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(FeatureService)) == 0
        names = set(session.scalars(select(FeatureView.name)))
        assert "user_profile" not in names and "user_transaction_counts" in names
        assert session.scalar(select(func.count()).select_from(OnlineValue)) == 0


def test_a_view_still_used_by_a_service_cannot_be_deleted(runner, ws, tmp_path, database):
    path = write_repo(tmp_path, MINIMAL)
    runner.ok("apply", "-f", str(path), "--workspace", ws, "--yes")
    without_view = (
        MINIMAL.split("feature_views:")[0]
        + MINIMAL.split("ttl: 1d")[1]
        .split("feature_services:", 1)[0]
        .replace(MINIMAL.split("ttl: 1d")[1].split("feature_services:", 1)[0], "")
        + "feature_services:"
        + MINIMAL.split("feature_services:")[1]
    )
    write_repo(tmp_path, without_view)
    result = runner.invoke("apply", "-f", str(path), "--workspace", ws, "--yes")
    assert result.exit_code == 1
    assert "feature service 'svc': features[0]: unknown feature view 'user_stats'" in result.output
    assert "nothing was applied" in result.output
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(FeatureView)) == 1


def test_invalid_file_applies_nothing_and_exits_non_zero(runner, ws, tmp_path, database):
    path = write_repo(tmp_path, MINIMAL.replace("type: Int64}", "type: Integer}"))
    result = runner.invoke("apply", "-f", str(path), "--workspace", ws, "--yes")
    assert result.exit_code == 1
    assert f"{path}: feature view 'user_stats': features[0].type: unknown type" in result.output
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Feature)) == 0


def test_apply_to_a_missing_workspace(runner, tmp_path):
    path = write_repo(tmp_path, MINIMAL)
    result = runner.invoke("apply", "-f", str(path), "--workspace", "nowhere", "--yes")
    assert result.exit_code == 1
    assert 'Workspace "nowhere" not found.' in result.output


def store_value(database, view_name):
    """One stored row for user u1, written as the writers do."""
    values = {"user_stats": {"clicks": 1}, "user_profile": {"credit_score": 700}}[view_name]
    put_values(database, "prod", view_name, ["u1"], datetime(2026, 1, 1, tzinfo=UTC), values)


AS_REALTIME = """
entities:
  - name: user
    join_keys: [{name: user_id, type: String}]
realtime_feature_views:
  - name: user_stats
    sources: [{request: req, schema: [{name: clicks, type: Int64}]}]
    features: [{name: doubled, type: Int64}]
    transform: transforms.py:double
feature_services:
  - name: svc
    features: [user_stats]
"""


def test_a_view_can_become_a_realtime_view_of_the_same_name(runner, ws, tmp_path, database):
    path = write_repo(tmp_path, MINIMAL)
    runner.ok("apply", "-f", str(path), "--workspace", ws, "--yes")
    store_value(database, "user_stats")
    write_repo(
        tmp_path, AS_REALTIME, "def double(req):\n    return {'doubled': 2 * req['clicks']}\n"
    )
    output = runner.ok("apply", "-f", str(path), "--workspace", ws, "--yes").output
    assert "+ Create RealtimeFeatureView\n    name:            user_stats" in output
    assert "- Delete FeatureView\n    name:            user_stats" in output
    with database.session() as session:
        view = session.scalars(select(FeatureView).where(FeatureView.name == "user_stats")).one()
        assert view.kind == "realtime"
        assert [f.name for f in view.features] == ["doubled"]
        assert view.entities == []
        assert session.scalar(select(func.count()).select_from(OnlineValue)) == 0
    # ... and back again.
    write_repo(tmp_path, MINIMAL)
    runner.ok("apply", "-f", str(path), "--workspace", ws, "--yes")
    with database.session() as session:
        view = session.scalars(select(FeatureView).where(FeatureView.name == "user_stats")).one()
        assert view.kind == "table" and view.transform_source is None
    assert "nothing to do" in runner.ok("plan", "-f", str(path), "--workspace", ws).output
