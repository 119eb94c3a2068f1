"""A throwaway PostgreSQL server for the tests: initdb in a temporary folder, `postgres` on 127.0.0.1
with a free port, a fresh database per test, everything removed at the end.

The server binaries are found in $CAMPAIGN_TEST_PG_BIN, then on PATH, then in the usual
Debian/Ubuntu place (/usr/lib/postgresql/N/bin). PostgreSQL refuses to run as root: when the
tests run as root the server runs as the `postgres` user (or $CAMPAIGN_TEST_PG_USER), in a
folder that user owns.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

BINARIES = ("initdb", "postgres")
HOW_TO_GET = ("PostgreSQL server binaries (initdb, postgres) not found: install PostgreSQL 15 server "
              "(e.g. apt-get install postgresql-15) and put its bin folder on PATH, or set CAMPAIGN_TEST_PG_BIN to it")
# A role that must log in with a password, for the tests of authentication failures.
PASSWORD_ROLE = ("campaign_pw", "right-password")
# Durability is worthless for a server that lives for one test run; these make it fast.
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_connections": "200",
    "shared_buffers": "64MB",
    "listen_addresses": "127.0.0.1",
    "log_min_messages": "fatal",
    "logging_collector": "off",
}


def find_bin_dir() -> Path | None:
    """The folder holding initdb and postgres, or None when there is none."""
    candidates = []
    if os.environ.get("CAMPAIGN_TEST_PG_BIN"):
        candidates.append(Path(os.environ["CAMPAIGN_TEST_PG_BIN"]))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if all((folder / name).is_file() for name in BINARIES):
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One PostgreSQL server in a temporary folder.

    `schema()` gives a test a fresh, empty schema of the `campaign_tests` database (its URL puts
    the schema first on the search path): far quicker than a database per test. `database()`
    makes a whole fresh database, for tests that need one.
    """

    TESTS_DATABASE = "campaign_tests"

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.run_as = self._unprivileged_user()
        self.folder = Path(tempfile.mkdtemp(prefix="campaign-pg-"))
        self.data = self.folder / "data"
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._admin: psycopg.Connection | None = None
        self._tests: psycopg.Connection | None = None
        self._names = itertools.count(1)

    @staticmethod
    def _unprivileged_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        name = os.environ.get("CAMPAIGN_TEST_PG_USER", "postgres")
        try:
            return pwd.getpwnam(name)
        except KeyError:
            raise RuntimeError(f"running as root, PostgreSQL needs an unprivileged user: create '{name}' "
                               "(useradd) or set CAMPAIGN_TEST_PG_USER") from None

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, **self._as_user())

    def _as_user(self) -> dict:
        if self.run_as is None:
            return {}
        return {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        if self.run_as is not None:
            os.chown(self.folder, self.run_as.pw_uid, self.run_as.pw_gid)
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--no-sync", "--no-instructions", "--auth=trust")
        role, _ = PASSWORD_ROLE
        hba = f"local all all trust\nhost all {role} 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n"
        (self.data / "pg_hba.conf").write_text(hba, encoding="utf-8")
        for _ in range(5):
            self.port = _free_port()
            if self._launch():
                break
        else:
            raise RuntimeError(f"PostgreSQL did not start: {self._log_tail()}")
        role, password = PASSWORD_ROLE
        self.admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        self.admin.execute(f"CREATE DATABASE {self.TESTS_DATABASE}")
        self._tests = psycopg.connect(self.url(self.TESTS_DATABASE).replace("+psycopg", ""), autocommit=True)

    def _launch(self) -> bool:
        options = [arg for key, value in {**SETTINGS, "port": str(self.port),
                                          "unix_socket_directories": str(self.folder)}.items()
                   for arg in ("-c", f"{key}={value}")]
        log = (self.folder / "server.log").open("ab")
        self.process = subprocess.Popen([str(self.bin_dir / "postgres"), "-D", str(self.data), *options],
                                        stdout=log, stderr=log, start_new_session=True, **self._as_user())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # most likely the port was taken in between: try another
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        self.process.kill()
        return False

    def _log_tail(self) -> str:
        log = self.folder / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def admin(self) -> psycopg.Connection:
        """A superuser connection to the `postgres` database, in autocommit."""
        if self._admin is None:
            self._admin = psycopg.connect(self.admin_url, autocommit=True)
        return self._admin

    def url(self, database: str, user: str = "postgres", password: str | None = None) -> str:
        """The SQLAlchemy URL of `database` on this server."""
        login = f"{user}:{password}" if password is not None else user
        return f"postgresql+psycopg://{login}@127.0.0.1:{self.port}/{database}"

    def schema(self) -> str:
        """Create a fresh, empty schema in the tests database; returns its URL.

        Connections made with the URL have the schema alone on their search path, and carry its
        name as application_name so that `drop_schema` can end those a test left open.
        """
        name = f"test_{next(self._names)}"
        self._tests.execute(f"CREATE SCHEMA {name}")
        return f"{self.url(self.TESTS_DATABASE)}?options=-csearch_path%3D{name}&application_name={name}"

    def drop_schema(self, url: str) -> None:
        """Drop the schema of a URL made by `schema()`, ending the connections still using it."""
        name = url.rsplit("application_name=", 1)[1]
        self._tests.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = %s AND pid <> pg_backend_pid()", (name,))
        self._tests.execute(f"DROP SCHEMA {name} CASCADE")

    def database(self) -> str:
        """Create a fresh, empty database; returns its name."""
        name = f"test_db_{next(self._names)}"
        self.admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return name

    def drop(self, name: str) -> None:
        """Drop a database, ending any connection a test left open on it."""
        self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        for conn in (self._tests, self._admin):
            if conn is not None:
                conn.close()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
