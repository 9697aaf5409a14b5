"""gunicorn entry point: `gunicorn wsgi:app`, configured from the environment (DATABASE_URL)."""

from app import create_app

app = create_app()
