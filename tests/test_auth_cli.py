"""`tectonite api-key`, `service-account` and `access-control`, in-process on the test database."""

import re

import orjson
import pytest
from sqlalchemy import select, text

from auth.models import ApiKey, AuthSecret, RoleBinding, ServiceAccount
from auth.store import HMAC_SECRET_NAME

KEY_PATTERN = re.compile(r"tecto_[0-9a-f]{32}_[0-9A-Za-z]{49}")
HEX_ID = re.compile(r"[0-9a-f]{32}")


def create_key(runner, *args):
    result = runner.ok("api-key", "create", "--description", "test key", *args)
    return result.stdout.strip()


def key_id_of(key):
    return key.split("_")[1]


def get_roles(runner, account_id):
    result = runner.ok("access-control", "get-roles", "--service-account", account_id, "--json")
    return [(b["role"], b["workspace"]) for b in orjson.loads(result.stdout)]


def account_of(database, key):
    with database.session() as session:
        return session.get(ApiKey, key_id_of(key)).service_account_id


# --------------------------------------------------------------------------- api-key create


def test_create_prints_the_key_alone_on_stdout_and_the_warning_on_stderr(runner):
    result = runner.ok("api-key", "create", "--description", "fraud model")
    assert KEY_PATTERN.fullmatch(result.stdout.strip())
    assert result.stdout.count("\n") == 1
    assert result.stderr == "Save this key - you will not be able to get it again.\n"


def test_create_stores_only_a_hash(runner, database, connection):
    key = create_key(runner)
    _, secret_part = key.split("_", 1)[1].split("_", 1)
    with database.session() as session:
        stored = session.get(ApiKey, key_id_of(key))
    assert stored.obscured_key == "****" + key[-4:]
    assert len(stored.secret_hash) == 32
    # Nothing in the auth tables holds the key or its secret part.
    dump = connection.execute(
        text(
            "SELECT string_agg(t::text, ' ') FROM ("
            " SELECT row_to_json(k)::text AS t FROM api_keys k"
            " UNION ALL SELECT row_to_json(s)::text FROM service_accounts s"
            " UNION ALL SELECT row_to_json(b)::text FROM role_bindings b) x"
        )
    ).scalar_one()
    assert secret_part[:43] not in dump
    assert key not in dump


def test_create_defaults_to_consumer_on_all_workspaces(runner, database):
    key = create_key(runner)
    assert get_roles(runner, account_of(database, key)) == [("consumer", None)]


def test_create_scoped_to_a_workspace_with_a_role(runner, database):
    key = create_key(runner, "--workspace", "prod", "--role", "editor")
    assert get_roles(runner, account_of(database, key)) == [("editor", "prod")]


def test_create_admin(runner, database):
    key = create_key(runner, "--admin")
    assert get_roles(runner, account_of(database, key)) == [("admin", None)]


def test_create_admin_refuses_a_workspace(runner):
    result = runner.invoke("api-key", "create", "--description", "x", "--admin", "-w", "a")
    assert result.exit_code == 2
    assert "--admin is a cluster-wide role" in result.stderr


def test_create_refuses_an_unknown_role(runner):
    result = runner.invoke("api-key", "create", "--description", "x", "--role", "pilot")
    assert result.exit_code == 2


def test_create_with_expiry(runner, database):
    key = create_key(runner, "--expires-in", "30d")
    with database.session() as session:
        stored = session.get(ApiKey, key_id_of(key))
        age = session.execute(text("SELECT :e - now()"), {"e": stored.expires_at}).scalar_one()
    assert 29.9 < age.total_seconds() / 86400 <= 30


def test_create_rejects_a_bad_expiry(runner):
    result = runner.invoke("api-key", "create", "--description", "x", "--expires-in", "soon")
    assert result.exit_code == 2
    assert "invalid duration" in result.stderr


def test_create_without_configured_secret_generates_one_in_the_database(settings, database, runner):
    runner.settings = settings.replace(secret=None)
    key = create_key(runner)
    with database.session() as session:
        generated = session.get(AuthSecret, HMAC_SECRET_NAME).value
    assert len(generated) == 64
    # A second key reuses it, and introspection verifies against it.
    create_key(runner)
    with database.session() as session:
        assert len(session.execute(select(AuthSecret)).all()) == 1
    result = runner.ok("api-key", "introspect", key, "--json")
    assert orjson.loads(result.stdout)["api_key_id"] == key_id_of(key)


# --------------------------------------------------------------------------- list / delete


def test_list_shows_keys_obscured(runner):
    key = create_key(runner)
    result = runner.ok("api-key", "list")
    assert key_id_of(key) in result.stdout
    assert f"Secret Key:         ****{key[-4:]}" in result.stdout
    assert key not in result.stdout
    assert key.split("_")[2][:43] not in result.stdout


def test_list_json(runner):
    key = create_key(runner)
    listed = orjson.loads(runner.ok("api-key", "list", "--json").stdout)
    (entry,) = [e for e in listed if e["id"] == key_id_of(key)]
    assert entry["obscured_key"] == "****" + key[-4:]
    assert entry["description"] == "test key"
    assert entry["expires_at"] is None
    assert entry["last_used_at"] is None
    assert entry["created_at"].endswith("Z")
    assert HEX_ID.fullmatch(entry["service_account_id"])
    assert key not in str(listed)


def test_list_when_empty(runner):
    assert runner.ok("api-key", "list").stdout == "No API keys found\n"
    assert orjson.loads(runner.ok("api-key", "list", "--json").stdout) == []


def test_delete_removes_the_key(runner):
    key = create_key(runner)
    assert runner.ok("api-key", "delete", key_id_of(key)).stdout == "Success\n"
    assert orjson.loads(runner.ok("api-key", "list", "--json").stdout) == []
    result = runner.invoke("api-key", "introspect", key)
    assert result.exit_code == 1


def test_delete_unknown_key(runner):
    result = runner.invoke("api-key", "delete", "0" * 32)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"API key with ID {'0' * 32} not found.")


# --------------------------------------------------------------------------- introspect


def test_introspect_json(runner):
    key = create_key(runner)
    info = orjson.loads(runner.ok("api-key", "introspect", key, "--json").stdout)
    assert set(info) == {"api_key_id", "description", "created_by", "active"}
    assert info["api_key_id"] == key_id_of(key)
    assert info["description"] == "test key"
    assert info["created_by"]
    assert info["active"] is True


def test_introspect_plain(runner):
    key = create_key(runner)
    result = runner.ok("api-key", "introspect", key)
    assert f"API Key ID:     {key_id_of(key)}" in result.stdout
    assert "Active:         True" in result.stdout


@pytest.mark.parametrize("bad", ["nonsense", "wrong-secret", "key-id"])
def test_introspect_not_found(runner, bad):
    key = create_key(runner)
    presented = {
        "nonsense": "nonsense",
        "wrong-secret": _with_other_secret(key),
        "key-id": key_id_of(key),
    }[bad]
    result = runner.invoke("api-key", "introspect", presented)
    assert result.exit_code == 1
    assert result.stderr == (
        "API key cannot be found. Ensure you have the correct API Key. "
        "The key's secret value is different from the key's ID.\n"
    )
    assert result.stdout == ""


def test_introspect_expired_key_is_inactive(runner, database):
    key = create_key(runner, "--expires-in", "1s")
    with database.session() as session:
        session.execute(text("UPDATE api_keys SET expires_at = now() - interval '1 minute'"))
        session.commit()
    info = orjson.loads(runner.ok("api-key", "introspect", key, "--json").stdout)
    assert info["active"] is False


def _with_other_secret(key):
    from auth.keys import checksum

    body = key[: -6 - 43] + ("A" * 43)
    return body + checksum(body)


# --------------------------------------------------------------------------- service-account


def test_service_account_create_plain(runner):
    result = runner.ok("service-account", "create", "--name", "svc", "--description", "d")
    lines = result.stdout.splitlines()
    assert lines[0] == "Save this API Key - you will not be able to get it again."
    key = re.fullmatch(r"API Key:\s+(\S+)", lines[1]).group(1)
    account_id = re.fullmatch(r"Service Account ID:\s+(\S+)", lines[2]).group(1)
    assert KEY_PATTERN.fullmatch(key)
    assert HEX_ID.fullmatch(account_id)
    assert "access-control assign-role" in lines[3]
    # No role until one is assigned.
    assert get_roles(runner, account_id) == []


def test_service_account_create_json(runner, database):
    result = runner.ok("service-account", "create", "--name", "svc", "--json")
    created = orjson.loads(result.stdout)
    assert set(created) == {"api_key", "id"}
    assert KEY_PATTERN.fullmatch(created["api_key"])
    assert account_of(database, created["api_key"]) == created["id"]


def test_service_account_list(runner):
    created = orjson.loads(runner.ok("service-account", "create", "--name", "svc", "--json").stdout)
    listed = orjson.loads(runner.ok("service-account", "list", "--json").stdout)
    assert listed == [
        {
            "name": "svc",
            "id": created["id"],
            "description": "",
            "active": True,
            "createdBy": listed[0]["createdBy"],
        }
    ]
    plain = runner.ok("service-account", "list").stdout
    assert f"Name:          svc\nID:            {created['id']}\n" in plain
    assert "Active:        True" in plain
    assert created["api_key"] not in plain


def test_service_account_list_when_empty(runner):
    assert runner.ok("service-account", "list").stdout == "No Service Accounts Found\n"
    assert orjson.loads(runner.ok("service-account", "list", "--json").stdout) == []


def test_service_account_delete_removes_keys_and_roles(runner, database):
    key = create_key(runner)
    account_id = account_of(database, key)
    result = runner.ok("service-account", "delete", account_id)
    assert result.stdout == "Successfully deleted Service Account\n"
    with database.session() as session:
        assert session.get(ServiceAccount, account_id) is None
        assert session.get(ApiKey, key_id_of(key)) is None
        assert session.execute(select(RoleBinding)).all() == []


def test_service_account_delete_unknown(runner):
    result = runner.invoke("service-account", "delete", "f" * 32)
    assert result.exit_code == 1
    assert "not found" in result.stderr


def test_service_account_deactivate_and_activate(runner, database):
    key = create_key(runner)
    account_id = account_of(database, key)
    assert runner.ok("service-account", "deactivate", account_id).stdout == (
        "Successfully deactivated Service Account\n"
    )
    assert orjson.loads(runner.ok("api-key", "introspect", key, "--json").stdout)["active"] is False
    runner.ok("service-account", "activate", account_id)
    assert orjson.loads(runner.ok("api-key", "introspect", key, "--json").stdout)["active"] is True
    assert runner.invoke("service-account", "activate", "0" * 32).exit_code == 1


# --------------------------------------------------------------------------- access-control


@pytest.fixture
def account_id(runner):
    result = runner.ok("service-account", "create", "--name", "svc", "--json")
    return orjson.loads(result.stdout)["id"]


def test_assign_and_unassign_roles(runner, account_id):
    result = runner.ok(
        "access-control", "assign-role", "--role", "editor", "-s", account_id, "-w", "prod"
    )
    assert result.stdout == f"Successfully updated role for [{account_id}]\n"
    runner.ok("access-control", "assign-role", "-r", "Viewer", "-s", account_id, "--all-workspaces")
    runner.ok("access-control", "assign-role", "-r", "admin", "-s", account_id)
    # Assigning again is harmless.
    runner.ok("access-control", "assign-role", "-r", "editor", "-s", account_id, "-w", "prod")
    assert get_roles(runner, account_id) == [
        ("admin", None),
        ("viewer", None),
        ("editor", "prod"),
    ]
    plain = runner.ok("access-control", "get-roles", "--service-account", account_id).stdout
    assert "Workspace-Level Roles" in plain
    assert "prod" in plain
    assert "all workspaces" in plain
    assert "Instance-Level Roles\n  admin" in plain

    runner.ok("access-control", "unassign-role", "-r", "editor", "-s", account_id, "-w", "prod")
    runner.ok("access-control", "unassign-role", "-r", "admin", "-s", account_id)
    assert get_roles(runner, account_id) == [("viewer", None)]
    result = runner.invoke(
        "access-control", "unassign-role", "-r", "editor", "-s", account_id, "-w", "prod"
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Failed to update role for [{account_id}]")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-r", "pilot", "-w", "prod"],
            "Invalid role. Possible values are: viewer, consumer, editor, owner, admin\n",
        ),
        (
            ["-r", "admin", "-w", "prod"],
            "'Admin' is a cluster-wide role. Please remove --workspace and --all-workspaces "
            "options\n",
        ),
        (
            ["-r", "admin", "--all-workspaces"],
            "'Admin' is a cluster-wide role. Please remove --workspace and --all-workspaces "
            "options\n",
        ),
        (["-r", "consumer"], "Must specify either --workspace or --all-workspaces\n"),
        (
            ["-r", "consumer", "-w", "a", "--all-workspaces"],
            "Must specify either --workspace or --all-workspaces\n",
        ),
    ],
)
def test_assign_role_errors(runner, account_id, args, message):
    result = runner.invoke("access-control", "assign-role", "-s", account_id, *args)
    assert result.exit_code == 1
    assert result.stderr == message
    assert get_roles(runner, account_id) == []


def test_assign_role_to_an_unknown_account(runner):
    result = runner.invoke(
        "access-control", "assign-role", "-r", "viewer", "-s", "0" * 32, "--all-workspaces"
    )
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Failed to update role for [{'0' * 32}]: service account {'0' * 32} not found\n"
    )


def test_get_roles_of_an_unknown_account(runner):
    result = runner.invoke("access-control", "get-roles", "-s", "0" * 32)
    assert result.exit_code == 1


def test_every_command_has_help(runner):
    for group in ("api-key", "service-account", "access-control"):
        assert runner.ok(group, "--help").stdout
