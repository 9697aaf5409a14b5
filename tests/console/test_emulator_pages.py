"""The journal, clock and fault pages against the real `/_emulator` endpoints (SPEC §10)."""

from __future__ import annotations

import re

from tests.console.helpers import csrf_of, post_form, sign_in

SERVICE = "fraud_detection_feature_service"
SERVICE_PAGE = f"/console/workspaces/prod/feature-services/{SERVICE}"
TRY = {"join_key.user_id": "user_1", "join_key.merchant": "m1", "context.amt": "100"}


def test_journal_lists_requests_and_filters_them(client, keys):
    sign_in(client, keys.admin)
    post_form(client, SERVICE_PAGE, TRY)
    page = client.get("/console/journal").get_data(as_text=True)
    assert "get-features" in page and SERVICE in page
    assert page.count('<svg class="chart"') == 2
    filtered = client.get("/console/journal?status=404").get_data(as_text=True)
    assert SERVICE not in filtered.split('id="journal"', 1)[1]


def test_journal_clear(client, keys):
    sign_in(client, keys.admin)
    post_form(client, SERVICE_PAGE, TRY)
    token = csrf_of(client.get("/console/journal").get_data(as_text=True))
    assert client.post("/console/journal/clear", data={"csrf_token": token}).status_code == 302
    assert "No requests recorded." in client.get("/console/journal").get_data(as_text=True)


def test_clock_freeze_advance_resume_reset(client, keys):
    sign_in(client, keys.admin)
    frozen = post_form(
        client, "/console/clock", {"action": "freeze", "freeze_at": "2030-01-02T03:04:05Z"}
    )
    assert frozen.status_code == 302
    page = client.get("/console/clock").get_data(as_text=True)
    assert re.search(r'id="clock-now">2030-01-02T03:04:05', page)
    assert 'id="clock-state">frozen' in page
    post_form(client, "/console/clock", {"action": "advance", "advance": "90m"})
    assert 'id="clock-now">2030-01-02T04:34:05' in client.get("/console/clock").get_data(
        as_text=True
    )
    post_form(client, "/console/clock", {"action": "resume"})
    assert 'id="clock-state">running' in client.get("/console/clock").get_data(as_text=True)
    post_form(client, "/console/clock", {"action": "reset"})
    assert 'id="clock-offset">0' in client.get("/console/clock").get_data(as_text=True)


def test_clock_shows_the_endpoints_message_for_a_bad_time(client, keys):
    sign_in(client, keys.admin)
    page = post_form(client, "/console/clock", {"action": "freeze", "freeze_at": "soon"})
    assert page.status_code == 200
    assert 'class="error"' in page.get_data(as_text=True)


def test_fault_add_applies_and_remove(client, keys):
    sign_in(client, keys.admin)
    added = post_form(
        client,
        "/console/faults",
        {"endpoint": "get-features", "workspace": "prod", "status": "503", "times": "1"},
    )
    assert added.status_code == 302
    page = client.get("/console/faults").get_data(as_text=True)
    assert "503" in page.split('id="faults"', 1)[1]
    tried = post_form(client, SERVICE_PAGE, TRY).get_data(as_text=True)
    assert 'id="status">503</span>' in tried
    post_form(
        client, "/console/faults", {"endpoint": "get-features", "status": "429", "workspace": "x"}
    )
    page = client.get("/console/faults").get_data(as_text=True)
    rule_id = re.search(r'action="/console/faults/([^/]+)/delete"', page).group(1)
    token = csrf_of(page)
    removed = client.post(f"/console/faults/{rule_id}/delete", data={"csrf_token": token})
    assert removed.status_code == 302
    assert "No fault rules." in client.get("/console/faults").get_data(as_text=True)


def test_fault_form_shows_the_endpoints_400(client, keys):
    sign_in(client, keys.admin)
    page = post_form(client, "/console/faults", {"endpoint": "get-features", "times": "-1"})
    assert page.status_code == 200
    assert "times" in page.get_data(as_text=True)
