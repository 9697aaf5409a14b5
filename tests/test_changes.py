"""Change notifications reach subscribers in this process and in other processes."""

import threading

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app import changes


@pytest.fixture
def received():
    seen: list[str] = []
    arrived = threading.Event()

    def on_change(detail: str) -> None:
        seen.append(detail)
        arrived.set()

    changes.subscribe("test-topic", on_change)
    yield seen, arrived
    changes._subscribers.pop("test-topic", None)


def test_announce_dispatches_locally_only_after_commit(database, received):
    seen, _ = received
    session = database.session()
    changes.announce(session, "test-topic", "ws1")
    assert seen == []
    session.commit()
    assert seen == ["ws1"]


def test_announce_is_not_dispatched_when_rolled_back(database, received):
    seen, _ = received
    session = database.session()
    changes.announce(session, "test-topic", "ws1")
    session.rollback()
    session.close()
    assert seen == []


def test_listener_receives_a_commit_from_another_connection(settings, received):
    seen, arrived = received
    listener = changes.ChangeListener(settings.libpq_url)
    listener.start()
    try:
        assert listener.connected.wait(10)
        arrived.clear()  # connecting dispatched "everything changed" ("") to all subscribers
        seen.clear()
        engine = create_engine(settings.sqlalchemy_url)
        with Session(engine) as session:
            changes.announce(session, "test-topic", "from-elsewhere")
            session.commit()
        engine.dispose()
        assert arrived.wait(5)
        assert "from-elsewhere" in seen
    finally:
        listener.stop()
        listener.join(5)
