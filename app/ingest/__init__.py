"""Writing feature values: the Stream Ingest API (`/ingest`, `/v2/ingest`) and bulk loads."""

from __future__ import annotations

from flask import Blueprint, Flask

from app.extensions import Slot
from app.ingest.service import PlanCache

bp = Blueprint("ingest", __name__)
PLANS = Slot[PlanCache]("tectonite.ingest.plans")


def init_app(app: Flask) -> None:
    """The ingest endpoints, and the app's cache of push-source plans."""
    from app.ingest import routes  # noqa: F401  (importing it registers its routes on `bp`)

    PLANS.register(app, PlanCache())
    app.register_blueprint(bp)


__all__ = ["PLANS", "bp", "init_app"]
