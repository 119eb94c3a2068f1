"""The `campaign` program: global options, command groups, and the one error boundary."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer's own copy of click's errors
from typer.core import TyperGroup

from campaign_cli import __version__
from campaign_cli.cli import campaigns, channels, segments, sending, users
from campaign_cli.cli.context import AppContext
from campaign_cli.errors import CampaignError, Interrupted
from campaign_cli.settings import resolve
from campaign_cli.store.engine import translate_db_errors


class CampaignGroup(TyperGroup):
    """The root group: turns every CampaignError into one line on stderr and its exit code, and
    a usage error (unknown command or flag, missing or bad argument) into one line and exit 2."""

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
            with translate_db_errors():
                return super().invoke(ctx)
        except CampaignError as exc:
            _report(exc)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            _report(Interrupted("interrupted"))
            ctx.exit(Interrupted.exit_code)
        finally:
            if isinstance(ctx.obj, AppContext):
                ctx.obj.close()


def _report(exc: CampaignError) -> None:
    for line in str(exc).splitlines() or [type(exc).__name__]:
        typer.echo(f"error: {line}", err=True)


app = typer.Typer(
    cls=CampaignGroup,
    name="campaign",
    help="Send personalised announcements to chat users, exactly once per person.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(users.app, name="users", help="Import, list, get and delete users.")
app.add_typer(channels.app, name="channels", help="Import, list and get channels with their members.")
app.add_typer(segments.app, name="segment", help="Define who a campaign reaches: filters, all users, channels, target lists.")
campaigns.register(app)
sending.register(app)


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
