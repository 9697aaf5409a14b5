"""Sign-in, the session cookie, CSRF, and what each key may see (Flask test client)."""

from __future__ import annotations

import re

import pytest

from tests.console.helpers import csrf_of, post_form, sign_in

SERVICE = "fraud_detection_feature_service"


def test_pages_redirect_to_sign_in_until_signed_in(client, keys):
    response = client.get("/console/workspaces/prod")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/sign-in?next=/console/workspaces/prod")
    assert client.get("/console/access").status_code == 302


def test_sign_in_sets_a_strict_httponly_cookie_without_the_key(client, keys):
    response = sign_in(client, keys.admin)
    assert response.status_code == 302
    cookie = next(value for name, value in response.headers.items() if name == "Set-Cookie")
    assert cookie.startswith("tectonite_console=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http: see the README's Console section
    secret_part = keys.admin.rsplit("_", 1)[1]
    assert secret_part not in cookie and keys.admin not in cookie
    page = client.get("/console/workspaces")
    assert page.status_code == 200
    assert keys.admin not in page.get_data(as_text=True)


def test_cookie_is_secure_over_tls(client, keys):
    page = client.get("/console/sign-in", base_url="https://localhost")
    token = csrf_of(page.get_data(as_text=True))
    response = client.post(
        "/console/sign-in",
        data={"api_key": keys.admin, "csrf_token": token},
        base_url="https://localhost",
    )
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_wrong_key_is_refused_and_not_echoed(client, keys):
    wrong = keys.admin[:-8] + "AAAAAAAA"
    response = sign_in(client, wrong)
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "not valid" in html
    assert wrong not in html
    assert client.get("/console/workspaces").status_code == 302


def test_sign_in_without_the_csrf_token_is_refused(client, keys):
    client.get("/console/sign-in")
    response = client.post("/console/sign-in", data={"api_key": keys.admin})
    assert response.status_code == 400
    assert "Form expired" in response.get_data(as_text=True)
    assert client.get("/console/workspaces").status_code == 302


def test_every_post_needs_the_sessions_token(client, keys):
    sign_in(client, keys.admin)
    # A token from another session does not do.
    other = client.application.test_client()
    other_token = csrf_of(other.get("/console/sign-in").get_data(as_text=True))
    path = f"/console/workspaces/prod/feature-services/{SERVICE}"
    refused = client.post(path, data={"join_key.user_id": "user_1", "csrf_token": other_token})
    assert refused.status_code == 400
    assert client.post("/console/sign-out").status_code == 400
    assert client.get("/console/workspaces").status_code == 200  # still signed in
    accepted = post_form(client, path, {"join_key.user_id": "user_1", "join_key.merchant": "m1"})
    assert accepted.status_code == 200


def test_sign_out_ends_the_session(client, keys):
    sign_in(client, keys.admin)
    token = csrf_of(client.get("/console/workspaces").get_data(as_text=True))
    out = client.post("/console/sign-out", data={"csrf_token": token})
    assert out.status_code == 302
    assert client.get("/console/workspaces").status_code == 302


def test_a_deleted_key_ends_its_session_on_the_next_page(client, keys, runner):
    sign_in(client, keys.prod_consumer)
    assert client.get("/console/workspaces").status_code == 200
    key_id = keys.prod_consumer.split("_")[1]
    runner.ok("api-key", "delete", key_id)
    assert client.get("/console/workspaces").status_code == 302


def test_a_forged_cookie_is_ignored(client, keys):
    client.set_cookie("tectonite_console", "eyJrZXlfaWQiOiJ4In0.forged.sig", path="/console")
    assert client.get("/console/workspaces").status_code == 302


def test_admin_sees_every_workspace_and_the_admin_pages(client, keys):
    sign_in(client, keys.admin)
    html = client.get("/console/workspaces").get_data(as_text=True)
    assert 'href="/console/workspaces/prod"' in html
    assert 'href="/console/workspaces/staging"' in html
    assert 'href="/console/access"' in html
    assert client.get("/console/workspaces/staging").status_code == 200
    assert client.get("/console/access").status_code == 200


def test_a_consumer_sees_only_its_workspace(client, keys):
    sign_in(client, keys.prod_consumer)
    html = client.get("/console/workspaces").get_data(as_text=True)
    assert 'href="/console/workspaces/prod"' in html
    assert "staging" not in html
    assert "/console/access" not in html and "/console/journal" not in html
    for path in (
        "/console/workspaces/staging",
        f"/console/workspaces/staging/feature-services/{SERVICE}",
        "/console/workspaces/staging/feature-views/user_profile",
        "/console/workspaces/no_such_workspace",  # 403 too: existence is not revealed
        "/console/access",
        "/console/journal",
        "/console/clock",
        "/console/faults",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert response.mimetype == "text/html"
        assert "Not allowed" in response.get_data(as_text=True)


def test_a_viewer_sees_schemas_but_no_values(client, keys):
    sign_in(client, keys.staging_viewer)
    page = client.get("/console/workspaces/staging/feature-views/user_profile")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "credit_score" in html
    assert "need the consumer role" in html
    service = client.get(f"/console/workspaces/staging/feature-services/{SERVICE}")
    assert 'id="run"' not in service.get_data(as_text=True)
    assert client.get("/console/workspaces/prod").status_code == 403


def test_unknown_console_paths_get_the_consoles_404_page(client, keys):
    sign_in(client, keys.admin)
    for path in ("/console/nope", "/console/workspaces/prod/feature-views/nope"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.mimetype == "text/html"


def test_next_never_redirects_off_the_console(client, keys):
    page = client.get("/console/sign-in?next=https://evil.example/")
    token = csrf_of(page.get_data(as_text=True))
    response = client.post(
        "/console/sign-in?next=https://evil.example/",
        data={"api_key": keys.admin, "csrf_token": token},
    )
    assert response.headers["Location"] == "/console/workspaces"


def test_the_api_sets_no_cookie(client, keys):
    response = client.post(
        "/api/v1/feature-service/get-features",
        json={
            "params": {
                "featureServiceName": SERVICE,
                "joinKeyMap": {"user_id": "user_1", "merchant": "m1"},
                "requestContextMap": {"amt": 1.0},
            }
        },
        headers={"Authorization": f"Tecton-key {keys.prod_consumer}"},
    )
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_console_off_removes_it(settings, database, keys):
    from app import create_app

    app = create_app(settings.replace(console=False), database=database)
    response = app.test_client().get("/console/sign-in")
    assert response.status_code == 404
    assert response.mimetype == "application/json"


def test_pages_forbid_framing_and_scripts(client, keys):
    response = client.get("/console/sign-in")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert not re.search(r"<script", response.get_data(as_text=True))


def test_the_console_setting_reads_on_and_off():
    from app.config import Settings, SettingsError

    assert Settings.from_env({}).console is True
    assert Settings.from_env({"TECTONITE_CONSOLE": "off"}).console is False
    assert Settings.from_env({"TECTONITE_CONSOLE": "ON"}).console is True
    with pytest.raises(SettingsError, match="TECTONITE_CONSOLE must be on or off"):
        Settings.from_env({"TECTONITE_CONSOLE": "maybe"})
