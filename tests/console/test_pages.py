"""What the console's pages show, checked against the API's own answers (Flask test client)."""

from __future__ import annotations

import html
import re

import orjson
import pytest

from app.console import emulator
from tests.console.helpers import post_form, sign_in

SERVICE = "fraud_detection_feature_service"
SERVICE_PAGE = f"/console/workspaces/prod/feature-services/{SERVICE}"
TRY = {"join_key.user_id": "user_1", "join_key.merchant": "m1", "context.amt": "100"}
SCHEMA_ROW = re.compile(
    r'<td><code>([^<]+)</code></td><td><span class="type" title="([^"]+)">([^<]+)</span>'
)


def _api(client, key, path, body):
    response = client.post(path, json=body, headers={"Authorization": f"Tecton-key {key}"})
    return response.status_code, orjson.loads(response.get_data())


def test_workspaces_show_live_and_development(client, keys):
    sign_in(client, keys.admin)
    page = client.get("/console/workspaces").get_data(as_text=True)
    assert re.search(r"prod</a></td>\s*<td><span class=\"pill live\">live", page)
    assert re.search(r"staging</a></td>\s*<td><span class=\"pill dev\">development", page)


def test_workspace_page_lists_every_kind_of_object_with_types(client, keys):
    sign_in(client, keys.prod_consumer)
    page = client.get("/console/workspaces/prod").get_data(as_text=True)
    for name in (SERVICE, "user_profile", "merchant_fraud_rate", "transactions", "fraud_user"):
        assert name in page
    realtime = page.split("Realtime feature views", 1)[1].split("Push sources", 1)[0]
    assert "transaction_amount_is_higher_than_average" in realtime
    assert "request <code>transaction_request</code>" in realtime
    struct = "struct&lt;lat: float64, lng: float64&gt;"
    assert f'title="Struct(lat Float64, lng Float64)">{struct}' in page
    sources = page.split("Push sources", 1)[1]
    assert '<code>amt</code> <span class="type" title="Float64">float64</span>' in sources


def test_service_schema_is_the_metadata_endpoints(client, keys):
    sign_in(client, keys.prod_consumer)
    page = client.get(SERVICE_PAGE).get_data(as_text=True)
    status, metadata = _api(
        client,
        keys.prod_consumer,
        "/api/v1/feature-service/metadata",
        {"params": {"workspaceName": "prod", "featureServiceName": SERVICE}},
    )
    assert status == 200
    schema = page.split('id="schema"', 1)[1].split("</table>", 1)[0]
    shown = [(name, orjson.loads(html.unescape(t))) for name, t, _ in SCHEMA_ROW.findall(schema)]
    assert shown == [(f["name"], f["dataType"]) for f in metadata["featureValues"]]
    for key in metadata["inputJoinKeys"] + metadata["inputRequestContextKeys"]:
        assert f"<code>{key['name']}</code>" in page


def test_try_it_shows_what_get_features_answers(client, keys):
    sign_in(client, keys.prod_consumer)
    form = {**TRY, "include_names": "1", "include_serving_status": "1"}
    response = post_form(client, SERVICE_PAGE, form)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<span class="pill live" id="status">200</span>' in page
    status, answer = _api(
        client,
        keys.prod_consumer,
        "/api/v1/feature-service/get-features",
        {
            "params": {
                "workspaceName": "prod",
                "featureServiceName": SERVICE,
                "joinKeyMap": {"user_id": "user_1", "merchant": "m1"},
                "requestContextMap": {"amt": 100.0},
                "metadataOptions": {"includeNames": True, "includeServingStatus": True},
            }
        },
    )
    assert status == 200
    table = page.split('id="features"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r'<td><code>([^<]+)</code></td><td><code class="value">([^<]*)</code></td><td>([^<]*)</td>',
        table,
    )
    expected = [
        (meta["name"], value, meta.get("status", ""))
        for meta, value in zip(
            answer["metadata"]["features"], answer["result"]["features"], strict=True
        )
    ]
    assert [(n, orjson.loads(html.unescape(v)), s) for n, v, s in rows] == expected
    assert ("user_last_transaction.amt", None, "MISSING_DATA") in expected  # a real mix


def test_try_it_snippets_are_runnable_and_hold_no_key(client, keys):
    sign_in(client, keys.prod_consumer)
    page = post_form(client, SERVICE_PAGE, {**TRY, "include_names": "1"}).get_data(as_text=True)
    curl = html.unescape(page.split('<pre id="curl">', 1)[1].split("</pre>", 1)[0])
    python = html.unescape(page.split('<pre id="python">', 1)[1].split("</pre>", 1)[0])
    assert curl.startswith("curl -sS -X POST http://localhost/api/v1/feature-service/get-features")
    assert "Tecton-key $TECTON_API_KEY" in curl
    body = orjson.loads(curl.rsplit("-d '", 1)[1].rstrip("'"))
    assert body["params"]["joinKeyMap"] == {"user_id": "user_1", "merchant": "m1"}
    assert body["params"]["requestContextMap"] == {"amt": 100.0}
    compile(python, "snippet.py", "exec")
    assert "metadata_options=MetadataOptions(include_names=True)" in python
    assert "request_context_map={'amt': 100.0}" in python
    for key in (keys.prod_consumer, keys.admin):
        assert key not in page


def test_try_it_reports_a_bad_value_without_sending(client, keys):
    sign_in(client, keys.prod_consumer)
    page = post_form(client, SERVICE_PAGE, {**TRY, "context.amt": "lots"}).get_data(as_text=True)
    assert "amt: &#39;lots&#39; is not a Float64" in page
    assert 'id="result"' not in page


def test_try_it_shows_tectons_error_for_a_missing_join_key(client, keys):
    sign_in(client, keys.prod_consumer)
    page = post_form(client, SERVICE_PAGE, {"context.amt": "1"}).get_data(as_text=True)
    assert 'id="status">400</span>' in page
    assert "Missing join key" in page or "join key" in page


def test_try_it_is_not_offered_on_a_development_workspace(client, keys):
    sign_in(client, keys.admin)
    page = client.get(f"/console/workspaces/staging/feature-services/{SERVICE}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Not servable" in text and 'id="run"' not in text


def test_feature_view_page_shows_stored_values(client, keys):
    sign_in(client, keys.prod_consumer)
    page = client.get("/console/workspaces/prod/feature-views/user_profile").get_data(as_text=True)
    assert '<dd id="entity-count">1</dd>' in page
    assert "<code>&#34;775&#34;</code>" in page  # int64 as the API writes it
    assert "<code>&#34;premium&#34;</code>" in page
    assert page.count('<svg class="chart"') == 2  # freshness + credit_score's distribution
    assert "Distribution of credit_score" in page


def test_access_page_shows_keys_obscured(client, keys):
    sign_in(client, keys.admin)
    page = client.get("/console/access").get_data(as_text=True)
    for key in (keys.admin, keys.prod_consumer, keys.staging_viewer):
        key_id = key.split("_")[1]
        assert f"<code>{key_id}</code>" in page
        assert f"<code>****{key[-4:]}</code>" in page
        assert key not in page and key.rsplit("_", 1)[1] not in page
    assert "consumer on prod" in page and "admin on all workspaces" in page


@pytest.mark.parametrize("path", ["/console/journal", "/console/clock", "/console/faults"])
def test_emulator_pages_say_when_the_build_has_no_emulator_api(client, keys, path, app):
    with app.test_request_context():
        if emulator.available():
            pytest.skip("this build serves /_emulator")
    sign_in(client, keys.admin)
    response = client.get(path)
    assert response.status_code == 200
    assert "Not available in this build" in response.get_data(as_text=True)
