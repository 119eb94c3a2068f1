"""The store: SQLite opened with WAL, busy timeout and foreign keys; tables created on first use;
a schema version that refuses newer databases; clear errors for files that are not databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from campaign_cli.store import SCHEMA_REVISION, SCHEMA_VERSION
from campaign_cli.store import engine as store_engine
from campaign_cli.store.engine import open_engine, reading

TABLES = {"meta", "alembic_version", "users", "channels", "channel_members", "messages", "events", "segments", "segment_targets",
          "campaigns", "campaign_targets", "push_notifications", "outbox"}


def fails(run: Any, exit_code: int, message: str) -> None:
    lines = run.stderr.splitlines()
    assert (run.exit_code, lines) == (exit_code, [f"error: {message}"])
    assert "Traceback" not in run.stderr and run.stdout == ""


def schema(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("select type, name, sql from sqlite_master order by name").fetchall()


@pytest.mark.sqlite_only
def test_first_use_creates_the_tables_and_stores_the_schema_version(cli):
    cli.ok("users", "list")
    with sqlite3.connect(cli.db) as conn:
        tables = {row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")}
        version = conn.execute("select value from meta where key = 'schema_version'").fetchall()
        mode = conn.execute("pragma journal_mode").fetchone()[0]
    assert TABLES <= tables
    assert version == [(str(SCHEMA_VERSION),)]
    assert mode == "wal"  # WAL is a property of the file, set on first use


def test_connections_have_foreign_keys_busy_timeout_and_normal_sync(tmp_path):
    engine = open_engine(f"sqlite:///{tmp_path / 'campaign.db'}")
    with reading(engine) as conn:
        pragmas = [conn.exec_driver_sql(f"pragma {name}").scalar() for name in
                   ("foreign_keys", "busy_timeout", "journal_mode", "synchronous")]
    assert pragmas == [1, store_engine.BUSY_TIMEOUT_MS, "wal", 1]  # synchronous 1 = NORMAL


def test_foreign_keys_are_enforced(tmp_path):
    engine = open_engine(f"sqlite:///{tmp_path / 'campaign.db'}")
    with reading(engine) as conn, pytest.raises(IntegrityError, match="FOREIGN KEY constraint failed"):
        conn.execute(text("insert into segment_targets (segment_pk, target_id) values (1, 'ghost')"))


@pytest.mark.sqlite_only
def test_reopening_keeps_data_and_the_version(cli):
    cli.write_jsonl("users.jsonl", [{"id": "u1"}])
    cli.ok("users", "import", str(cli.cwd / "users.jsonl"))
    cli.ok("users", "get", "u1")
    with sqlite3.connect(cli.db) as conn:
        assert conn.execute("select count(*) from meta").fetchone() == (1,)


@pytest.mark.sqlite_only
def test_a_database_from_a_newer_version_is_refused_and_left_alone(cli):
    cli.ok("users", "list")
    with sqlite3.connect(cli.db) as conn:
        conn.execute("update alembic_version set version_num = '9999'")
        conn.execute("drop table campaigns")
    before = schema(cli.db)
    run = cli("users", "list")
    fails(run, 3, f"--db: database sqlite:///{cli.db} has schema revision 9999, newer than this "
                  f"campaign (knows up to {SCHEMA_REVISION}); upgrade campaign")
    assert schema(cli.db) == before  # not "repaired": the missing table was not created


@pytest.mark.sqlite_only
def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(cli):
    cli.db.write_bytes(b"name,country\nAnn,FR\n")
    fails(cli("users", "list"), 3, f"--db: not an SQLite database: {cli.db}")
    assert cli.db.read_bytes() == b"name,country\nAnn,FR\n"


@pytest.mark.sqlite_only
def test_a_corrupt_sqlite_file_is_refused(cli):
    cli.db.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    fails(cli("users", "list"), 3, f"--db: not an SQLite database or corrupt: sqlite:///{cli.db}")


@pytest.mark.sqlite_only
def test_db_in_a_missing_folder_is_refused_and_the_folder_not_created(cli, tmp_path):
    missing = tmp_path / "no" / "such"
    run = cli("--db", str(missing / "campaign.db"), "users", "list")
    fails(run, 3, f"--db: folder does not exist: {missing}")
    assert not (tmp_path / "no").exists()


@pytest.mark.sqlite_only
def test_db_that_is_a_folder_is_refused(cli, tmp_path):
    fails(cli("--db", str(tmp_path), "users", "list"), 3, f"--db: is a folder, not a database file: {tmp_path}")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("foo://x/y", "--db: unknown kind of database 'foo' (use a path, sqlite:/// or postgresql+psycopg://)"),
        ("postgresql+nosuchdriver://u@localhost/db",
         "--db: unknown kind of database 'postgresql+nosuchdriver' (use a path, sqlite:/// or postgresql+psycopg://)"),
    ],
)
def test_unknown_database_url_is_exit_3(cli, url, message):
    fails(cli("--db", url, "users", "list"), 3, message)


@pytest.mark.sqlite_only
def test_a_locked_database_is_one_clear_line(cli, monkeypatch):
    cli.ok("users", "list")
    monkeypatch.setattr(store_engine, "BUSY_TIMEOUT_MS", 1000)
    cli.write_jsonl("users.jsonl", [{"id": "u1"}])
    holder = sqlite3.connect(cli.db, isolation_level=None)
    holder.execute("begin immediate")
    try:
        run = cli("users", "import", str(cli.cwd / "users.jsonl"))
    finally:
        holder.execute("rollback")
        holder.close()
    fails(run, 1, "database is locked by another process (waited 1 s); try again")
    assert cli.ok("users", "list", "--count").stdout == "0\n"
