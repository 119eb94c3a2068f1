"""Start-up stays light: `campaign --help` imports no database, template, HTTP or terminal library.

The timings live in bench/bench_startup.py; these tests guard the lazy imports they rely on.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from campaign_cli.cli.app import LAZY_COMMANDS, CampaignGroup, app

HEAVY = ("sqlalchemy", "pydantic", "jinja2", "httpx", "rich", "yaml", "alembic", "psycopg")
# What a quick read of an SQLite database needs none of: the ORM, the PostgreSQL dialect, templates,
# HTTP, YAML, migrations, pydantic, or the asyncio and importlib.metadata that SQLAlchemy imports.
NOT_FOR_A_READ = ("sqlalchemy.orm", "sqlalchemy.dialects.postgresql", "pydantic", "jinja2", "httpx", "yaml",
                  "alembic", "psycopg", "rich.progress", "asyncio", "importlib.metadata", "ssl")
PROBE = """
import sys
sys.argv = ["campaign", *{argv!r}]
from campaign_cli.cli.app import main
code = main()
heavy = sorted({{name for name in sys.modules if name in {heavy!r} or name.split(".")[0] in {heavy!r}}}
               & set({heavy!r}))
print("HEAVY:" + ",".join(heavy))
"""


def imported_after(*argv: str, heavy: tuple[str, ...] = HEAVY) -> tuple[list[str], str]:
    """Which of the `heavy` modules a fresh interpreter holds after running `campaign ARGV…`, and its output
    (stdout, then stderr)."""
    probe = PROBE.format(argv=list(argv), heavy=heavy)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    last = done.stdout.splitlines()[-1]
    assert last.startswith("HEAVY:")
    return [name for name in last.removeprefix("HEAVY:").split(",") if name], done.stdout + done.stderr


def test_help_imports_nothing_heavy():
    heavy, out = imported_after("--help")
    assert heavy == []
    assert "status" in out and "segment" in out


def test_version_imports_nothing_heavy():
    heavy, out = imported_after("--version")
    assert heavy == []
    assert out.startswith("campaign ")


def test_group_help_loads_only_its_module():
    heavy, out = imported_after("segment", "--help")
    assert "target-exists" in out
    assert "jinja2" not in heavy and "httpx" not in heavy


@pytest.mark.parametrize("name", list(LAZY_COMMANDS))
def test_short_help_known_by_heart_matches_the_command(name):
    group = typer.main.get_command(app)
    assert isinstance(group, CampaignGroup)
    command = group.get_command(typer.Context(group), name)
    assert command is not None
    assert command.get_short_help_str(limit=500) == LAZY_COMMANDS[name][1]


def test_every_command_of_the_modules_is_listed():
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    names = group.list_commands(ctx)
    assert names == list(LAZY_COMMANDS)
    for name in names:
        assert group.get_command(ctx, name).name == name


@pytest.mark.sqlite_only
def test_quick_reads_import_only_what_they_use(cli):
    """Shell loops call these on big databases: bench/bench_startup.py times them, this guards their imports."""
    cli.ok("users", "import", str(cli.write_jsonl("users.jsonl", [{"id": "ann"}, {"id": "bob"}])))
    cli.ok("segment", "create", "--type", "user", "--id", "beta")
    cli.ok("segment", "add-targets", "beta", "ann")
    cli.ok("segment", "create", "--type", "user", "--id", "everyone", "--all-users")
    # Lookups by key answer without SQLAlchemy (store/lookup.py); only a table needs Rich.
    lookups = {("users", "list", "--limit", "1"): ("ann", ("sqlalchemy",)),
               ("users", "get", "bob"): ('"bob"', ("sqlalchemy", "rich")),
               ("users", "list", "--json"): ('"bob"', ("sqlalchemy", "rich")),
               ("segment", "target-exists", "beta", "ann"): ("is a target", ("sqlalchemy", "rich")),
               ("segment", "target-exists", "everyone", "bob"): ("is a target", ("sqlalchemy", "rich"))}
    reads = {("segment", "list"): ("beta", ()), ("list",): ("HEAVY:", ()),
             ("users", "list", "--filter", '{"id": "ann"}'): ("ann", ()), **lookups}
    for argv, (shown, also_not_needed) in reads.items():
        heavy, out = imported_after("--db", str(cli.db), *argv, heavy=(*NOT_FOR_A_READ, *also_not_needed))
        assert heavy == [], f"campaign {' '.join(argv)} imported {heavy}"
        assert shown in out


DEFERRED_PROBE = """
import sys
import campaign_cli, sqlalchemy
from sqlalchemy.util import compat, concurrency
print("loaded:", sorted(name for name in ("asyncio", "importlib.metadata", "ssl") if name in sys.modules))
print("iscoroutine:", concurrency.iscoroutine(None))
print("version:", compat.importlib_metadata.version("sqlalchemy") == sqlalchemy.__version__)
import asyncio
async def three():
    return 3
print("run:", asyncio.run(three()), compat.asyncio.get_running_loop is asyncio.get_running_loop)
"""


def test_the_modules_deferred_while_sqlalchemy_is_imported_load_when_first_used():
    done = subprocess.run([sys.executable, "-c", DEFERRED_PROBE], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.splitlines() == ["loaded: []", "iscoroutine: False", "version: True", "run: 3 True"]


STAND_IN_PROBE = """
import sys
from campaign_cli import startup
read = []
load = startup.Deferred.load
startup.Deferred.load = lambda self: (read.append(self.__name__), load(self))[1]
import sqlalchemy, sqlalchemy.orm, sqlalchemy.dialects.sqlite, sqlalchemy.dialects.postgresql.psycopg
import alembic.command, alembic.migration, alembic.autogenerate
print("loaded through a stand-in:", read)
"""


def test_no_stand_in_is_loaded_while_the_sqlalchemy_and_alembic_modules_the_commands_use_are_imported():
    """A module loaded through its stand-in mid-import could be loaded twice (`import asyncio.events`
    reads the stand-in's __path__, which loads the package, then loads the submodule again)."""
    done = subprocess.run([sys.executable, "-c", STAND_IN_PROBE], capture_output=True, text=True, check=True,
                          timeout=60)
    assert done.stdout.splitlines() == ["loaded through a stand-in: []"]
