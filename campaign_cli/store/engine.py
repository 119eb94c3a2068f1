"""Opening the database: engine, SQLite pragmas, schema creation and revision check, write transactions."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError

from campaign_cli.errors import CampaignError, DatabaseBusy, InvalidInput, NoDatabase
from campaign_cli.store import BUSY_TIMEOUT_MS, schema

# How long to wait for a PostgreSQL server to answer a connection; `?connect_timeout=N` in the URL wins.
CONNECT_TIMEOUT_S = 10


def open_engine(db_url: str, check_schema: bool = True, create: bool = True) -> Engine:
    """Open the database at `db_url`, refusing it when its schema revision is not this campaign's
    (`check_schema=False` leaves that to `campaign db`).

    With `create` (imports, create, send, run), a database that does not exist yet is created;
    without it, a missing database is exit 4 (`no database at PATH`) and nothing is created.
    """
    url = _parse_url(db_url)
    try:
        if url.get_backend_name() == "sqlite":
            _check_sqlite_path(url.database, create)
            engine = create_engine(url, json_serializer=json_text,
                                   connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
            _install_sqlite_pragmas(engine)
        else:
            connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_S}
            engine = create_engine(url, json_serializer=json_text, pool_pre_ping=True, connect_args=connect_args)
    except NoSuchModuleError:
        raise InvalidInput(f"--db: unknown kind of database {url.drivername!r} "
                           "(use a path, sqlite:/// or postgresql+psycopg://)") from None
    except ImportError as exc:
        raise InvalidInput(f"--db: the driver for {url.drivername} is not installed ({exc.name})") from None
    if check_schema:
        with translate_db_errors(db_url):
            _ensure_schema(engine, db_url, create)
    return engine


def shown_url(db_url: str) -> str:
    """`db_url` as messages show it: without its password."""
    url = _parse_url(db_url)
    return db_url if url.password is None else url.render_as_string(hide_password=True)


def sqlite_file_missing(db_url: str) -> bool:
    """Whether `db_url` names an SQLite file that does not exist (yet)."""
    url = _parse_url(db_url)
    database = url.database
    return url.get_backend_name() == "sqlite" and bool(database) and database != ":memory:" and not Path(database).exists()


def json_text(value: Any) -> str:
    """How JSON columns are written: compact, and with non-ASCII text as is rather than \\u escapes.

    SQLite's JSON paths match object keys as written, so a custom field named `ключ` is only
    found by a filter when the key is stored unescaped. orjson writes the same text ten times
    faster than the standard library, which a million-user import does three times per user; the
    standard library takes what orjson refuses (an integer beyond 64 bits).
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return _JSON_ENCODER.encode(value)


# Built once: json.dumps with options builds a new encoder on every call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _parse_url(db_url: str) -> Any:
    try:
        return make_url(db_url)
    except ArgumentError:
        raise InvalidInput(f"--db: not a path or SQLAlchemy URL: {db_url}") from None


def _check_sqlite_path(database: str | None, create: bool) -> None:
    if not database or database == ":memory:":
        return
    named = Path(database)  # as the user gave it, for messages
    # The file SQLAlchemy's SQLite dialect opens: `..` taken away as text, not through a symbolic link.
    path = Path(os.path.abspath(database))
    if not path.parent.is_dir():
        raise InvalidInput(f"--db: folder does not exist: {named.parent}")
    if not create and (not path.exists() or (path.is_file() and path.stat().st_size == 0)):
        raise NoDatabase(f"no database at {named}")
    if path.is_dir():
        raise InvalidInput(f"--db: is a folder, not a database file: {named}")
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise InvalidInput(f"--db: not an SQLite database: {named}")


def _install_sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN IMMEDIATE is possible.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA cache_size = -16384")
        cur.execute("PRAGMA temp_store = MEMORY")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that upgrades later
        # can fail with "database is locked" without waiting for the busy timeout.
        immediate = conn.get_execution_options().get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _ensure_schema(engine: Engine, db_url: str, create: bool) -> None:
    """Create an empty database at the latest revision (with `create`); refuse one at another revision."""
    with engine.connect() as conn:
        revision = schema.stored_revision(conn, shown_url(db_url))
    if revision is None and not create:
        engine.dispose()
        raise NoDatabase(f"no database at {_where(engine)}")
    if revision is None:
        with writing(engine) as conn:
            if schema.stored_revision(conn, shown_url(db_url)) is None:  # not created by another process meanwhile
                schema.create(conn)
        return
    schema.check(revision, shown_url(db_url))


def _where(engine: Engine) -> str:
    """The database a user named: the file of an SQLite URL, else the URL without its password."""
    if engine.url.get_backend_name() == "sqlite":
        return engine.url.database or ":memory:"
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def writing(engine: Engine, sqlite_pragmas: dict[str, Any] | None = None) -> Iterator[Connection]:
    """A write transaction (BEGIN IMMEDIATE on SQLite), committed on success, rolled back on error.

    `sqlite_pragmas` are set on the connection for this transaction only (some, like
    foreign_keys, cannot change inside a transaction), and put back afterwards.
    """
    with engine.connect() as conn:
        conn.execution_options(immediate=True)
        pragmas = sqlite_pragmas if conn.dialect.name == "sqlite" else None
        previous = _set_pragmas(conn, pragmas) if pragmas else {}
        try:
            with conn.begin():
                yield conn
        finally:
            if previous:
                _set_pragmas(conn, previous)


def _set_pragmas(conn: Connection, pragmas: dict[str, Any]) -> dict[str, Any]:
    """Set pragmas on the driver connection, outside any transaction; returns their previous values."""
    raw = conn.connection.dbapi_connection
    previous = {}
    for name, value in pragmas.items():
        previous[name] = raw.execute(f"PRAGMA {name}").fetchone()[0]
        raw.execute(f"PRAGMA {name} = {value}")
    return previous


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only connection."""
    with engine.connect() as conn:
        yield conn


@contextmanager
def translate_db_errors(what: str = "database") -> Iterator[None]:
    """Turn driver errors a user can cause (locked, not a database, disk full) into one clear line."""
    try:
        yield
    except OperationalError as exc:
        message = _first_line(exc.orig)
        if message.startswith(_CONNECT_FAILED):
            raise _connection_error(message, what) from None
        if "locked" in message or "busy" in message:
            raise DatabaseBusy(BUSY_TIMEOUT_MS / 1000) from None
        if "disk is full" in message or "full" in message:
            raise CampaignError(f"disk full while writing {what}; free space and run the command again") from None
        if "unable to open" in message:
            raise InvalidInput(f"--db: cannot open database {what}: {message}") from None
        raise CampaignError(f"database error: {message}") from None
    except DatabaseError as exc:
        message = _first_line(exc.orig)
        if "not a database" in message or "malformed" in message:
            raise InvalidInput(f"--db: not an SQLite database or corrupt: {what}") from None
        raise CampaignError(f"database error: {message}") from None


# How a failed connection to PostgreSQL is worded (libpq, then psycopg's own connect timeout).
_CONNECT_FAILED = ("connection failed:", "connection to server", "connection timeout expired")
_SERVER = re.compile(r'connection to server (?:at "(?P<host>[^"]*)"(?: \([^)]*\))?, port (?P<port>\d+)'
                     r'|on socket "(?P<socket>[^"]*)") failed: (?:FATAL: +)?(?P<why>.*)')


def _connection_error(message: str, what: str) -> CampaignError:
    """One line naming the server: a refused login is bad input (exit 3), anything else a failure (exit 1)."""
    server = _SERVER.search(message)
    if server:
        where, why = server["socket"] or f"{server['host']}:{server['port']}", server["why"].strip()
    else:
        where, why = _server_of(what), message.removeprefix("connection failed:").strip()
    if "authentication failed" in why or "no pg_hba.conf entry" in why or "does not exist" in why:
        return InvalidInput(f"--db: PostgreSQL at {where} refused the connection: {why}")
    if "timeout expired" in why:
        why = "no answer within the connect timeout"
    return CampaignError(f"cannot connect to PostgreSQL at {where}: {why}")


def _server_of(db_url: str) -> str:
    """host:port of a PostgreSQL URL, as far as it says."""
    try:
        url = make_url(db_url)
    except ArgumentError:
        return "the server"
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def _first_line(error: BaseException | None) -> str:
    """A driver message on one line (PostgreSQL's carry hints on further lines)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
