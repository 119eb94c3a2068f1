"""Schema migrations: the models and the Alembic revisions agree, a database of the previous release
is refused until `campaign db upgrade` brings it up to date with nothing lost, and `db status`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.autogenerate import compare_metadata
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from campaign_cli.store import schema
from campaign_cli.store import SCHEMA_REVISION
from campaign_cli.store.models import with_postgresql_options
from conftest import Cli
from send_helpers import get, messages

RELEASE = Path(__file__).resolve().parent / "fixtures" / "previous_release"
TABLES = ["campaign_targets", "campaigns", "channel_members", "channels", "events", "messages", "meta", "outbox",
          "push_notifications", "segment_targets", "segments", "users"]
OLDER = f"error: database schema is older than this campaign (rev 0001 < {SCHEMA_REVISION}): run 'campaign db upgrade'\n"


def migrate(url: str) -> None:
    """Run every migration, from an empty database to the latest revision, as Alembic does."""
    engine = create_engine(url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(schema.MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    engine.dispose()


def differences(url: str) -> list[Any]:
    """What Alembic's autogenerate would put in a new revision: where the database and the models differ."""
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                 with_postgresql_options())
    engine.dispose()
    return diff


def test_the_latest_revision_is_the_one_the_models_name():
    """A new revision must also move SCHEMA_REVISION in campaign_cli/store/__init__.py (and chain on the latest one)."""
    scripts = ScriptDirectory(str(schema.MIGRATIONS))
    assert scripts.get_heads() == [SCHEMA_REVISION]
    assert schema.known_revisions()[-1] == SCHEMA_REVISION


def test_the_migrations_build_the_schema_of_the_models(db_url):
    """A model changed without a revision (or a revision that does not match it) fails here."""
    migrate(db_url)
    assert differences(db_url) == []


def test_a_new_database_is_the_same_as_one_built_by_the_migrations(cli, db_url):
    cli.ok("users", "list")
    assert differences(db_url) == []
    assert cli.sql("SELECT version_num FROM alembic_version") == [(SCHEMA_REVISION,)]
    assert cli.sql("SELECT key, value FROM meta") == [("schema_version", "2")]
    assert cli.ok("db", "status").stdout == f"current revision: {SCHEMA_REVISION}\nlatest revision: {SCHEMA_REVISION}\n"


@pytest.fixture
def previous_release(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> Cli:
    """The CLI on a database made by the previous release (see fixtures/previous_release/make.py)."""
    dump = (RELEASE / f"{store}.sql").read_text(encoding="utf-8")
    if store == "sqlite":
        path = tmp_path / "campaign.db"
        with sqlite3.connect(path) as conn:
            conn.executescript(dump)
        return Cli(path, tmp_path, f"sqlite:///{path}", store)
    import psycopg

    server = request.getfixturevalue("pg_server")
    database = server.database()
    request.addfinalizer(lambda: server.drop(database))
    url = server.url(database)
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(dump)
    return Cli(url, tmp_path, url, store)


def columns(cli: Cli) -> dict[str, list[str]]:
    """The columns of every table of the previous release."""
    engine = create_engine(cli.url)
    found = inspect(engine)
    names = {table: [column["name"] for column in found.get_columns(table)] for table in TABLES}
    engine.dispose()
    return names


def rows(cli: Cli, names: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """Every row of every table (these columns of it), in a stable order."""
    return {table: sorted(cli.sql(f"SELECT {', '.join(names[table])} FROM {table}"), key=repr) for table in TABLES}


def test_a_database_of_the_previous_release_is_refused_until_upgraded(previous_release):
    cli = previous_release
    old_columns = columns(cli)
    before = rows(cli, old_columns)
    for args in (["users", "list"], ["get", "welcome"], ["users", "import", "-"]):
        run = cli(*args, input="")
        assert (run.exit_code, run.stdout, run.stderr) == (3, "", OLDER), args
    assert cli.ok("db", "status").stdout == f"current revision: 0001\nlatest revision: {SCHEMA_REVISION}\n"
    assert rows(cli, old_columns) == before

    run = cli.ok("db", "upgrade")

    assert run.stderr == f"upgraded the database from revision 0001 to {SCHEMA_REVISION}\n"
    after = rows(cli, old_columns)
    assert after.pop("meta") == [("schema_version", "2")]
    before.pop("meta")
    assert after == before
    assert cli.sql("SELECT version_num FROM alembic_version") == [(SCHEMA_REVISION,)]
    assert cli.sql("SELECT stats_failed_reasons FROM campaigns") == [("{}",)] * 3
    assert cli.sql("SELECT count(*) FROM segment_targets WHERE created_at IS NULL") == [(0,)]
    assert differences(cli.url) == []
    assert cli.ok("db", "upgrade").stderr == f"the database is already at the latest revision, {SCHEMA_REVISION}\n"


def test_the_upgraded_database_works_with_its_old_data(previous_release):
    cli = previous_release
    cli.ok("db", "upgrade")
    assert [u["id"] for u in cli.ok("users", "list", "--json").json()["users"]] == ["acme", "alice", "bob", "zoë", "dave"]
    zoe = cli.ok("users", "get", "zoë", "--json").json()
    assert (zoe["name"], zoe["meta"], zoe["banned"]) == ("Zoë «quoted»", {"ключ": "é"}, True)
    welcome = get(cli, "welcome")
    assert welcome["status"] == "completed"
    stats = welcome["stats"]
    assert (stats["stats_targets"], stats["stats_messages_sent"], stats["stats_channels_created"]) == (3, 2, 2)
    assert stats["stats_skipped"] == {"unknown_user": 1}
    texts = sorted(m["text"] for m in messages(cli, "welcome"))
    assert texts == ["Hi Alice", "Hi Bob"]
    assert get(cli, "later")["status"] == "scheduled"
    cli.ok("users", "import", str(cli.write_jsonl("more.jsonl", [{"id": "erin", "name": "Erin"}])))
    assert cli.ok("users", "list", "--count").stdout == "6\n"


def test_a_database_from_a_newer_release_is_refused_by_every_command_and_left_alone(cli):
    cli.ok("users", "list")
    cli.sql("UPDATE alembic_version SET version_num = '9999'")
    message = (f"error: --db: database {cli.url} has schema revision 9999, newer than this campaign "
               f"(knows up to {SCHEMA_REVISION}); upgrade campaign\n")
    for args in (["users", "list"], ["db", "upgrade"]):
        run = cli(*args)
        assert (run.exit_code, run.stdout, run.stderr) == (3, "", message), args
    assert cli.sql("SELECT version_num FROM alembic_version") == [("9999",)]
    assert cli.ok("db", "status").stdout == f"current revision: 9999\nlatest revision: {SCHEMA_REVISION}\n"


def test_db_upgrade_creates_a_new_database_at_the_latest_revision(bare_cli):
    assert bare_cli.ok("db", "upgrade").stderr == f"created the database at revision {SCHEMA_REVISION}\n"
    assert bare_cli.sql("SELECT version_num FROM alembic_version") == [(SCHEMA_REVISION,)]


def test_db_status_json(previous_release):
    assert previous_release.ok("db", "status", "--json").json() == {
        "current": "0001", "latest": SCHEMA_REVISION, "up_to_date": False}
