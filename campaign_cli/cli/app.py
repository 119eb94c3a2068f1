"""The `campaign` program: global options, command groups, and the one error boundary.

Start-up is kept fast for shell loops: the root group knows its commands' names and short help
by heart and imports a command's module (and with it SQLAlchemy, Jinja, Rich, …) only when that
command runs or is completed.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer's own copy of click's errors
from typer.core import TyperGroup

from campaign_cli import __version__
from campaign_cli.errors import CampaignError, Interrupted, InvalidInput

# Every command of the root: name → (module that defines it, short help). A module either holds a
# Typer `app` (a command group) or a `register(app)` function adding its commands to the root.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "users": ("campaign_cli.cli.users", "Import, list, get and delete users."),
    "channels": ("campaign_cli.cli.channels", "Import, list and get channels with their members."),
    "segment": ("campaign_cli.cli.segments", "Define who a campaign reaches: filters, all users, channels, target lists."),
    "create": ("campaign_cli.cli.campaigns", "Create draft campaigns from a YAML file (-f), or one from flags."),
    "get": ("campaign_cli.cli.campaigns", "Show a campaign: every field, its stats, segments, sender and a page of its users."),
    "status": ("campaign_cli.cli.campaigns", "Show a campaign's status, progress, rate and senders; --watch follows it live."),
    "update": ("campaign_cli.cli.campaigns", "Change a draft or scheduled campaign: the file's fields replace the stored ones."),
    "delete": ("campaign_cli.cli.campaigns", "Delete a campaign that is not in progress."),
    "list": ("campaign_cli.cli.campaigns", "List campaigns: --filter on id, name, sender_id, status, created_at, updated_at, segments."),
    "validate": ("campaign_cli.cli.campaigns", "Check campaign and segment definitions, templates and references; write nothing (exit 0 or 3)."),
    "start": ("campaign_cli.cli.sending", "Start a draft campaign: send it now in the foreground, or schedule it."),
    "stop": ("campaign_cli.cli.sending", "Stop a scheduled or running campaign (a running sender stops within one batch)."),
    "resume": ("campaign_cli.cli.sending", "Continue a stopped campaign, or one left in progress by a sender that died, in the foreground."),
    "run": ("campaign_cli.cli.sending", "Send the given campaigns, or every due one (scheduled time reached, or in progress with no live sender)."),
    "send": ("campaign_cli.cli.sending", "Create, start and send a campaign in one step; once it has completed, running it again sends nothing."),
    "preview": ("campaign_cli.cli.sending", "Render the first N targets' messages without writing anything."),
    "report": ("campaign_cli.cli.report", "Report a campaign's results: counts, skipped and failed by reason, messages over time (--html, --json)."),
    "messages": ("campaign_cli.cli.sending", "List messages the campaigns sent."),
    "events": ("campaign_cli.cli.sending", "List the events the campaigns emitted."),
    "db": ("campaign_cli.cli.db", "Upgrade the database schema (upgrade) and show its revision (status)."),
}


def _load_module_commands(module_name: str) -> dict[str, Any]:
    """The click commands a cli module defines, keyed by their name on the root."""
    module = importlib.import_module(module_name)
    holder = typer.Typer(rich_markup_mode=None)
    if hasattr(module, "register"):
        module.register(holder)
    else:
        for name, (owner, short_help) in LAZY_COMMANDS.items():
            if owner == module_name:
                holder.add_typer(module.app, name=name, help=short_help)
    return dict(typer.main.get_group(holder).commands)


class CampaignGroup(TyperGroup):
    """The root group: loads commands lazily, and turns every CampaignError into one line on stderr
    and its exit code, and a usage error (unknown command or flag, missing or bad argument) into
    one line and exit 2."""

    _loaded: dict[str, dict[str, Any]] = {}

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in LAZY_COMMANDS if name not in self.commands)]

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        module_name = LAZY_COMMANDS[cmd_name][0]
        if module_name not in self._loaded:
            self._loaded[module_name] = _load_module_commands(module_name)
        return self._loaded[module_name].get(cmd_name)

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        """The command list of `campaign --help`, from the short help known by heart (no module is imported)."""
        rows = [(name, LAZY_COMMANDS[name][1] if name in LAZY_COMMANDS else self.commands[name].get_short_help_str(limit=80))
                for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as exc:
            exc.show()  # a bare `campaign` (or command group) prints its help, as --help does
            sys.exit(exc.exit_code)
        except typer.TyperException as exc:  # click's errors: usage (exit 2), or a file flag it opened
            where = f"{exc.ctx.command_path}: " if isinstance(exc, UsageError) and exc.ctx else ""
            message = " ".join(exc.format_message().split())
            typer.echo(f"error: {where}{message}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            with _db_errors_translated():
                return super().invoke(ctx)
        except CampaignError as exc:
            _report(exc)
            ctx.exit(exc.exit_code)
        except UnicodeEncodeError as exc:
            if exc.reason != "surrogates not allowed":
                raise
            # Python reads bytes of an argument that are not UTF-8 as lone surrogates, which no
            # database or JSON document takes.
            bad = _not_utf8(exc)
            _report(bad)
            ctx.exit(bad.exit_code)
        except KeyboardInterrupt:
            _report(Interrupted("interrupted"))
            ctx.exit(Interrupted.exit_code)
        finally:
            from campaign_cli.cli.context import AppContext

            if isinstance(ctx.obj, AppContext):
                ctx.obj.close()


@contextmanager
def _db_errors_translated() -> Iterator[None]:
    """The store's database errors as one line (a command that answered without SQLAlchemy had none)."""
    try:
        yield
    except Exception:
        if "sqlalchemy" not in sys.modules:
            raise
        from campaign_cli.store.engine import translate_db_errors

        with translate_db_errors():
            raise


def _not_utf8(exc: UnicodeEncodeError) -> InvalidInput:
    text = exc.object if isinstance(exc.object, str) else ""
    shown = repr(text[:80].encode("utf-8", "surrogateescape"))[1:]
    return InvalidInput(f"not valid UTF-8: {shown}{'…' if len(text) > 80 else ''} (ids, names and other values must be UTF-8 text)")


def _report(exc: CampaignError) -> None:
    for line in str(exc).splitlines() or [type(exc).__name__]:
        typer.echo(f"error: {line}", err=True)


app = typer.Typer(
    cls=CampaignGroup,
    name="campaign",
    help="Send personalised announcements to chat users, exactly once per person.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"campaign {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[str | None, typer.Option("--db", help="Database: a path or an SQLAlchemy URL [env CAMPAIGN_DB; default campaign.db].")] = None,
    config: Annotated[str | None, typer.Option("--config", help="Config YAML [env CAMPAIGN_CONFIG].")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """campaign: segments, campaigns and an exactly-once sender loop for chat applications."""
    from campaign_cli.cli.context import AppContext
    from campaign_cli.settings import resolve

    try:
        ctx.obj = AppContext(resolve(db=db, config=config))
    except CampaignError as exc:
        _report(exc)
        ctx.exit(exc.exit_code)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `campaign` console script."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="campaign", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 1
        if os.environ.get("CAMPAIGN_DEBUG"):
            raise
        typer.echo(f"error: unexpected failure: {type(exc).__name__}: {exc}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
