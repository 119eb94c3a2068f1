"""Alembic migrations of the store: `env.py`, and one revision per schema change in `versions/`."""
