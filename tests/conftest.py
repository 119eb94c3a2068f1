"""Shared fixtures: a fresh database per test on each store (an SQLite file, and a database on a
throwaway PostgreSQL server), and the real CLI, run in-process.

Every test that uses `cli` or `db_url` runs once per store, `[sqlite]` and `[postgres]`; a test
about the SQLite file itself is marked `@pytest.mark.sqlite_only`. Without PostgreSQL server
binaries the `[postgres]` variants skip, saying how to get them, unless `CI` is set: then they fail.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from campaign_cli.cli.app import app
from campaign_cli.store.engine import open_engine
from http_receiver import Receiver
from pg_server import HOW_TO_GET, PgServer, find_bin_dir
from synapse_server import Synapse, synapse_available

STORES = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: about the SQLite file itself; runs on the sqlite store only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs a store once per store."""
    if "store" in metafunc.fixturenames:
        stores = ["sqlite"] if metafunc.definition.get_closest_marker("sqlite_only") else list(STORES)
        metafunc.parametrize("store", stores, indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    """The store this test runs on: `sqlite` or `postgres`."""
    return request.param


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server per test session (per xdist worker), removed at the end."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {HOW_TO_GET}", pytrace=False)
        pytest.skip(HOW_TO_GET)
    server = PgServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def db_url(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh, empty database on this test's store."""
    if store == "sqlite":
        yield f"sqlite:///{tmp_path / 'campaign.db'}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.schema()
    try:
        yield url
    finally:
        server.drop_schema(url)


@dataclass
class Run:
    """The outcome of one CLI run."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error_line(self) -> str:
        """The one stderr line of a failed run: it starts with 'error: ' and there is no traceback."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("error: ")
        return lines[0]


class Cli:
    """Runs `campaign --db DB …` in-process, as a user would type it.

    `db` is what `--db` gets: the SQLite file's path, or the PostgreSQL URL; `url` is the
    SQLAlchemy URL in both cases, `store` is `sqlite` or `postgres`.
    """

    def __init__(self, db: Path | str, cwd: Path, url: str | None = None, store: str = "sqlite"):
        self.db = db
        self.cwd = cwd
        self.url = url or f"sqlite:///{db}"
        self.store = store
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Run:
        result = self.runner.invoke(app, ["--db", str(self.db), *args], input=input, env=env, catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    def ok(self, *args: str, input: str | None = None) -> Run:
        """Run and insist on exit 0, showing stderr when it is not."""
        run = self(*args, input=input)
        assert run.exit_code == 0, f"exit {run.exit_code}: {run.stderr}"
        return run

    def write(self, name: str, text: str) -> Path:
        """Write a file beside the database and return its path."""
        path = self.cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def write_jsonl(self, name: str, records: list[dict]) -> Path:
        return self.write(name, "".join(json.dumps(r) + "\n" for r in records))

    def sql(self, statement: str, *params: Any) -> list[tuple]:
        """Run one statement straight on the database (`?` placeholders) and return its rows, committed.

        For what no command prints and for cheap polling. The drivers' own types come back: on
        SQLite times are text and booleans 0/1, on PostgreSQL datetimes and bools. JSON columns
        come back as their text on both.
        """
        if self.store == "sqlite":
            with sqlite3.connect(self.db, timeout=10) as conn:
                return conn.execute(statement, params).fetchall()
        import psycopg
        from psycopg.types.string import TextLoader

        with psycopg.connect(self.url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.adapters.register_loader("json", TextLoader)
            cursor = conn.execute(statement.replace("%", "%%").replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    def has_tables(self) -> bool:
        """Whether the database exists and has been given its tables (by a command that writes)."""
        if self.store == "sqlite" and not Path(self.db).exists():
            return False
        query = ("SELECT count(*) FROM sqlite_master WHERE name = 'users'" if self.store == "sqlite" else
                 "SELECT count(*) FROM information_schema.tables WHERE table_name = 'users' AND table_schema = current_schema()")
        return self.sql(query) == [(1,)]


@pytest.fixture
def bare_cli(db_url: str, store: str, tmp_path: Path) -> Cli:
    """The CLI bound to this test's store, with no database created yet (first use, `db upgrade`)."""
    db = tmp_path / "campaign.db" if store == "sqlite" else db_url
    return Cli(db, tmp_path, db_url, store)


@pytest.fixture
def cli(bare_cli: Cli) -> Cli:
    """The CLI bound to a fresh, empty database on this test's store (a file in a temporary folder on SQLite).

    The database is created up front, as the first import would: most commands only open an
    existing database (`tests/test_read_only.py` covers a missing one).
    """
    open_engine(bare_cli.url).dispose()
    return bare_cli


@pytest.fixture
def receivers():
    """Make real HTTP receivers on 127.0.0.1 (`receivers(secret)`); all are closed after the test."""
    made: list[Receiver] = []

    def make(secret: str | None = None) -> Receiver:
        made.append(Receiver(secret))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture(scope="session")
def synapse(tmp_path_factory):
    """A real Synapse homeserver on 127.0.0.1, one per test session (per xdist worker).

    Skipped where `matrix-synapse` is not installed, except under CI, where that is a failure.
    """
    if not synapse_available():
        if os.environ.get("CI"):
            pytest.fail("matrix-synapse is not installed (pip install -e '.[test]'); the Matrix tests must run in CI")
        pytest.skip("matrix-synapse is not installed (pip install -e '.[test]')")
    server = Synapse(tmp_path_factory.mktemp("synapse"))
    server.start()
    yield server
    server.close()
