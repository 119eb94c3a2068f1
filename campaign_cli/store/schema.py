"""Which revision of the schema a database is at: creating new databases at the latest one,
refusing older and newer ones, and upgrading with the Alembic migrations in `migrations/`.

Opening a database reads one row (`alembic_version`) and compares it with SCHEMA_REVISION;
Alembic itself is only imported to upgrade, or to tell an older revision from a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, Connection, MetaData, PrimaryKeyConstraint, String, Table, select

from campaign_cli.errors import InvalidInput
from campaign_cli.store import SCHEMA_REVISION, SCHEMA_VERSION
from campaign_cli.store.models import META, with_postgresql_options

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The release before migrations recorded only `meta.schema_version` = 1: its schema is revision 0001.
BASELINE = ("1", "0001")

# Alembic's own bookkeeping table, as Alembic creates it.
ALEMBIC_VERSION = Table(
    "alembic_version", MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


class SchemaTooOld(InvalidInput):
    """The database was made by an older release: `campaign db upgrade` brings it up to date."""


@dataclass(frozen=True)
class Revision:
    """Where a database stands: its revision (None when it is empty) and the latest one."""

    current: str | None
    latest: str = SCHEMA_REVISION

    @property
    def is_latest(self) -> bool:
        return self.current == self.latest


def stored_revision(conn: Connection, db_url: str) -> str | None:
    """The revision of the database on `conn` (at `db_url`, for messages): None for an empty database."""
    dialect = conn.dialect
    if dialect.has_table(conn, ALEMBIC_VERSION.name):
        return conn.scalar(select(ALEMBIC_VERSION.c.version_num))
    if not dialect.has_table(conn, META.name):
        return None
    version = conn.scalar(select(META.c.value).where(META.c.key == "schema_version"))
    if version is None:
        return None
    if not str(version).isdigit():
        raise InvalidInput(f"--db: database {db_url} has a garbled schema version {str(version)[:40]!r}; "
                           "it was not written by campaign or is damaged")
    return BASELINE[1] if version == BASELINE[0] else f"schema version {version}"


def create(conn: Connection) -> None:
    """Give an empty database the latest schema (the tables of models.py) and record its revision.

    The same as running every migration from scratch; tests/test_migrations.py checks that they agree.
    """
    with_postgresql_options().create_all(conn)
    ALEMBIC_VERSION.create(conn)
    conn.execute(ALEMBIC_VERSION.insert().values(version_num=SCHEMA_REVISION))
    conn.execute(META.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))


def check(revision: str, db_url: str) -> None:
    """Refuse a database at another revision than this campaign's."""
    if revision == SCHEMA_REVISION:
        return
    if revision in known_revisions():
        raise SchemaTooOld(f"database schema is older than this campaign (rev {revision} < {SCHEMA_REVISION}): "
                           "run 'campaign db upgrade'")
    raise InvalidInput(f"--db: database {db_url} has schema revision {revision}, newer than this campaign "
                       f"(knows up to {SCHEMA_REVISION}); upgrade campaign")


def known_revisions() -> list[str]:
    """Every revision this campaign has migrations for, oldest first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(MIGRATIONS))
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


def upgrade(conn: Connection, db_url: str) -> Revision:
    """Bring the database on `conn` (in a transaction) to the latest revision; returns where it was."""
    from alembic import command

    before = stored_revision(conn, db_url)
    if before is None:
        create(conn)
        return Revision(None)
    if before != SCHEMA_REVISION and before not in known_revisions():
        check(before, db_url)
    config = _alembic_config(conn)
    if not conn.dialect.has_table(conn, ALEMBIC_VERSION.name):
        command.stamp(config, BASELINE[1])
    command.upgrade(config, "head")
    return Revision(before)


def _alembic_config(conn: Connection):  # noqa: ANN202 - alembic is imported lazily
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def database_revision(db_url: str) -> Revision:
    """Where the database at `db_url` stands; a missing SQLite file is not created."""
    from campaign_cli.store.engine import open_engine, reading, shown_url, sqlite_file_missing, translate_db_errors

    if sqlite_file_missing(db_url):
        return Revision(None)
    engine = open_engine(db_url, check_schema=False)
    try:
        with translate_db_errors(db_url), reading(engine) as conn:
            return Revision(stored_revision(conn, shown_url(db_url)))
    finally:
        engine.dispose()


def upgrade_database(db_url: str) -> Revision:
    """Upgrade the database at `db_url` to the latest revision in one transaction; returns where it was.

    On SQLite the foreign keys are off while migrating: a migration that rebuilds a table (copy,
    drop, rename) must not cascade the drop to the rows that refer to it. They are checked after.
    """
    from campaign_cli.store.engine import open_engine, shown_url, translate_db_errors, writing

    engine = open_engine(db_url, check_schema=False)
    try:
        with translate_db_errors(db_url), writing(engine, sqlite_pragmas={"foreign_keys": "OFF"}) as conn:
            revision = upgrade(conn, shown_url(db_url))
            if conn.dialect.name == "sqlite" and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise InvalidInput("the upgrade would break references between tables; nothing was changed")
        return revision
    finally:
        engine.dispose()
