import orjson
from sqlalchemy import create_engine, text

from app import create_app
from app.db import Database


def test_healthz_answers_without_touching_the_database(settings):
    dead = Database(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    response = create_app(settings, database=dead).test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_is_200_when_the_schema_is_current(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["status"] == "ready"


def test_readyz_is_503_when_the_database_is_unreachable(settings):
    dead = Database(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    response = create_app(settings, database=dead).test_client().get("/readyz")
    assert response.status_code == 503
    body = orjson.loads(response.data)
    assert body["code"] == 14
    assert body["message"].startswith("Not ready: database unreachable")


def test_readyz_is_503_when_migrations_are_pending(client, connection):
    connection.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "tectonite db upgrade" in response.json["message"]


def test_health_endpoints_need_no_api_key(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
