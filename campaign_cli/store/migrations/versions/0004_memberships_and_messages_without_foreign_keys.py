"""Memberships and messages without foreign keys: on PostgreSQL each was a trigger run for every
row the sender wrote (a quarter of a batch's time); the writers now check the users a batch names
with one query, and `users delete` removes memberships itself.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# (table, column, referred table, referred column): PostgreSQL named them <table>_<column>_fkey.
FOREIGN_KEYS = [
    ("channel_members", "channel_pk", "channels", "pk"),
    ("channel_members", "user_id", "users", "id"),
    ("messages", "channel_pk", "channels", "pk"),
]
# SQLite's are unnamed: batch mode finds them by the name this convention gives them.
CONVENTION = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}


def _table_kwargs(table: str) -> dict:
    # A rebuilt SQLite table keeps its layout: channel_members is a WITHOUT ROWID table.
    return {"sqlite_with_rowid": False} if table == "channel_members" else {}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column, _, _ in FOREIGN_KEYS:
            op.drop_constraint(f"{table}_{column}_fkey", table, type_="foreignkey")
        return
    for table in ("channel_members", "messages"):
        # SQLite cannot drop a constraint: the table is copied without it.
        with op.batch_alter_table(table, recreate="always", naming_convention=CONVENTION,
                                  table_kwargs=_table_kwargs(table)) as batch_op:
            for name, column, _, _ in FOREIGN_KEYS:
                if name == table:
                    batch_op.drop_constraint(f"{table}_{column}_fkey", type_="foreignkey")


def downgrade() -> None:
    for table in ("channel_members", "messages"):
        with op.batch_alter_table(table, table_kwargs=_table_kwargs(table)) as batch_op:
            for name, column, referred, referred_column in FOREIGN_KEYS:
                if name == table:
                    batch_op.create_foreign_key(f"{table}_{column}_fkey", referred, [column], [referred_column],
                                                ondelete="CASCADE")
