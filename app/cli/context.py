"""What every CLI command shares: the settings and a lazily opened database."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from app import migrate
from app.config import Settings
from app.db import Database
from app.embedded import embedded_database_url


@dataclass
class CliContext:
    settings: Settings
    # Tests inject a Database bound to their transaction; otherwise one is opened on first use.
    injected_database: Database | None = None
    _database: Database | None = field(default=None, init=False)

    @property
    def database(self) -> Database:
        """The database, with its schema brought up to date (embedded server started if needed)."""
        if self.injected_database is not None:
            return self.injected_database
        if self._database is None:
            if self.settings.database_url is None:
                url = embedded_database_url(self.settings.data_dir)
                self.settings = self.settings.replace(database_url=url)
            database = Database.from_settings(self.settings)
            migrate.upgrade(database.engine)
            self._database = database
        return self._database

    def close(self) -> None:
        if self._database is not None:
            self._database.dispose()
            self._database = None


pass_context = click.make_pass_decorator(CliContext)
