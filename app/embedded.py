"""The embedded PostgreSQL server (pip package `pgserver`), used when DATABASE_URL is unset.

The server lives in `<TECTONITE_DATA_DIR>/pgdata` and survives restarts. Every process that
attaches (serve, a CLI command) registers itself; the server stops when the last one exits, so
CLI commands can run next to a running `tectonite serve`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

logger = logging.getLogger("tectonite.embedded")


def embedded_database_url(data_dir: Path) -> str:
    """Start (or attach to) the embedded server in `data_dir` and return its URL."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: only needed without DATABASE_URL

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir.resolve() / "pgdata", cleanup_mode="stop")
    url: str = server.get_uri()
    logger.debug("embedded PostgreSQL at %s", url)
    return url
