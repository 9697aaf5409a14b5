"""`tectonite serve --demo`: a live `demo` workspace with a feature service, values and a key.

Idempotent: definitions are applied only when they differ, values are upserted, and the demo's
service account is replaced, so exactly one demo key works at a time.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import changes
from app.models import FeatureView
from app.repo.loader import load_definitions
from app.repo.plan import compute_plan
from app.repo.service import apply_plan, create_workspace
from app.repo.state import find_workspace, stored_definitions
from app.store import ValueRow, entity_key, features_json, put_values
from app.types import coerce_value, encode_value, parse_type
from auth import store

WORKSPACE = "demo"
SERVICE = "fraud_detection_feature_service"
ACCOUNT_NAME = "tectonite-demo"
DEFINITIONS = Path(__file__).with_name("features.yaml")
EVENT_TIME = datetime(2026, 1, 1, tzinfo=UTC)
VALUES: dict[str, dict[str, dict[str, Any]]] = {
    "user_transaction_amount_metrics": {
        "user_1": {"amt_mean_1d_10m": 58.35, "amt_sum_1d_10m": 842.86},
        "user_2": {"amt_mean_1d_10m": 120.5, "amt_sum_1d_10m": 241.0},
    },
    "user_transaction_counts": {
        "user_1": {"transaction_count_1d_1d": 3, "transaction_id_last_3_1d_1d": ["t1", "t2", "t3"]},
        "user_2": {"transaction_count_1d_1d": 2, "transaction_id_last_3_1d_1d": ["t4", "t5"]},
    },
}


@dataclass(frozen=True)
class Demo:
    workspace: str
    service: str
    api_key: str


def prepare_demo(session: Session, configured_secret: str | None) -> Demo:
    """Create or refresh the demo; the caller commits."""
    workspace = find_workspace(session, WORKSPACE) or create_workspace(
        session, WORKSPACE, live=True
    )
    desired = load_definitions(DEFINITIONS)
    plan = compute_plan(stored_definitions(session, workspace), desired)
    if not plan.empty:
        apply_plan(session, workspace, desired, plan)
    rows: list[ValueRow] = []
    for view_name, by_user in VALUES.items():
        view = session.scalars(
            select(FeatureView).where(
                FeatureView.workspace_id == workspace.id, FeatureView.name == view_name
            )
        ).one()
        types = {f.name: parse_type(f.type) for f in view.features}
        for user, values in by_user.items():
            encoded = {
                n: encode_value(types[n], coerce_value(types[n], v)) for n, v in values.items()
            }
            rows.append(ValueRow(view.id, entity_key([user]), EVENT_TIME, features_json(encoded)))
    put_values(session, rows)  # last-write-wins: newer values ingested into the demo stay
    for account in store.list_service_accounts(session):
        if account.name == ACCOUNT_NAME:
            store.delete_service_account(session, account.id)
    account = store.create_service_account(
        session, name=ACCOUNT_NAME, description="Created by tectonite serve --demo",
        created_by=getpass.getuser(),
    )  # fmt: skip
    _, new_key = store.create_api_key(
        session,
        store.server_secret(session, configured_secret),
        service_account_id=account.id,
        description="demo consumer key",
        created_by=getpass.getuser(),
    )
    store.assign_role(session, account.id, "consumer", WORKSPACE)
    changes.announce(session, changes.AUTH_TOPIC)
    return Demo(WORKSPACE, SERVICE, new_key.key)


def instructions(base_url: str, demo: Demo) -> str:
    """What `serve --demo` prints: the key and two snippets that work as printed."""
    body = (
        '{"params": {"workspaceName": "demo", "featureServiceName": "' + demo.service + '", '
        '"joinKeyMap": {"user_id": "user_1"}, "requestContextMap": {"amt": 100.0}, '
        '"metadataOptions": {"includeNames": true}}}'
    )
    return f"""
Demo workspace "{demo.workspace}" with feature service "{demo.service}" is ready.
API key (consumer on "{demo.workspace}"): {demo.api_key}

Try it with curl:

  curl -s -H 'Authorization: Tecton-key {demo.api_key}' \\
    -d '{body}' \\
    {base_url}/api/v1/feature-service/get-features

or with the official Python client (pip install tecton-client):

  from tecton_client import MetadataOptions, TectonClient
  client = TectonClient(url="{base_url}", api_key="{demo.api_key}", default_workspace_name="demo")
  response = client.get_features(
      feature_service_name="{demo.service}",
      join_key_map={{"user_id": "user_1"}},
      request_context_map={{"amt": 100.0}},
      metadata_options=MetadataOptions(include_names=True, include_data_types=True),
  )
  print(response.get_features_dict())
"""
