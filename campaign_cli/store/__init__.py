"""The store: table models, the engine and the bulk queries, through SQLAlchemy; and `lookup`, a few
lookups by key on SQLite through the standard library's driver, for commands that scripts call in loops.

The schema's revision is kept here, where reading it costs no import of SQLAlchemy.
"""

# The Alembic revision of the tables in models.py (migrations/versions/): a table change comes with
# a new revision chained on this one, and moves this to it.
SCHEMA_REVISION = "0004"
# What `meta.schema_version` holds: the release before migrations knows only 1 and refuses more.
SCHEMA_VERSION = 2
# How long a command waits for another process's write lock on an SQLite database.
BUSY_TIMEOUT_MS = 10_000
