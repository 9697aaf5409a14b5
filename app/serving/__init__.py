"""The Tecton-compatible serving API under `/api`; each module adds its endpoints to `bp`."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("serving", __name__, url_prefix="/api")

# Importing the modules registers their routes on `bp`.
from app.serving import routes, state  # noqa: E402

__all__ = ["bp", "routes", "state"]
