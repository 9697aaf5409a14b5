"""Writing feature values: the Stream Ingest API (`/ingest`, `/v2/ingest`) and bulk loads."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("ingest", __name__)

# Importing the module registers its routes on `bp`.
from app.ingest import routes  # noqa: E402

__all__ = ["bp", "routes"]
