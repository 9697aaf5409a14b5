"""Typed slots in `app.extensions`: how per-app state is registered and reached.

Every piece of state a process keeps (caches, change subscribers, the store's connections) is
created by a package's `init_app(app)` and stored in one `Slot`; code reaches it through the
slot, for the current app or an explicit one. Two apps in one process therefore share nothing,
and tests reach state through the app they built, never through module globals.

    PLANS = Slot[PlanCache]("tectonite.ingest.plans")

    def init_app(app: Flask) -> None:
        PLANS.register(app, PlanCache())

    def plans() -> PlanCache:
        return PLANS.get()          # current_app's; PLANS.get(app) for another
"""

from __future__ import annotations

from typing import Generic, TypeVar

from flask import Flask, current_app

T = TypeVar("T")


class Slot(Generic[T]):
    """One named, typed entry of `app.extensions`."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def register(self, app: Flask, value: T) -> T:
        """Store `value` as this app's state; registering twice is a bug."""
        if self.key in app.extensions:
            raise RuntimeError(f"{self.key} is already registered on this app")
        app.extensions[self.key] = value
        return value

    def get(self, app: Flask | None = None) -> T:
        """The state of `app`, or of the current app (inside a request or app context)."""
        value: T = (app or current_app).extensions[self.key]
        return value
