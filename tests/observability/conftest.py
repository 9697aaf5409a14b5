"""Serving fixtures (a live fraud workspace and keys) shared with tests/serving."""

from tests.serving.conftest import auth, consumer_key, fraud, live  # noqa: F401
