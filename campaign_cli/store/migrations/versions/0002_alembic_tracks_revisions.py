"""Alembic tracks the schema from now on; `meta.schema_version` becomes 2 so that the release
before migrations, which knows only version 1, refuses the database instead of misreading it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def downgrade() -> None:
    op.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
