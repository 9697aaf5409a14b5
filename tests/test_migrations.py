"""The migrations are the schema: one head, they match the models, and they round-trip."""

import uuid

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

import app.emulator.models  # (registers the emulator tables)
import app.models  # noqa: F401  (registers the tables)
from app import migrate
from app.db import Base
from auth.models import AuthBase


def test_there_is_a_single_head():
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1


def test_models_and_migrations_agree(connection):
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    diff = compare_metadata(context, [Base.metadata, AuthBase.metadata])
    assert diff == []


def test_downgrade_to_base_and_upgrade_again(database_url):
    name = f"tectonite_roundtrip_{uuid.uuid4().hex[:8]}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(make_url(database_url).set(database=name))
    try:
        migrate.upgrade(engine)
        assert "online_values" in inspect(engine).get_table_names()
        migrate.downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def test_online_store_primary_key_serves_lookups_and_prefix_scans(connection):
    indexes = connection.execute(
        text(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'online_values' "
            "AND indexname = 'pk_online_values'"
        )
    ).scalar_one()
    assert "(feature_view_id, entity_key)" in indexes
    collation = connection.execute(
        text(
            "SELECT collation_name FROM information_schema.columns "
            "WHERE table_name = 'online_values' AND column_name = 'entity_key'"
        )
    ).scalar_one()
    assert collation == "C"
