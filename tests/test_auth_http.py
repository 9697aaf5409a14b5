"""Authentication and authorization over HTTP, in-process: every 401, 403 and 429 case."""

import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import event, text

from app import create_app, security
from app.models import FeatureService, Workspace
from auth.keys import checksum
from auth.throttle import FAILED_ATTEMPTS_LIMIT, SharedFailureThrottle

STATE_PATH = "/api/v1/feature-service/get-feature-service-state"
UNAUTHENTICATED = {
    "error": "invalid 'Tecton-key' authorization header. Note that newly created credentials "
    "may take up to 60 seconds to be usable.",
    "code": 16,
    "message": "invalid 'Tecton-key' authorization header. Note that newly created credentials "
    "may take up to 60 seconds to be usable.",
}
FORBIDDEN = {
    "error": "Not Authorized. Note that access control changes may take up to 60 seconds to apply.",
    "code": 7,
    "message": "Not Authorized. Note that access control changes may take up to 60 seconds to "
    "apply.",
}


def not_found(fs, ws):
    message = (
        f"Unable to query FeatureService `{fs}` for workspace `{ws}`. Newly created feature "
        "services may take up to 60 seconds to query. Also, ensure that the workspace is a live "
        "workspace."
    )
    return {"error": message, "code": 5, "message": message}


def locator(ws, fs="fs"):
    return {"featureServiceLocator": {"featureServiceName": fs, "workspaceName": ws}}


def state(client, key=None, body=None, *, header=None):
    headers = {}
    if header is not None:
        headers["Authorization"] = header
    elif key is not None:
        headers["Authorization"] = f"Tecton-key {key}"
    return client.post(STATE_PATH, data=orjson.dumps(body or locator("ws_a")), headers=headers)


@pytest.fixture
def workspaces(database):
    """Live workspaces ws_a and ws_b with a servable `fs`; ws_dev is a development workspace."""
    with database.session() as session:
        for name, live in (("ws_a", True), ("ws_b", True), ("ws_dev", False)):
            workspace = Workspace(name=name, live=live)
            session.add(workspace)
            session.flush()
            session.add(FeatureService(workspace_id=workspace.id, name="fs"))
            session.add(
                FeatureService(workspace_id=workspace.id, name="off", online_serving_enabled=False)
            )
        session.commit()


def create_key(runner, *args):
    return runner.ok("api-key", "create", "--description", "k", *args).stdout.strip()


def key_id_of(key):
    return key.split("_")[1]


def account_of(runner, key):
    listed = orjson.loads(runner.ok("api-key", "list", "--json").stdout)
    return next(e["service_account_id"] for e in listed if e["id"] == key_id_of(key))


def assert_unauthenticated(response):
    assert response.status_code == 401
    assert response.get_json() == UNAUTHENTICATED
    assert response.headers["WWW-Authenticate"] == "Tecton-key"
    assert response.headers["Content-Type"] == "application/json"


def assert_forbidden(response):
    assert response.status_code == 403
    assert response.get_json() == FORBIDDEN
    assert "WWW-Authenticate" not in response.headers


# --------------------------------------------------------------------------- the happy path


def test_a_consumer_key_gets_the_state(client, runner, workspaces):
    key = create_key(runner)
    response = state(client, key)
    assert response.status_code == 200
    assert response.get_json() == {}


def test_snake_case_and_lowercase_scheme_are_accepted(client, runner, workspaces):
    key = create_key(runner)
    body = {"feature_service_locator": {"feature_service_name": "fs", "workspace_name": "ws_a"}}
    assert state(client, body=body, header=f"tecton-key {key}").status_code == 200
    assert state(client, body=body, header=f"TECTON-KEY {key}").status_code == 200


@pytest.mark.parametrize(
    ("ws", "fs"),
    [("ws_a", "unknown"), ("ws_a", "off"), ("ws_dev", "fs"), ("nowhere", "fs")],
)
def test_not_servable_is_404(client, runner, workspaces, ws, fs):
    key = create_key(runner)
    response = state(client, key, locator(ws, fs))
    assert response.status_code == 404
    assert response.get_json() == not_found(fs, ws)


@pytest.mark.parametrize(
    "body", [{}, {"featureServiceLocator": {"workspaceName": "ws_a"}}, locator("", "fs"), [1]]
)
def test_incomplete_locator_is_400(client, runner, body):
    key = create_key(runner)
    response = client.post(
        STATE_PATH, data=orjson.dumps(body), headers={"Authorization": f"Tecton-key {key}"}
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == 3


# --------------------------------------------------------------------------- 401


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        "Basic dXNlcjpwYXNz",
        "Tecton-key",
        "Tecton-key ",
        "Tecton-key secretapikey123",
        "Tecton-key tecto_" + "0" * 32 + "_" + "A" * 49,  # bad checksum
    ],
)
def test_missing_or_malformed_credentials_are_401(client, workspaces, header):
    response = client.post(
        STATE_PATH,
        data=orjson.dumps(locator("ws_a")),
        headers={} if header is None else {"Authorization": header},
    )
    assert_unauthenticated(response)


def test_unknown_key_is_401(client, runner, workspaces):
    create_key(runner)
    body = "tecto_" + "1" * 32 + "_" + "B" * 43
    assert_unauthenticated(state(client, body + checksum(body)))


def test_wrong_secret_for_a_known_key_id_is_401(client, runner, workspaces):
    key = create_key(runner)
    body = key[: -6 - 43] + "C" * 43
    assert_unauthenticated(state(client, body + checksum(body)))


def test_401_comes_before_a_bad_body(client):
    response = client.post(STATE_PATH, data=b"{not json")
    assert_unauthenticated(response)


def test_deleted_key_is_401_at_once(client, runner, workspaces):
    key = create_key(runner)
    assert state(client, key).status_code == 200  # now cached in this process
    runner.ok("api-key", "delete", key_id_of(key))
    assert_unauthenticated(state(client, key))


def test_deleted_service_account_is_401_at_once(client, runner, workspaces):
    key = create_key(runner)
    assert state(client, key).status_code == 200
    runner.ok("service-account", "delete", account_of(runner, key))
    assert_unauthenticated(state(client, key))


def test_deactivated_service_account_is_401(client, runner, workspaces):
    key = create_key(runner)
    assert state(client, key).status_code == 200
    runner.ok("service-account", "deactivate", account_of(runner, key))
    assert_unauthenticated(state(client, key))
    runner.ok("service-account", "activate", account_of(runner, key))
    assert state(client, key).status_code == 200


def test_expired_key_is_401(client, runner, database, workspaces):
    key = create_key(runner, "--expires-in", "1h")
    with database.session() as session:
        session.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": key_id_of(key)},
        )
        session.commit()
    assert_unauthenticated(state(client, key))


def test_a_cached_key_expires_without_a_database_change(app, client, runner, workspaces):
    key = create_key(runner, "--expires-in", "1h")
    assert state(client, key).status_code == 200
    cache = security.get_authenticator(app).cache
    entry = cache.get(key_id_of(key))
    expired = dataclasses.replace(entry, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert cache.put(key_id_of(key), expired, cache.generation)
    assert_unauthenticated(state(client, key))


def test_keys_verify_against_a_generated_server_secret(settings, database, runner, workspaces):
    from app import create_app

    settings = settings.replace(secret=None)
    runner.settings = settings
    key = create_key(runner)
    client = create_app(settings, database=database).test_client()
    assert state(client, key).status_code == 200
    # A server configured with a different secret cannot verify it.
    other = create_app(settings.replace(secret="another"), database=database).test_client()
    assert_unauthenticated(state(other, key))


# --------------------------------------------------------------------------- 403


@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        (["--workspace", "ws_a", "--role", "viewer"], 403),
        (["--workspace", "ws_a", "--role", "consumer"], 200),
        (["--workspace", "ws_a", "--role", "editor"], 200),
        (["--workspace", "ws_a", "--role", "owner"], 200),
        (["--role", "viewer"], 403),
        (["--role", "consumer"], 200),
        (["--admin"], 200),
    ],
)
def test_reading_needs_consumer_or_higher(client, runner, workspaces, grant, expected):
    key = create_key(runner, *grant)
    response = state(client, key)
    if expected == 403:
        assert_forbidden(response)
    else:
        assert response.status_code == expected


def test_a_key_without_roles_is_403(client, runner, workspaces):
    created = orjson.loads(runner.ok("service-account", "create", "--name", "n", "--json").stdout)
    assert_forbidden(state(client, created["api_key"]))


@pytest.mark.parametrize(
    ("ws", "fs"),
    [
        ("ws_b", "fs"),  # exists and servable
        ("ws_b", "unknown"),  # workspace exists, service does not
        ("ws_b", "off"),
        ("ws_dev", "fs"),
        ("nowhere", "fs"),  # workspace does not exist
    ],
)
def test_403_reveals_nothing_about_what_exists(client, runner, workspaces, ws, fs):
    key = create_key(runner, "--workspace", "ws_a")
    assert_forbidden(state(client, key, locator(ws, fs)))


def test_cross_workspace_matrix(client, runner, workspaces):
    keys = {ws: create_key(runner, "--workspace", ws) for ws in ("ws_a", "ws_b")}
    everywhere = create_key(runner)
    for key_ws, key in keys.items():
        for target_ws in ("ws_a", "ws_b"):
            response = state(client, key, locator(target_ws))
            if key_ws == target_ws:
                assert response.status_code == 200, (key_ws, target_ws)
            else:
                assert_forbidden(response)
    for target_ws in ("ws_a", "ws_b"):
        assert state(client, everywhere, locator(target_ws)).status_code == 200


def test_role_changes_apply_at_once(client, runner, workspaces):
    created = orjson.loads(runner.ok("service-account", "create", "--name", "n", "--json").stdout)
    key, account_id = created["api_key"], created["id"]
    assert_forbidden(state(client, key))
    runner.ok("access-control", "assign-role", "-r", "consumer", "-s", account_id, "-w", "ws_a")
    assert state(client, key).status_code == 200
    runner.ok("access-control", "unassign-role", "-r", "consumer", "-s", account_id, "-w", "ws_a")
    assert_forbidden(state(client, key))


def test_permissions_are_checked_per_workspace_for_every_permission(app, runner):
    from auth.permissions import INGEST, INGEST_DRY_RUN, READ_FEATURES, VIEW_METADATA

    key = create_key(runner, "--workspace", "ws_a", "--role", "viewer")
    with app.test_request_context(headers={"Authorization": f"Tecton-key {key}"}):
        assert security.require_permission("ws_a", INGEST_DRY_RUN).key_id == key_id_of(key)
        assert security.require_permission("ws_a", VIEW_METADATA)
        for permission in (READ_FEATURES, INGEST):
            with pytest.raises(security.PermissionDeniedError):
                security.require_permission("ws_a", permission)
        with pytest.raises(security.PermissionDeniedError):
            security.require_permission("ws_b", INGEST_DRY_RUN)
    editor = create_key(runner, "--workspace", "ws_a", "--role", "editor")
    with app.test_request_context(headers={"Authorization": f"Tecton-key {editor}"}):
        assert security.require_permission("ws_a", INGEST)


# --------------------------------------------------------------------------- the hot path


def test_a_cached_key_needs_no_database_round_trip(app, client, runner, workspaces, monkeypatch):
    key = create_key(runner)
    assert state(client, key).status_code == 200  # loads the key, records last use
    authenticator = security.get_authenticator(app)
    assert len(authenticator.cache) == 1

    def no_database():
        raise AssertionError("the auth check went to the database")

    monkeypatch.setattr(authenticator, "connect", no_database)
    with app.test_request_context(headers={"Authorization": f"Tecton-key {key}"}):
        principal = security.authenticate()
    assert principal.key_id == key_id_of(key)


def test_the_cache_is_bypassed_when_change_notifications_are_down(
    app, client, runner, workspaces, monkeypatch
):
    from app import changes

    key = create_key(runner)
    assert state(client, key).status_code == 200
    monkeypatch.setattr(changes.get_feed(app), "trustworthy", lambda: False)
    authenticator = security.get_authenticator(app)
    authenticator.cache.invalidate()
    assert state(client, key).status_code == 200
    assert len(authenticator.cache) == 0  # verified against the database, not cached


def test_last_used_at_is_recorded(client, runner, workspaces):
    key = create_key(runner)
    listed = orjson.loads(runner.ok("api-key", "list", "--json").stdout)
    assert listed[0]["last_used_at"] is None
    assert state(client, key).status_code == 200
    listed = orjson.loads(runner.ok("api-key", "list", "--json").stdout)
    assert listed[0]["last_used_at"] is not None


# --------------------------------------------------------------------------- 429


def test_repeated_failures_are_throttled_without_affecting_valid_keys(client, runner, workspaces):
    key = create_key(runner)
    for _ in range(FAILED_ATTEMPTS_LIMIT):
        assert_unauthenticated(state(client, header="Tecton-key nope"))
    response = state(client, header="Tecton-key nope")
    assert response.status_code == 429
    assert response.get_json()["code"] == 8
    assert 1 <= int(response.headers["Retry-After"]) <= 10
    # A valid key from the same address still passes.
    assert state(client, key).status_code == 200
    # Another address is not throttled.
    response = client.post(
        STATE_PATH,
        data=orjson.dumps(locator("ws_a")),
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert_unauthenticated(response)


def test_throttling_is_shared_by_every_process(app, client, settings, database, workspaces):
    other_process = create_app(settings, database=database).test_client()
    half = FAILED_ATTEMPTS_LIMIT // 2
    for _ in range(half):
        assert_unauthenticated(state(client, header="Tecton-key nope"))
    for _ in range(FAILED_ATTEMPTS_LIMIT - half):
        assert_unauthenticated(state(other_process, header="Tecton-key nope"))
    assert state(client, header="Tecton-key nope").status_code == 429
    assert state(other_process, header="Tecton-key nope").status_code == 429


def test_a_flood_from_many_addresses_does_not_release_a_throttled_client(connection):
    throttle = SharedFailureThrottle(
        connect=lambda: contextlib.nullcontext(connection), limit=3, max_clients=4
    )
    assert [throttle.record_failure("attacker") for _ in range(3)] == [None, None, None]
    assert throttle.record_failure("attacker") is not None
    for index in range(50):
        assert throttle.record_failure(f"10.1.{index}.1") is None
        throttle.record_failure(f"10.1.{index}.1")
    assert len(throttle._throttled) <= 4
    assert throttle.record_failure("attacker") is not None


def _statements_while(connection, action):
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement.split()[0] + " " + ("api_keys" if "api_keys" in statement else "-"))

    event.listen(connection, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(connection, "before_cursor_execute", record)
    return seen


def test_an_unknown_key_id_costs_what_a_wrong_secret_costs(client, runner, connection, workspaces):
    key = create_key(runner)
    assert state(client, key).status_code == 200  # cached, as any key in use is
    prefix, key_id, rest = key.split("_")
    secret = rest[:43]
    wrong_secret = ("A" if secret[0] != "A" else "B") + secret[1:]
    unknown_id = ("0" if key_id[0] != "0" else "1") + key_id[1:]

    def with_checksum(kid: str, sec: str) -> str:
        return f"{prefix}_{kid}_{sec}{checksum(f'{prefix}_{kid}_{sec}')}"

    assert_unauthenticated(state(client, header="Tecton-key nope"))  # the throttle's sweep ran
    wrong = _statements_while(
        connection,
        lambda: assert_unauthenticated(state(client, with_checksum(key_id, wrong_secret))),
    )
    # The first unknown id may reload the list of known ids (at most every 0.25 s); the next
    # ones must reach the database exactly as a wrong secret does (once, to count the failure).
    assert_unauthenticated(state(client, with_checksum("f" * 32, secret)))
    probe = with_checksum(unknown_id, secret)
    unknown = _statements_while(connection, lambda: assert_unauthenticated(state(client, probe)))
    assert wrong == unknown == ["WITH -"]  # the failure count only
