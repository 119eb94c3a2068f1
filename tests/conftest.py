"""Shared fixtures: a fresh SQLite file per test and the real CLI, run in-process."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from campaign_cli.cli.app import app
from campaign_cli.store.engine import open_engine
from http_receiver import Receiver
from synapse_server import Synapse, synapse_available


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
    """Runs `campaign --db DB …` in-process, as a user would type it."""

    def __init__(self, db: Path, cwd: Path):
        self.db = db
        self.cwd = cwd
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


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI bound to a fresh, empty database file in a temporary folder.

    The database is created up front, as the first import would: most commands only open an
    existing database (`tests/test_read_only.py` covers a missing one).
    """
    open_engine(f"sqlite:///{tmp_path / 'campaign.db'}").dispose()
    return Cli(tmp_path / "campaign.db", tmp_path)


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
