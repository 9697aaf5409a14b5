from pathlib import Path

import pytest

from app.config import Settings, SettingsError


def test_defaults_match_the_documented_table():
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.data_dir == Path(".tectonite")
    assert (settings.host, settings.port) == ("127.0.0.1", 8328)
    assert (settings.workers, settings.threads) == (2, 8)
    assert (settings.server, settings.read_timeout_s) == ("granian", 5)
    assert (settings.log_level, settings.log_format) == ("info", "text")


def test_every_variable_is_read():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u:p@db:5433/x",
            "TECTONITE_DATA_DIR": "/var/lib/t",
            "TECTONITE_HOST": "0.0.0.0",
            "PORT": "9000",
            "WEB_CONCURRENCY": "4",
            "TECTONITE_THREADS": "16",
            "LOG_LEVEL": "DEBUG",
            "LOG_FORMAT": "json",
            "TECTONITE_SECRET": "s3cret",
            "TECTONITE_SERVER": "gunicorn",
            "TECTONITE_READ_TIMEOUT": "12",
        }
    )
    assert (settings.server, settings.read_timeout_s) == ("gunicorn", 12)
    assert settings.database_url == "postgresql+psycopg://u:p@db:5433/x"
    assert settings.data_dir == Path("/var/lib/t")
    assert (settings.host, settings.port, settings.workers, settings.threads) == (
        "0.0.0.0",
        9000,
        4,
        16,
    )
    assert (settings.log_level, settings.log_format, settings.secret) == ("debug", "json", "s3cret")


@pytest.mark.parametrize(
    "url",
    ["postgresql://h/db", "postgresql+psycopg://h/db", "postgres://h/db"],
)
def test_database_url_accepts_both_spellings(url):
    assert Settings.from_env({"DATABASE_URL": url}).sqlalchemy_url == "postgresql+psycopg://h/db"


def test_scale_out_settings():
    """DATABASE_LISTEN_URL defaults to DATABASE_URL; replicas are a comma-separated list."""
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://p/db",
            "DATABASE_REPLICA_URL": "postgresql://r1/db, postgres://r2/db",
            "TECTONITE_REPLICA_MAX_LAG": "500ms",
            "TECTONITE_DATABASE_POOLER": "PgBouncer",
        }
    )
    assert settings.database_replica_urls == ("postgresql://r1/db", "postgresql://r2/db")
    assert settings.replica_max_lag_s == 0.5
    assert settings.behind_pgbouncer
    assert settings.listen_libpq_url == "postgresql://p/db"
    direct = settings.replace(database_listen_url="postgres://direct/db")
    assert direct.listen_libpq_url == "postgresql://direct/db"
    defaults = Settings.from_env({"DATABASE_URL": "postgresql://p/db"})
    assert (defaults.replica_max_lag_s, defaults.database_replica_urls) == (1.0, ())
    assert not defaults.behind_pgbouncer
    assert Settings.from_env({"TECTONITE_REPLICA_MAX_LAG": "2"}).replica_max_lag_s == 2.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be an integer"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be at least 1"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of text, json"),
        ({"TECTONITE_SERVER": "uwsgi"}, "TECTONITE_SERVER must be one of granian, gunicorn"),
        ({"TECTONITE_READ_TIMEOUT": "0"}, "TECTONITE_READ_TIMEOUT must be at least 1"),
        ({"DATABASE_URL": "mysql://h/db"}, "DATABASE_URL must start with postgresql://"),
        (
            {"DATABASE_REPLICA_URL": "postgresql://r/db,mysql://s/db"},
            "DATABASE_REPLICA_URL must start with postgresql://",
        ),
        ({"DATABASE_LISTEN_URL": "h/db"}, "DATABASE_LISTEN_URL must start with postgresql://"),
        ({"TECTONITE_DATABASE_POOLER": "pgpool"}, "must be one of none, pgbouncer"),
        ({"TECTONITE_REPLICA_MAX_LAG": "soon"}, "TECTONITE_REPLICA_MAX_LAG must be a number"),
        ({"TECTONITE_REPLICA_MAX_LAG": "0"}, "TECTONITE_REPLICA_MAX_LAG must be more than 0"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_cli_reports_a_bad_environment_as_a_usage_error():
    from click.testing import CliRunner

    from app.cli import cli

    result = CliRunner(env={"PORT": "x"}).invoke(cli, ["db", "current"])
    assert result.exit_code == 2
    assert "PORT must be an integer" in result.output
