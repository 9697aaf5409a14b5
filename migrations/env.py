"""Alembic environment: runs on the connection handed over by `app.migrate`, or on DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import app.emulator.models
import app.models  # noqa: F401  (registers the domain tables on Base.metadata)
from app.config import Settings
from app.db import Base
from auth.models import AuthBase

target_metadata = [Base.metadata, AuthBase.metadata]


def run_on(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_on(connection)
elif context.is_offline_mode():
    context.configure(url=Settings.from_env().sqlalchemy_url, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(Settings.from_env().sqlalchemy_url)
    with engine.begin() as conn:
        run_on(conn)
    engine.dispose()
