"""Change notifications reach subscribers in this process and in other processes."""

import threading

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app import changes


@pytest.fixture
def feed(database):
    """A change feed told of the commits made through the test's `database` (as an app's is)."""
    feed = changes.ChangeFeed()
    database.change_feeds.add(feed)
    return feed


@pytest.fixture
def received(feed):
    seen: list[str] = []
    arrived = threading.Event()

    def on_change(detail: str) -> None:
        seen.append(detail)
        arrived.set()

    feed.subscribe("test-topic", on_change)
    return seen, arrived


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


def test_listener_receives_a_commit_from_another_connection(settings, feed, received):
    seen, arrived = received
    listener = feed.start_listener(settings.libpq_url)
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
        feed.stop_listener()


def test_two_apps_share_no_subscribers_or_caches(settings, engine_database):
    """State belongs to the app: a second app has its own feed, caches and authenticator."""
    from app import create_app, security
    from app.ingest import PLANS
    from app.serving import SERVING
    from app.store import STORE

    first, second = create_app(settings, database=engine_database), create_app(settings)
    try:
        assert changes.get_feed(first) is not changes.get_feed(second)
        for slot in (SERVING, PLANS, STORE, security.AUTHENTICATOR):
            assert slot.get(first) is not slot.get(second)
        services = SERVING.get(first).services
        services.entries[("ws", "svc")] = None
        changes.get_feed(second).dispatch(changes.DEFINITIONS_TOPIC, "ws")
        assert ("ws", "svc") in services.entries  # the other app's change feed did not reach it
        changes.get_feed(first).dispatch(changes.DEFINITIONS_TOPIC, "ws")
        assert ("ws", "svc") not in services.entries
    finally:
        STORE.get(second).close()
        from app.db import get_database

        get_database(second).dispose()
