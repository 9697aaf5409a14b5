"""Alembic environment and versions for Tectonite's schema (a package so it installs with app)."""
