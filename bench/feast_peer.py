"""Builds a Feast feature repository serving the benchmark's entities and features.

Run by bench/run.py with the Python of Feast's own virtualenv (bench/.peers/feast), never the
project's: `feast_peer.py REPO_DIR DATA_DIR STORE [POSTGRES_URL]`, STORE being `sqlite` or
`postgres`. It writes feature_store.yaml and the definitions (the same 3 views and 10 features
as bench/features.yaml, one feature service), runs `feast apply`, and writes the CSVs' rows
into the online store with `write_to_online_store` (what materialization would write).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

DEFINITIONS = """
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Bool, Float64, Int64, String

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)


def source(name):
    return FileSource(name=name, path="data/" + name + ".parquet", timestamp_field="timestamp")


customer_activity = FeatureView(
    name="customer_activity", entities=[customer], ttl=timedelta(days=3650),
    schema=[Field(name="clicks_1h", dtype=Int64), Field(name="spend_1h", dtype=Float64),
            Field(name="last_page", dtype=String)],
    source=source("customer_activity"),
)
customer_profile = FeatureView(
    name="customer_profile", entities=[customer], ttl=timedelta(days=3650),
    schema=[Field(name="age", dtype=Int64), Field(name="country", dtype=String),
            Field(name="score", dtype=Float64), Field(name="vip", dtype=Bool)],
    source=source("customer_profile"),
)
customer_history = FeatureView(
    name="customer_history", entities=[customer], ttl=timedelta(days=3650),
    schema=[Field(name="orders_30d", dtype=Int64), Field(name="refunds_30d", dtype=Int64),
            Field(name="recent_categories", dtype=Array(String))],
    source=source("customer_history"),
)
bench_service = FeatureService(
    name="bench_service", features=[customer_activity, customer_profile, customer_history]
)
"""


def store_config(store: str, repo: Path, postgres_url: str | None) -> str:
    head = (
        "project: bench\n"
        f"registry: {repo / 'data' / 'registry.db'}\n"
        "provider: local\n"
        "entity_key_serialization_version: 3\n"
        "offline_store:\n  type: file\n"
    )
    if store == "sqlite":
        return head + f"online_store:\n  type: sqlite\n  path: {repo / 'data' / 'online.db'}\n"
    url = urlparse(postgres_url or "")
    # The embedded database is reached through a Unix socket directory given as ?host=...
    host = url.hostname or parse_qs(url.query).get("host", ["127.0.0.1"])[0]
    return head + (
        "online_store:\n  type: postgres\n"
        f"  host: {host}\n  port: {url.port or 5432}\n"
        f"  database: {url.path.lstrip('/')}\n  db_schema: public\n"
        f"  user: {url.username or 'postgres'}\n  password: '{url.password or ''}'\n"
        "  sslmode: disable\n"  # loopback; Feast requires SSL by default
    )


def main() -> None:
    import pandas as pd
    from feast import FeatureStore

    repo, data, store = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    postgres_url = sys.argv[4] if len(sys.argv) > 4 else None
    (repo / "data").mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(store_config(store, repo, postgres_url))
    (repo / "definitions.py").write_text(DEFINITIONS)
    frames = {}
    for view in ("customer_activity", "customer_profile", "customer_history"):
        frame = pd.read_csv(data / f"{view}.csv")
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        if view == "customer_history":
            frame["recent_categories"] = [["books", "games"]] * len(frame)
        if view == "customer_profile":
            frame["vip"] = frame["vip"].astype(bool)
        frame.to_parquet(repo / "data" / f"{view}.parquet")
        frames[view] = frame
    feast = str(Path(sys.executable).with_name("feast"))
    applied = subprocess.run([feast, "apply"], cwd=repo, capture_output=True, text=True)
    if applied.returncode:
        sys.exit(f"feast apply failed:\n{applied.stdout}\n{applied.stderr[-3000:]}")
    fs = FeatureStore(repo_path=str(repo))
    for view, frame in frames.items():
        fs.write_to_online_store(view, frame)
    print(f"feast {store} online store loaded: {len(frames['customer_activity']):,} entities")


if __name__ == "__main__":
    main()
