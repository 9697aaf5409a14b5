"""`tectonite serve --init DIR` / TECTONITE_INIT_DIR against a real server process."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.conftest import start_server
from tests.initdir.helpers import features_body, fixed_key, fraud_init_dir

JOIN_KEYS = {"user_id": "user_2", "merchant": "fraud_Sporer-Keebler"}


def _env(url: str, tmp_path) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "WEB_CONCURRENCY": "1",
        "TECTONITE_THREADS": "2",
        "TECTONITE_DATA_DIR": str(tmp_path / "data"),
    }


def test_serve_init_is_ready_with_the_directory_loaded_and_restarts_unchanged(
    new_database, tmp_path
):
    key = fixed_key()
    init = fraud_init_dir(tmp_path, keys=f"- {{description: ci, role: consumer, key: {key}}}\n")
    env = _env(new_database(), tmp_path)
    server = start_server({**env, "TECTONITE_INIT_DIR": str(init)})
    try:
        output = "".join(server.output)
        assert "Init directory: applied prod" in output
        with httpx.Client(base_url=server.base_url) as http:
            assert http.get("/readyz").status_code == 200
            response = http.post(
                "/api/v1/feature-service/get-features",
                json=features_body("prod", JOIN_KEYS),
                headers={"Authorization": f"Tecton-key {key}"},
            )
        assert response.status_code == 200, response.text
        body = response.json()
        values = dict(
            zip(
                [f["name"] for f in body["metadata"]["features"]],
                body["result"]["features"],
                strict=True,
            )
        )
        assert values["user_profile.segment"] == "standard"
        assert values["merchant_fraud_rate.is_fraud_mean_1d_1d"] == 0.5
    finally:
        assert server.stop() == 0

    again = start_server(env, "--init", str(init))
    try:
        output = "".join(again.output)
        assert "unchanged prod" in output
        assert "0 key(s) created" in output
    finally:
        again.stop()


def test_serve_init_with_a_bad_file_never_starts(new_database, tmp_path):
    init = fraud_init_dir(tmp_path, keys="- {description: ci, role: wizard}\n")
    env = {**os.environ, **_env(new_database(), tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "0", "--init", str(init)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"{init / 'keys.yaml'}:1: `role` must be one of" in result.stderr
    assert "is serving the Tecton API" not in result.stdout
