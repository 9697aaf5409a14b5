"""Only admin keys reach /_emulator; TECTONITE_EMULATOR_API=off removes the routes."""

import pytest

from app import create_app

PATHS = [("GET", "/_emulator/clock"), ("POST", "/_emulator/faults"), ("GET", "/_emulator/faults"),
         ("DELETE", "/_emulator/faults"), ("GET", "/_emulator/requests"),
         ("DELETE", "/_emulator/requests"), ("POST", "/_emulator/reset"),
         ("POST", "/_emulator/explain"), ("POST", "/_emulator/clock")]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), PATHS)
def test_no_key_is_401_and_a_non_admin_key_is_403(client, runner, method, path):
    owner = runner.ok("api-key", "create", "--description", "o", "--role", "owner").stdout.strip()
    response = client.open(path, method=method, json={})
    assert response.status_code == 401 and response.json["code"] == 16
    assert response.headers["WWW-Authenticate"] == "Tecton-key"
    denied = client.open(path, method=method, json={}, headers={
        "Authorization": f"Tecton-key {owner}"})  # fmt: skip
    assert denied.status_code == 403 and denied.json["code"] == 7
    assert denied.json["message"].startswith("Not Authorized")


def test_emulator_api_off_removes_the_routes_but_not_the_cli(settings, database, runner):
    app = create_app(settings.replace(emulator_api=False), database=database)
    admin = runner.ok("api-key", "create", "--description", "a", "--admin").stdout.strip()
    with app.test_client() as client:
        response = client.get("/_emulator/clock", headers={"Authorization": f"Tecton-key {admin}"})
    assert response.status_code == 404 and response.json["code"] == 5
    assert "(frozen" in runner.ok("clock", "freeze", "2026-01-01T00:00:00Z").stdout


def test_settings_come_from_the_environment():
    from app.config import Settings, SettingsError

    env = {"TECTONITE_EMULATOR_API": "off", "TECTONITE_JOURNAL": "off",
           "TECTONITE_JOURNAL_SIZE": "50"}  # fmt: skip
    settings = Settings.from_env(env)
    assert (settings.emulator_api, settings.journal, settings.journal_size) == (False, False, 50)
    defaults = Settings.from_env({})
    assert (defaults.emulator_api, defaults.journal, defaults.journal_size) == (True, True, 1000)
    with pytest.raises(SettingsError, match="TECTONITE_JOURNAL must be on or off"):
        Settings.from_env({"TECTONITE_JOURNAL": "maybe"})
    with pytest.raises(SettingsError, match="TECTONITE_JOURNAL_SIZE"):
        Settings.from_env({"TECTONITE_JOURNAL_SIZE": "0"})
