"""`tectonite serve --demo`: a live `demo` workspace with a feature service, values and a key.

Idempotent: definitions are applied only when they differ, the sample transactions are
ingested afresh relative to now (their views' earlier events are dropped, so the windows hold
exactly them), and the demo's service account is replaced, so exactly one demo key works at a
time.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import changes
from app.aggregation import spec_from_stored
from app.models import FeatureView
from app.repo.loader import load_definitions
from app.repo.plan import compute_plan
from app.repo.service import apply_plan, create_workspace
from app.repo.state import find_workspace, stored_definitions
from app.serving import clock
from app.store import EventRow, add_events, delete_values, entity_key
from auth import store

WORKSPACE = "demo"
SERVICE = "fraud_detection_feature_service"
ACCOUNT_NAME = "tectonite-demo"
DEFINITIONS = Path(__file__).with_name("features.yaml")
# (user, transaction id, amount, hours before the start of the current hour): every event lies
# in a complete tile of both views and inside their 1-day windows for the next ~20 hours.
TRANSACTIONS: tuple[tuple[str, str, float, int], ...] = (
    ("user_1", "t1", 25.5, 3),
    ("user_1", "t2", 60.0, 2),
    ("user_1", "t3", 89.55, 1),
    ("user_2", "t4", 100.0, 2),
    ("user_2", "t5", 141.0, 1),
)


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
    _ingest_transactions(session, workspace.id)
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


def _ingest_transactions(session: Session, workspace_id: int) -> None:
    hour = clock.now().replace(minute=0, second=0, microsecond=0)
    views = session.scalars(
        select(FeatureView).where(
            FeatureView.workspace_id == workspace_id, FeatureView.aggregation.is_not(None)
        )
    ).all()
    delete_values(session, [view.id for view in views])
    events = [
        EventRow(
            entity_key([user]),
            hour - timedelta(hours=hours) + timedelta(minutes=5),
            {"transaction_id": transaction, "amt": amount},
        )
        for user, transaction, amount, hours in TRANSACTIONS
    ]
    for view in views:
        spec = spec_from_stored(view.aggregation)
        assert spec is not None  # noqa: S101 (selected for it)
        add_events(session, view.id, spec, events)


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
