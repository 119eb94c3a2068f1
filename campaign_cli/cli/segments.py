"""`campaign segment …`: create, get, update, delete, list; add, remove, page and sync targets; refresh."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from campaign_cli.cli import complete
from campaign_cli.cli.context import db_url_of, engine_of, engine_or_new_of
from campaign_cli.cli.output import (FilterOption, JsonOption, NextOption, PrevOption, emit_json, plural, print_page, say,
                                     say_cursors)
from campaign_cli.errors import NotFound, UsageError
from campaign_cli.startup import lazy_module
from campaign_cli.store import lookup

# Loaded (with SQLAlchemy) by the first command that uses them: `target-exists` may answer without.
service = lazy_module("campaign_cli.segments")
filters = lazy_module("campaign_cli.filters")

app = typer.Typer(no_args_is_help=True)

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="The segment id.", autocompletion=complete.segment_ids)]
DefinitionOption = Annotated[Path | None, typer.Option("-f", "--file", readable=False, help="YAML definition file.")]
TypeOption = Annotated[str | None, typer.Option("--type", help="user or channel.")]
SegmentIdOption = Annotated[str | None, typer.Option("--id", help="Segment id (generated when left out).")]
NameOption = Annotated[str | None, typer.Option("--name", help="Name, at most 128 characters.")]
DescriptionOption = Annotated[str | None, typer.Option("--description", help="Description, at most 256 characters.")]
AllUsersOption = Annotated[bool | None, typer.Option("--all-users/--no-all-users", help="Every user (user segments).")]
AllSenderChannelsOption = Annotated[
    bool | None,
    typer.Option("--all-sender-channels/--no-all-sender-channels",
                 help="Every channel the campaign's sender is a member of (channel segments)."),
]
SortOption = Annotated[list[str] | None, typer.Option("--sort", help="field or -field; repeatable.")]
TargetsArgument = Annotated[list[str] | None, typer.Argument(metavar="[TARGET]...", help="Target ids.")]
TargetsFileOption = Annotated[
    str | None, typer.Option("-f", "--file", help="File of target ids, one a line; - reads stdin.")
]


def _flags(**given: Any) -> dict[str, Any]:
    flags = {key: value for key, value in given.items() if value is not None}
    if "filter" in flags:
        flags["filter"] = filters.parse_filter_text(flags["filter"])
    return flags


def _specs(file: Path | None, flags: dict[str, Any]) -> tuple[list[service.SegmentSpec], bool]:
    """The definitions to apply: from the YAML file, or from the flags (never both)."""
    if file is None:
        return [service.spec_from_flags(**flags)], False
    if flags:
        raise UsageError(f"give either -f FILE or flags, not both (got -f and --{next(iter(flags)).replace('_', '-')})")
    return service.load_specs(file)


def _print_segments(segments: list[dict], listed: bool, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json({"segments": segments} if listed else {"segment": segments[0]})
        return
    for segment in segments:
        say(f"{verb} {segment['type']} segment {segment['id']} (size {segment['size']:,})")


@app.command("create")
def create(
    ctx: typer.Context,
    file: DefinitionOption = None,
    type_: TypeOption = None,
    id_: SegmentIdOption = None,
    name: NameOption = None,
    description: DescriptionOption = None,
    filter_: FilterOption = None,
    all_users: AllUsersOption = None,
    all_sender_channels: AllSenderChannelsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create segments from a YAML file (all or nothing), or one segment from flags."""
    flags = _flags(type=type_, id=id_, name=name, description=description, filter=filter_,
                   all_users=all_users, all_sender_channels=all_sender_channels)
    specs, listed = _specs(file, flags)
    _print_segments(service.create_segments(engine_or_new_of(ctx), specs), listed, as_json, "created")


@app.command("get")
def get(ctx: typer.Context, segment_id: IdArgument, as_json: JsonOption = False) -> None:
    """Show one segment (deleted ones too, with their deleted_at), as {"segment": {...}}."""
    emit_json({"segment": service.get_segment(engine_of(ctx), segment_id)})


@app.command("update")
def update(
    ctx: typer.Context,
    segment_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="The segment (else the ids in the file).")
    ] = None,
    file: DefinitionOption = None,
    type_: TypeOption = None,
    name: NameOption = None,
    description: DescriptionOption = None,
    filter_: FilterOption = None,
    all_users: AllUsersOption = None,
    all_sender_channels: AllSenderChannelsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Update segments from a YAML file, or one segment from flags; fields left out are kept."""
    flags = _flags(type=type_, name=name, description=description, filter=filter_,
                   all_users=all_users, all_sender_channels=all_sender_channels)
    if file is None and (segment_id is None or not flags):
        raise UsageError("give ID and the flags to change, or -f FILE")
    specs, listed = _specs(file, flags)
    _print_segments(service.update_segments(engine_of(ctx), specs, segment_id), listed, as_json, "updated")


@app.command("delete")
def delete(ctx: typer.Context, segment_id: IdArgument, as_json: JsonOption = False) -> None:
    """Delete a segment (soft: it keeps its id and is no longer listed nor usable by campaigns)."""
    segment = service.delete_segment(engine_of(ctx), segment_id)
    emit_json({"segment": segment}) if as_json else say(f"deleted segment {segment['id']}")


@app.command("list")
def list_(
    ctx: typer.Context,
    filter_: FilterOption = None,
    sort: SortOption = None,
    limit: Annotated[int, typer.Option("--limit", help="Segments per page, at most 100.")] = 100,
    next_: NextOption = None,
    prev: PrevOption = None,
    as_json: JsonOption = False,
) -> None:
    """List segments; --filter and --sort over id, name, type, all_users, created_at, updated_at."""
    page = service.list_segments(engine_of(ctx), filters.parse_filter_text(filter_), sort or [], limit, next_, prev)
    print_page(page, "segments", as_json, ["id", "type", "name", "size", "all_users", "all_sender_channels",
                                                 "created_at"])


def _target_sources(targets: list[str] | None, file: str | None) -> list[service.TargetSource]:
    """Ids from the arguments and --file; with neither, from stdin."""
    sources = [service.TargetSource("arguments", targets)] if targets else []
    if file is not None:
        sources.append(service.TargetSource(file))
    if sources:
        return sources
    if sys.stdin.isatty():
        raise UsageError("give target ids as arguments, with --file F, or on stdin")
    return [service.TargetSource("-")]


@app.command("add-targets")
def add_targets(
    ctx: typer.Context, segment_id: IdArgument, targets: TargetsArgument = None, file: TargetsFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add targets (user ids or channel cids) to a manual segment; any number, ids already there are kept."""
    result = service.add_targets(engine_of(ctx), segment_id, _target_sources(targets, file))
    emit_json(result) if as_json else say(f"added {plural(result['added'], 'target')} to segment {segment_id} "
                                          f"(size {result['size']:,})")


@app.command("remove-targets")
def remove_targets(
    ctx: typer.Context, segment_id: IdArgument, targets: TargetsArgument = None, file: TargetsFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove targets from a manual segment; ids that are not there are ignored."""
    result = service.remove_targets(engine_of(ctx), segment_id, _target_sources(targets, file))
    emit_json(result) if as_json else say(f"removed {plural(result['removed'], 'target')} from segment "
                                          f"{segment_id} (size {result['size']:,})")


@app.command("targets")
def targets(
    ctx: typer.Context,
    segment_id: IdArgument,
    filter_: Annotated[
        str | None, typer.Option("--filter", help="Filter on target_id ($eq $in $gt $gte $lt $lte).")
    ] = None,
    sort: Annotated[list[str] | None, typer.Option("--sort", help="target_id (default) or -target_id.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Targets per page, at most 10,000.")] = 1000,
    next_: NextOption = None,
    prev: PrevOption = None,
    as_json: JsonOption = False,
) -> None:
    """Page through a segment's targets sorted by target id (one id a line, or JSON)."""
    page = service.list_targets(engine_of(ctx), segment_id, filters.parse_filter_text(filter_), sort or [], limit,
                                next_, prev)
    if as_json:
        emit_json(page.envelope("targets"))
        return
    if not page.items and not page.cursors():
        say("no targets match")
    sys.stdout.write("".join(item["target_id"] + "\n" for item in page.items))
    say_cursors(page)


@app.command("target-exists")
def target_exists(
    ctx: typer.Context, segment_id: IdArgument, target_id: Annotated[str, typer.Argument(metavar="TARGET")],
    as_json: JsonOption = False,
) -> None:
    """Exit 0 when TARGET is a target of the segment, 4 when it is not."""
    found = lookup.target_exists(db_url_of(ctx), segment_id, target_id)
    if found is None:
        found = service.target_exists(engine_of(ctx), segment_id, target_id)
    if as_json:
        emit_json({"segment_id": segment_id, "target_id": target_id, "exists": found})
    if not found:
        raise NotFound(f"{target_id!r} is not a target of segment {segment_id!r}")
    if not as_json:
        say(f"{target_id} is a target of segment {segment_id}")


@app.command("sync")
def sync(
    ctx: typer.Context,
    segment_id: IdArgument,
    file: Annotated[str, typer.Option("-f", "--file", help="File of target ids, one a line; - reads stdin.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would change; change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Make a manual segment's targets equal the file: add what is missing, remove what is extra."""
    result = service.sync_targets(engine_of(ctx), segment_id, service.TargetSource(file), dry_run)
    if as_json:
        emit_json(result)
        return
    if dry_run:
        say(f"dry run: would add {plural(result['added'], 'target')} to and remove {plural(result['removed'], 'target')} "
            f"from segment {segment_id}; nothing changed")
    else:
        say(f"added {plural(result['added'], 'target')} to and removed {plural(result['removed'], 'target')} from "
            f"segment {segment_id} (size {result['size']:,})")


@app.command("refresh")
def refresh(ctx: typer.Context, segment_id: IdArgument, as_json: JsonOption = False) -> None:
    """Recompute a segment's size."""
    segment = service.refresh_segment(engine_of(ctx), segment_id)
    emit_json({"segment": segment}) if as_json else say(f"segment {segment['id']}: size {segment['size']:,}")
