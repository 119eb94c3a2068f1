"""A PostgreSQL server that cannot be reached, does not answer, or refuses the login: one line each,
naming the server, within the connect timeout, and no traceback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Cli
from pg_server import PASSWORD_ROLE, PgServer


def postgres_cli(url: str, tmp_path: Path) -> Cli:
    return Cli(url, tmp_path, url, "postgres")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never answers; yields the port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_is_not_there_is_exit_1_naming_it(tmp_path):
    port = closed_port()
    run = postgres_cli(f"postgresql+psycopg://campaign@127.0.0.1:{port}/campaign", tmp_path)("users", "list")
    assert (run.exit_code, run.stdout) == (1, "")
    assert run.error_line() == f"error: cannot connect to PostgreSQL at 127.0.0.1:{port}: Connection refused"


def test_a_server_that_does_not_answer_is_given_up_after_the_connect_timeout(tmp_path, silent_server):
    cli = postgres_cli(f"postgresql+psycopg://campaign@127.0.0.1:{silent_server}/campaign?connect_timeout=1", tmp_path)
    started = time.monotonic()
    run = cli("users", "list")
    elapsed = time.monotonic() - started
    assert (run.exit_code, run.stdout) == (1, "")
    assert run.error_line() == (f"error: cannot connect to PostgreSQL at 127.0.0.1:{silent_server}: "
                                "no answer within the connect timeout")
    assert 0.9 < elapsed < 5


def test_a_wrong_password_is_exit_3(tmp_path, pg_server: PgServer):
    role, password = PASSWORD_ROLE
    run = postgres_cli(pg_server.url("postgres", role, "wrong-" + password), tmp_path)("users", "list")
    assert (run.exit_code, run.stdout) == (3, "")
    assert run.error_line() == (f"error: --db: PostgreSQL at 127.0.0.1:{pg_server.port} refused the connection: "
                                f'password authentication failed for user "{role}"')


def test_a_database_that_does_not_exist_is_exit_3(tmp_path, pg_server: PgServer):
    run = postgres_cli(pg_server.url("no_such_db"), tmp_path)("users", "list")
    assert (run.exit_code, run.stdout) == (3, "")
    assert run.error_line() == (f"error: --db: PostgreSQL at 127.0.0.1:{pg_server.port} refused the connection: "
                                'database "no_such_db" does not exist')


def test_the_right_password_works(tmp_path, pg_server: PgServer):
    role, password = PASSWORD_ROLE
    database = pg_server.database()
    try:
        pg_server.admin.execute(f"ALTER DATABASE {database} OWNER TO {role}")
        cli = postgres_cli(pg_server.url(database, role, password), tmp_path)
        # An empty database holds no campaign schema yet: reading commands refuse it, writing ones create it.
        assert cli("users", "list", "--count").exit_code == 4
        cli.ok("db", "upgrade")
        assert cli.ok("users", "list", "--count").stdout == "0\n"
    finally:
        pg_server.drop(database)
