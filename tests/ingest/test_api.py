"""The Stream Ingest API in-process: bodies, every error body and status, roles, dry runs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tests.ingest import apply_definitions, create_key, stored

FORBIDDEN = "Not Authorized. Note that access control changes may take up to 60 seconds to apply."


@pytest.fixture
def ws(runner, tmp_path):
    apply_definitions(runner, tmp_path)
    return "prod"


@pytest.fixture
def editor(runner, ws):
    return create_key(runner, "editor")


def recent(hours: float = 1) -> datetime:
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=123456)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(user="u1", merchant="42", amount=12.5, clicks=3, tags=("a",), ts=None):
    return {
        "user_id": user,
        "merchant_id": merchant,
        "amount": amount,
        "clicks": clicks,
        "tags": list(tags),
        "ts": ts or iso(recent()),
    }


def body(records, *, dry_run=False, workspace="prod", source="events", camel=False):
    entries = [{"record": r} for r in records]
    if camel:
        return {"workspaceName": workspace, "dryRun": dry_run, "records": {source: entries}}
    return {"workspace_name": workspace, "dry_run": dry_run, "records": {source: entries}}


def post(client, payload, key=None, path="/ingest"):
    headers = {"Authorization": f"Tecton-key {key}"} if key else {}
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return client.post(path, data=data, headers=headers)


def request_error(message):
    return {"requestError": {"errorMessage": message, "errorType": "RequestValidationError"}}


def record_error(message, view="user_events", source="events"):
    return {
        "featureViewName": view,
        "pushSourceName": source,
        "errorType": "TectonObjectValidationError",
        "errorMessage": message,
    }


# ----------------------------------------------------------------------------- happy path


def test_ingest_writes_every_online_view_of_the_source(client, database, editor):
    moment = recent()
    records = [event("u1", "042", 12.5, 3, ts=iso(moment)), event("u2", 7, 2.0, "9", ("x", "y"))]
    response = post(client, body(records), editor)

    assert response.status_code == 200, response.json
    assert response.json["workspaceName"] == "prod"
    metrics = response.json["ingestMetrics"]["featureViewIngestMetrics"]
    assert [(m["featureViewName"], m["onlineRecordIngestCount"]) for m in metrics] == [
        ("user_events", "2"),
        ("user_merchant_events", "2"),
    ]
    assert all(re.fullmatch(r"[0-9a-f]{32}", m["featureViewId"]) for m in metrics)
    assert all(
        set(m) == {"featureViewName", "onlineRecordIngestCount", "featureViewId"} for m in metrics
    )

    assert stored(database, "user_events") == {
        '["u1"]': (iso(moment), {"amount": 12.5, "clicks": "3", "tags": ["a"]}),
        '["u2"]': (records[1]["ts"], {"amount": 2, "clicks": "9", "tags": ["x", "y"]}),
    }
    # Int64 join keys are stored in canonical form; the offline view gets nothing.
    assert set(stored(database, "user_merchant_events")) == {'["u1","42"]', '["u2","7"]'}
    assert stored(database, "user_events_offline") == {}


def test_feature_view_ids_are_stable(client, editor):
    first = post(client, body([event()]), editor).json
    second = post(client, body([event()]), editor).json
    assert first["ingestMetrics"] == second["ingestMetrics"]


@pytest.mark.parametrize("path", ["/ingest", "/v2/ingest"])
@pytest.mark.parametrize("camel", [False, True])
def test_both_paths_accept_both_spellings(client, database, editor, path, camel):
    response = post(client, body([event()], camel=camel), editor, path=path)
    assert response.status_code == 200, response.json
    assert response.json["workspaceName"] == "prod"
    assert '["u1"]' in stored(database, "user_events")


def test_every_iso_8601_form_is_accepted(client, database, editor):
    base = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    plus_two = base.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=2)
    forms = {
        "minutes": (base.strftime("%Y-%m-%dT%H:%MZ"), base),
        "seconds_no_zone": (base.strftime("%Y-%m-%dT%H:%M:07"), base.replace(second=7)),
        "millis": (base.strftime("%Y-%m-%dT%H:%M:%S.250Z"), base.replace(microsecond=250000)),
        "nanos": (base.strftime("%Y-%m-%dT%H:%M:%S.123456789Z"), base.replace(microsecond=123456)),
        "offset": (plus_two.strftime("%Y-%m-%dT%H:%M:%S+02:00"), base),
        "negative_offset": (
            (base.replace(tzinfo=None) - timedelta(hours=5, minutes=30)).strftime(
                "%Y-%m-%dT%H:%M:%S-05:30"
            ),
            base,
        ),
    }
    records = [event(user=name, ts=text) for name, (text, _) in forms.items()]
    response = post(client, body(records), editor)
    assert response.status_code == 200, response.json
    values = stored(database, "user_events")
    for name, (_, expected) in forms.items():
        assert values[f'["{name}"]'][0] == iso(expected), name


def test_int64_limits_and_nulls(client, database, editor):
    records = [
        event("max", clicks="9223372036854775807", amount=None, tags=()),
        event("min", clicks=-(2**63)),
    ]
    records[0]["tags"] = None
    response = post(client, body(records), editor)
    assert response.status_code == 200, response.json
    values = stored(database, "user_events")
    assert values['["max"]'][1] == {"amount": None, "clicks": "9223372036854775807", "tags": None}
    assert values['["min"]'][1]["clicks"] == "-9223372036854775808"


def test_empty_records_is_a_no_op(client, editor):
    response = post(client, {"workspace_name": "prod", "dry_run": False, "records": {}}, editor)
    assert response.status_code == 200
    assert response.json == {
        "workspaceName": "prod",
        "ingestMetrics": {"featureViewIngestMetrics": []},
    }


# ----------------------------------------------------------------------------- dry run and roles


def test_dry_run_validates_reports_counts_and_writes_nothing(client, database, runner, ws):
    viewer = create_key(runner, "viewer")
    response = post(client, body([event(), event("u2")], dry_run=True), viewer)
    assert response.status_code == 200, response.json
    counts = [
        m["onlineRecordIngestCount"]
        for m in response.json["ingestMetrics"]["featureViewIngestMetrics"]
    ]
    assert counts == ["2", "2"]
    assert stored(database, "user_events") == {}

    bad = post(client, body([event(clicks="many")], dry_run=True), viewer)
    assert bad.status_code == 400
    assert bad.json["recordErrors"][0]["errorMessage"] == (
        "record 0: column `clicks`: expected an integer, got 'many'"
    )


@pytest.mark.parametrize("role", ["viewer", "consumer"])
def test_writing_needs_the_editor_role(client, database, runner, ws, role):
    key = create_key(runner, role)
    response = post(client, body([event()]), key)
    assert response.status_code == 403
    assert response.json == {"error": FORBIDDEN, "code": 7, "message": FORBIDDEN}
    assert stored(database, "user_events") == {}


@pytest.mark.parametrize("role", ["editor", "owner"])
def test_editor_and_owner_may_write(client, runner, ws, role):
    assert post(client, body([event()]), create_key(runner, role)).status_code == 200


def test_missing_or_invalid_key_is_401(client, ws):
    response = post(client, body([event()]))
    assert response.status_code == 401
    assert response.json["code"] == 16
    assert response.headers["WWW-Authenticate"] == "Tecton-key"
    assert post(client, body([event()]), "not-a-key").status_code == 401


def test_authentication_comes_before_the_body(client, ws):
    response = post(client, b"{not json")
    assert response.status_code == 401


def test_permission_is_checked_before_any_lookup(client, runner, ws, editor):
    # The key holds editor on `prod` only: an unknown workspace is 403, not 404.
    response = post(client, body([event()], workspace="nowhere"), editor)
    assert response.status_code == 403
    viewer = create_key(runner, "viewer")
    response = post(client, body([event()], workspace="nowhere", dry_run=True), viewer)
    assert response.status_code == 403


# ----------------------------------------------------------------------------- request errors


@pytest.mark.parametrize(
    ("path", "missing", "spelled"),
    [
        ("/ingest", "workspace_name", "workspace_name"),
        ("/ingest", "dry_run", "dry_run"),
        ("/ingest", "records", "records"),
        ("/v2/ingest", "workspace_name", "workspaceName"),
        ("/v2/ingest", "dry_run", "dryRun"),
        ("/v2/ingest", "records", "records"),
    ],
)
def test_missing_required_field(client, editor, path, missing, spelled):
    payload = body([event()])
    del payload[missing]
    response = post(client, payload, editor, path=path)
    assert response.status_code == 400
    assert response.json == request_error(f"Required field `{spelled}` is missing in the request")


def test_null_counts_as_missing(client, editor):
    payload = body([event()])
    payload["workspace_name"] = None
    response = post(client, payload, editor)
    assert response.json == request_error(
        "Required field `workspace_name` is missing in the request"
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", None),
        (b"", "Request body is empty; expected a JSON object."),
        (b"[1, 2]", "The request body must be a JSON object"),
        (
            {"workspace_name": 7, "dry_run": False, "records": {}},
            "Field `workspace_name` must be a string",
        ),
        (
            {"workspace_name": "prod", "dry_run": "yes", "records": {}},
            "Field `dry_run` must be a boolean",
        ),
        (
            {"workspace_name": "prod", "dry_run": False, "records": []},
            "Field `records` is invalid: records: not a valid mapping type",
        ),
        (
            {"workspace_name": "prod", "dry_run": False, "records": {"events": [{"user_id": "u"}]}},
            'Field `records` is invalid: records.events[0]: each entry must be {"record": {...}}',
        ),
        (
            {"workspace_name": "prod", "dry_run": False, "records": {"events": [{"record": 5}]}},
            "Field `records` is invalid: records.events[0].record: not a valid mapping type",
        ),
    ],
)
def test_malformed_requests_get_a_request_error(client, editor, payload, message):
    response = post(client, payload, editor)
    assert response.status_code == 400
    assert response.json["requestError"]["errorType"] == "RequestValidationError"
    if message is None:
        assert response.json["requestError"]["errorMessage"].startswith(
            "Unable to parse request body as JSON"
        )
    else:
        assert response.json == request_error(message)


def test_only_post_is_allowed(client):
    response = client.get("/ingest")
    assert response.status_code == 405
    assert response.json["code"] == 12


# ----------------------------------------------------------------------------- not found


@pytest.fixture
def admin_editor(runner, ws):
    """An editor on every workspace, so lookups (not permissions) decide."""
    return runner.ok("api-key", "create", "--description", "all", "--role", "editor").stdout.strip()


def not_found(message):
    return {"error": message, "code": 5, "message": message}


def test_unknown_workspace_is_404(client, admin_editor):
    response = post(client, body([event()], workspace="nowhere"), admin_editor)
    assert response.status_code == 404
    assert response.json == not_found("Workspace `nowhere` not found.")


def test_unknown_push_source_is_404(client, database, editor):
    payload = body([event()])
    payload["records"]["nope"] = [{"record": {"x": 1}}]
    response = post(client, payload, editor)
    assert response.status_code == 404
    assert response.json == not_found("Push source `nope` not found in workspace `prod`.")
    assert stored(database, "user_events") == {}


def test_source_without_online_views_is_404(client, editor):
    response = post(
        client,
        body([{"user_id": "u", "v": 1, "ts": iso(recent())}], source="orphan_events"),
        editor,
    )
    assert response.status_code == 404
    assert response.json == not_found(
        "No online stream feature view in workspace `prod` is subscribed to push source "
        "`orphan_events`."
    )


def test_a_dry_run_to_a_source_without_online_views_is_checked_not_refused(client, editor):
    """Tecton requires a subscribed online view only when `dry_run` is false (reference §8)."""
    record = {"user_id": "u", "v": 1, "ts": iso(recent())}
    response = post(client, body([record], source="orphan_events", dry_run=True), editor)
    assert response.status_code == 200, response.json
    assert response.json == {
        "workspaceName": "prod",
        "ingestMetrics": {"featureViewIngestMetrics": []},
    }
    bad = post(client, body([{**record, "v": "x"}], source="orphan_events", dry_run=True), editor)
    assert bad.status_code == 400
    [error] = bad.json["recordErrors"]
    assert error["pushSourceName"] == "orphan_events" and "featureViewName" not in error
    assert "column `v`" in error["errorMessage"]
    # The same source, written for real, is still refused (also after the dry run's cached plan).
    assert post(client, body([record], source="orphan_events"), editor).status_code == 404


def test_development_workspace_accepts_only_dry_runs(
    client, runner, tmp_path, admin_editor, database
):
    apply_definitions(runner, tmp_path, "dev", live=False)
    response = post(client, body([event()], workspace="dev"), admin_editor)
    assert response.status_code == 404
    assert response.json["code"] == 5
    assert "not a live workspace" in response.json["message"]
    response = post(client, body([event()], workspace="dev", dry_run=True), admin_editor)
    assert response.status_code == 200
    assert stored(database, "user_events", "dev") == {}


# ----------------------------------------------------------------------------- record errors


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"extra": 1},
            "record 0: unknown column(s) `extra`; expected `user_id`, `merchant_id`, `amount`, "
            "`clicks`, `tags`, `ts`",
        ),
        ({"clicks": "3x"}, "record 0: column `clicks`: expected an integer, got '3x'"),
        (
            {"clicks": 2**63},
            "record 0: column `clicks`: integer 9223372036854775808 is out of range for Int64",
        ),
        ({"amount": "12"}, "record 0: column `amount`: expected a number, got a string"),
        ({"tags": "a"}, "record 0: column `tags`: expected an array, got a string"),
        ({"tags": ["a", 1]}, "record 0: column `tags`: [1]: expected a string, got a number"),
        ({"user_id": None}, "record 0: column `user_id`: a join key may not be null or empty"),
        ({"user_id": 5}, "record 0: column `user_id`: expected a string, got a number"),
        (
            {"ts": "yesterday"},
            "record 0: column `ts`: invalid timestamp 'yesterday'; expected ISO 8601 such as "
            "2024-01-31T12:00:00Z",
        ),
        ({"ts": None}, "record 0: column `ts`: the event timestamp may not be null or empty"),
        ({"ts": "2024-02-30T00:00:00Z"}, None),
    ],
)
def test_record_errors(client, database, editor, change, message):
    record = {**event(), **change}
    response = post(client, body([record]), editor)
    assert response.status_code == 400
    assert response.json["workspaceName"] == "prod"
    errors = response.json["recordErrors"]
    assert [e["featureViewName"] for e in errors] == ["user_events", "user_merchant_events"]
    if message is not None:
        assert errors[0] == record_error(message)
    else:
        assert errors[0]["errorMessage"].startswith("record 0: column `ts`: invalid timestamp")
    assert stored(database, "user_events") == {}


def test_missing_column_is_a_record_error(client, editor):
    record = event()
    del record["amount"]
    response = post(client, body([event(), record]), editor)
    assert response.json["recordErrors"][0] == record_error(
        "record 1: missing column(s) `amount`; expected `user_id`, `merchant_id`, `amount`, "
        "`clicks`, `tags`, `ts`"
    )


def test_records_outside_the_ttl_are_rejected_for_that_view(client, database, editor):
    old = iso(datetime.now(UTC) - timedelta(days=31))
    response = post(client, body([event(ts=old)]), editor)
    assert response.status_code == 400
    # user_events has a 30-day ttl; user_merchant_events has none, so only one error.
    assert response.json == {
        "workspaceName": "prod",
        "recordErrors": [
            record_error(
                "timestamp value is outside of the serving TTL defined for Feature View user_events"
            )
        ],
    }
    assert stored(database, "user_merchant_events") == {}


def test_a_request_is_all_or_nothing(client, database, editor):
    records = [event("u1"), event("u2"), event("u3", clicks="bad"), event("u4")]
    response = post(client, body(records), editor)
    assert response.status_code == 400
    assert [e["errorMessage"][:9] for e in response.json["recordErrors"]] == ["record 2:"] * 2
    assert stored(database, "user_events") == {}
    assert stored(database, "user_merchant_events") == {}


# ----------------------------------------------------------------------------- last write wins


def test_last_write_wins_by_event_time(client, database, editor):
    t1, t2 = recent(2), recent(1)
    assert post(client, body([event(amount=2.0, ts=iso(t2))]), editor).status_code == 200
    # An older record is accepted but does not overwrite the newer one.
    assert post(client, body([event(amount=1.0, ts=iso(t1))]), editor).status_code == 200
    assert stored(database, "user_events")['["u1"]'] == (
        iso(t2),
        {"amount": 2, "clicks": "3", "tags": ["a"]},
    )
    # Equal event time: the later write wins.
    assert post(client, body([event(amount=3.5, ts=iso(t2))]), editor).status_code == 200
    assert stored(database, "user_events")['["u1"]'][1]["amount"] == 3.5


def test_duplicates_within_a_request(client, database, editor):
    t1, t2 = recent(2), recent(1)
    records = [
        event(amount=1.0, ts=iso(t2)),
        event(amount=2.0, ts=iso(t1)),  # older: loses
        event(amount=3.0, ts=iso(t2)),  # same time, later in the request: wins
    ]
    assert post(client, body(records), editor).status_code == 200
    assert stored(database, "user_events")['["u1"]'] == (
        iso(t2),
        {"amount": 3, "clicks": "3", "tags": ["a"]},
    )


def test_an_acknowledged_write_is_readable_by_the_next_request(client, database, editor):
    for amount in (1.0, 2.0, 3.0):
        moment = datetime.now(UTC)
        assert post(client, body([event(amount=amount, ts=iso(moment))]), editor).status_code == 200
        assert stored(database, "user_events")['["u1"]'][1]["amount"] == amount
