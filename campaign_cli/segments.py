"""Segments: who a campaign reaches.

A segment is a `user` or `channel` segment defined by a `filter`, by `all_users`, by
`all_sender_channels`, or by targets added by hand (a *manual* segment). Manual targets
are streamed in chunks, so one call may add, remove or sync any number of them; `size` is
kept exact for manual segments and computed for the others on create, update and refresh.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import (
    Column, ColumnElement, Connection, Engine, MetaData, Row, Select, String, Table, delete, exists,
    func, insert, literal, select, update,
)

from campaign_cli.audience import SEGMENT_TARGETS, SEGMENTS, is_manual, segment_targets_select
from campaign_cli.channels import CHANNEL_FILTER
from campaign_cli.definitions import check_keys, load_definitions
from campaign_cli.errors import Conflict, InvalidInput, NotFound
from campaign_cli.files import open_file
from campaign_cli.filters import FieldSpec, FilterSchema, compile_filter
from campaign_cli.paging import Page, check_limit, keyset_page
from campaign_cli.store.bulk import json_array_table
from campaign_cli.store.engine import reading, writing
from campaign_cli.timeutil import now, to_json
from campaign_cli.users import MAX_ID, USER_FILTER

TYPES = ("user", "channel")
MAX_NAME = 128
MAX_DESCRIPTION = 256
MAX_LIST_LIMIT = 100
MAX_TARGETS_LIMIT = 10_000
TARGET_CHUNK = 50_000
KIND_KEYS = ("filter", "all_users", "all_sender_channels")
SEGMENT_KEYS = frozenset({"id", "type", "name", "description", *KIND_KEYS})
DEFINITION_KEYS = SEGMENT_KEYS | {"targets", "targets_file"}
DEFAULTS: dict[str, Any] = {"name": "", "description": "", "filter": None, "all_users": False,
                            "all_sender_channels": False}

LIST_FILTER = FilterSchema(
    name="segments",
    fields={
        "id": FieldSpec(SEGMENTS.c.id, "string", nullable=False),
        "name": FieldSpec(SEGMENTS.c.name, "string", nullable=False),
        "type": FieldSpec(SEGMENTS.c.type, "string", nullable=False),
        "all_users": FieldSpec(SEGMENTS.c.all_users, "bool", nullable=False),
        "created_at": FieldSpec(SEGMENTS.c.created_at, "time", nullable=False),
        "updated_at": FieldSpec(SEGMENTS.c.updated_at, "time", nullable=False),
    },
)
TARGET_OPS = frozenset({"$eq", "$in", "$gte", "$lte", "$gt", "$lt"})

# The ids a `sync` makes the targets equal to; a temporary table lets SQL compute both differences.
_SYNC_IDS = Table(
    "segment_sync_ids", MetaData(), Column("target_id", String(512), primary_key=True),
    prefixes=["TEMPORARY"], sqlite_with_rowid=False,
)
_WHITE_SPACE = re.compile(r"\s")
# The common case in one C call per id; the slow checks below only name what is wrong.
# NUL is refused like white space: PostgreSQL cannot store it, so neither store takes it.
_USER_ID = re.compile(rf"[^\s\x00]{{1,{MAX_ID}}}")
_CID = re.compile(rf"[^\s:\x00]{{1,{MAX_ID}}}:[^\s\x00]{{1,{MAX_ID}}}")


# ---------------------------------------------------------------- target sources


@dataclass(frozen=True)
class TargetSource:
    """Target ids, one a line: from a file, from stdin (`-`), or given as a list (arguments, YAML `targets:`).

    Ids are stripped of surrounding white space and blank lines are skipped; errors name
    `name:line` (or `name[index]` for a list).
    """

    name: str
    values: list[Any] | None = None

    def chunks(self, problem: Callable[[str], str | None], size: int = TARGET_CHUNK) -> Iterator[list[str]]:
        """Yield the target ids in lists of at most `size`, sorted and without repeats.

        `problem(id)` names what is wrong with one id, or returns None.
        """
        chunk: set[str] = set()
        for number, line in enumerate(self._lines(), 1):
            target = line.strip()
            if not target:
                continue
            reason = problem(target)
            if reason is not None:
                raise InvalidInput(f"{self._where(number)}: {reason}")
            chunk.add(target)
            if len(chunk) >= size:
                yield sorted(chunk)
                chunk = set()
        if chunk:
            yield sorted(chunk)

    def _where(self, number: int) -> str:
        if self.values is not None:
            return f"{self.name}[{number - 1}]"
        return f"{'stdin' if self.name == '-' else self.name}:{number}"

    def _lines(self) -> Iterator[str]:
        if self.values is not None:
            yield from self._list_lines()
        elif self.name == "-":
            yield from self._decoded(sys.stdin.buffer)
        else:
            yield from self._file_lines()

    def _list_lines(self) -> Iterator[str]:
        for number, value in enumerate(self.values or [], 1):
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise InvalidInput(f"{self._where(number)}: a target id must be a string")
            yield str(value)

    def _file_lines(self) -> Iterator[str]:
        with open_file(self.name) as stream:
            yield from self._decoded(stream)

    def _decoded(self, stream: BinaryIO) -> Iterator[str]:
        for number, raw in enumerate(stream, 1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"{self._where(number)}: not valid UTF-8") from None


_NUL_PROBLEM = "target id holds a NUL character (\\u0000), which cannot be stored"


def _user_target_problem(target: str) -> str | None:
    if _USER_ID.fullmatch(target):
        return None
    if _WHITE_SPACE.search(target):
        return f"target id {target!r} contains white space"
    if "\x00" in target:
        return _NUL_PROBLEM
    if len(target) > MAX_ID:
        return f"user id is longer than {MAX_ID} characters"
    return None


def _channel_target_problem(target: str) -> str | None:
    if _CID.fullmatch(target):
        return None
    if _WHITE_SPACE.search(target):
        return f"target id {target!r} contains white space"
    if "\x00" in target:
        return _NUL_PROBLEM
    kind, sep, channel_id = target.partition(":")
    if not sep or not kind or not channel_id:
        return f"{target!r} is not a channel cid (type:id)"
    if len(kind) > MAX_ID or len(channel_id) > MAX_ID:
        return f"channel type and id must each be at most {MAX_ID} characters"
    return None


def target_problem(segment_type: str) -> Callable[[str], str | None]:
    """The check for one target id of a segment of `segment_type`: user ids or channel cids."""
    return _user_target_problem if segment_type == "user" else _channel_target_problem


# ---------------------------------------------------------------- definitions


@dataclass
class SegmentSpec:
    """One segment definition: the fields given (by a YAML file or by flags) and its targets, if any.

    `where` names the YAML object in error messages; it is empty for flags, whose errors name the flag.
    """

    fields: dict[str, Any]
    where: str = ""
    targets: list[TargetSource] = field(default_factory=list)

    def name(self, key: str) -> str:
        """How the user wrote `key`: the YAML key, or the flag."""
        return key if self.where else "--" + key.replace("_", "-")

    def label(self, key: str) -> str:
        """`key` with the place it was given, for the start of an error message."""
        return f"{self.where}: {key}" if self.where else self.name(key)

    def prefix(self) -> str:
        """The start of an error message about the whole definition."""
        return f"{self.where}: " if self.where else ""


def spec_from_flags(**given: Any) -> SegmentSpec:
    """A definition from command-line flags; flags left out (None) are not part of it."""
    spec = SegmentSpec({key: value for key, value in given.items() if value is not None})
    _check_fields(spec)
    return spec


def load_specs(path: Path) -> tuple[list[SegmentSpec], bool]:
    """The definitions of a YAML file, and whether the file holds a `segments:` list."""
    definitions = load_definitions(path, "segments")
    specs = [spec_from_definition(obj, where, path.parent) for where, obj in definitions]
    return specs, not (len(definitions) == 1 and definitions[0][0] == str(path))


def spec_from_definition(obj: dict[str, Any], where: str, base: Path) -> SegmentSpec:
    """A definition from one YAML object; `targets_file` is relative to the folder `base`."""
    check_keys(obj, DEFINITION_KEYS, where)
    spec = SegmentSpec({k: v for k, v in obj.items() if k in SEGMENT_KEYS}, where)
    _check_fields(spec)
    if "targets" in obj:
        if not isinstance(obj["targets"], list):
            raise InvalidInput(f"{where}: targets: must be a list of ids")
        spec.targets.append(TargetSource(f"{where}: targets", obj["targets"]))
    if "targets_file" in obj:
        if not isinstance(obj["targets_file"], str) or not obj["targets_file"]:
            raise InvalidInput(f"{where}: targets_file: must be a path")
        spec.targets.append(TargetSource(str(base / obj["targets_file"])))
    return spec


def check_definition(obj: dict[str, Any], where: str, base: Path) -> SegmentSpec:
    """Every check `segment create` makes on one definition without a database (keys, fields, kind,
    filter, target ids), writing nothing; the first problem is exit 3."""
    spec = spec_from_definition(obj, where, base)
    values = _new_values(spec, now())
    problem = target_problem(values["type"])
    for source in spec.targets:
        for _ in source.chunks(problem):
            pass
    return spec


def _check_fields(spec: SegmentSpec) -> None:
    """Each field given has the right type and length; how they combine is checked by `_check_kind`."""
    fields = spec.fields
    if "id" in fields:
        _check_text(spec, "id", MAX_ID)
        if not fields["id"]:
            raise InvalidInput(f"{spec.label('id')}: must not be empty")
    if "type" in fields and fields["type"] not in TYPES:
        raise InvalidInput(f"{spec.label('type')}: must be 'user' or 'channel', got {fields['type']!r}")
    for key, maximum in (("name", MAX_NAME), ("description", MAX_DESCRIPTION)):
        if key in fields:
            fields[key] = "" if fields[key] is None else fields[key]
            _check_text(spec, key, maximum)
    if fields.get("filter") is not None and not isinstance(fields["filter"], dict):
        raise InvalidInput(f"{spec.label('filter')}: a filter must be an object")
    for key in ("all_users", "all_sender_channels"):
        if key in fields and not isinstance(fields[key], bool):
            raise InvalidInput(f"{spec.label(key)}: must be true or false")


def _check_text(spec: SegmentSpec, key: str, maximum: int) -> None:
    value = spec.fields[key]
    if not isinstance(value, str):
        raise InvalidInput(f"{spec.label(key)}: must be a string, got {type(value).__name__}")
    if len(value) > maximum:
        raise InvalidInput(f"{spec.label(key)}: must be at most {maximum} characters, got {len(value)}")


def _kind_of(values: Mapping[str, Any]) -> str:
    """What defines the targets of a segment: filter, all_users, all_sender_channels, or manual."""
    if values["filter"] is not None:
        return "filter"
    for key in ("all_users", "all_sender_channels"):
        if values[key]:
            return key
    return "manual"


def _check_kind(values: dict[str, Any], spec: SegmentSpec) -> None:
    """The rules on a complete segment: exclusive kinds, per-type kinds, a valid filter."""
    given = [key for key in KIND_KEYS if (values[key] is not None if key == "filter" else values[key])]
    if len(given) > 1:
        raise InvalidInput(f"{spec.prefix()}{spec.name(given[0])} and {spec.name(given[1])} cannot be used together")
    if values["all_users"] and values["type"] != "user":
        raise InvalidInput(f"{spec.label('all_users')}: only a user segment can target all users")
    if values["all_sender_channels"] and values["type"] != "channel":
        raise InvalidInput(f"{spec.label('all_sender_channels')}: "
                           "only a channel segment can target the sender's channels")
    if values["filter"] is not None:
        schema = USER_FILTER if values["type"] == "user" else CHANNEL_FILTER
        compile_filter(values["filter"], schema, spec.label("filter"))
    if spec.targets and given:
        raise InvalidInput(f"{spec.label('targets')}: only a manual segment has targets; "
                           f"this one has {spec.name(given[0])}")


# ---------------------------------------------------------------- reading segments


def segment_json(row: Any) -> dict[str, Any]:
    """A segment as the API's segment object: every key, `filter` and `deleted_at` null when unset."""
    return {
        "id": row.id, "type": row.type, "name": row.name, "description": row.description, "filter": row.filter,
        "all_users": row.all_users, "all_sender_channels": row.all_sender_channels, "size": row.size,
        "created_at": to_json(row.created_at), "updated_at": to_json(row.updated_at),
        "deleted_at": to_json(row.deleted_at),
    }


def segment_object(row: Any) -> dict[str, Any]:
    """A segment as it appears in a campaign's `segments`: the keys the API has as optional
    (`description`, `filter`, `deleted_at`) only when they have a value."""
    return {key: value for key, value in segment_json(row).items()
            if key not in ("description", "filter", "deleted_at") or value not in (None, "")}


def get_live_segment(conn: Connection, segment_id: str) -> Row:
    """The segment `segment_id`; unknown or deleted is exit 4."""
    row = conn.execute(select(SEGMENTS).where(SEGMENTS.c.id == segment_id)).first()
    if row is None:
        raise NotFound(f"segment {segment_id!r} not found")
    if row.deleted_at is not None:
        raise NotFound(f"segment {segment_id!r} not found (it was deleted)")
    return row


def get_segment(engine: Engine, segment_id: str) -> dict[str, Any]:
    """One segment, deleted ones included (with their `deleted_at`); unknown is exit 4."""
    with reading(engine) as conn:
        row = conn.execute(select(SEGMENTS).where(SEGMENTS.c.id == segment_id)).first()
    if row is None:
        raise NotFound(f"segment {segment_id!r} not found")
    return segment_json(row)


def _reload(conn: Connection, pk: int) -> Row:
    return conn.execute(select(SEGMENTS).where(SEGMENTS.c.pk == pk)).one()


def _computed_size(conn: Connection, row: Any) -> int:
    """The number of targets `row` reaches now, counted over the select the sender freezes."""
    if row.all_sender_channels:
        return 0
    return conn.scalar(select(func.count()).select_from(segment_targets_select(row).subquery())) or 0


def _set_size(conn: Connection, row: Row, size: int) -> None:
    conn.execute(update(SEGMENTS).where(SEGMENTS.c.pk == row.pk).values(size=size))


# ---------------------------------------------------------------- create, update, delete, refresh


def create_segments(engine: Engine, specs: list[SegmentSpec]) -> list[dict[str, Any]]:
    """Create every segment of `specs` in one transaction: all of them, or none (duplicate id: exit 5)."""
    stamp = now()
    rows = [_new_values(spec, stamp) for spec in specs]
    with writing(engine) as conn:
        created = [_insert_segment(conn, spec, values) for spec, values in zip(specs, rows)]
        return [segment_json(_reload(conn, pk)) for pk in created]


def _new_values(spec: SegmentSpec, stamp: Any) -> dict[str, Any]:
    if "type" not in spec.fields:
        raise InvalidInput(f"{spec.label('type')}: required: 'user' or 'channel'")
    values = {**DEFAULTS, **spec.fields, "created_at": stamp, "updated_at": stamp}
    values.setdefault("id", uuid.uuid4().hex)
    _check_kind(values, spec)
    return values


def _insert_segment(conn: Connection, spec: SegmentSpec, values: dict[str, Any]) -> int:
    existing = conn.execute(select(SEGMENTS.c.deleted_at).where(SEGMENTS.c.id == values["id"])).first()
    if existing is not None:
        deleted = " (deleted, but its id stays taken)" if existing.deleted_at is not None else ""
        raise Conflict(f"{spec.prefix()}segment {values['id']!r} already exists{deleted}")
    pk = conn.execute(insert(SEGMENTS).values(values)).inserted_primary_key[0]
    row = _reload(conn, pk)
    if spec.targets:
        _set_size(conn, row, _add(conn, row, spec.targets))
    else:
        _set_size(conn, row, _computed_size(conn, row))
    return pk


def update_segments(engine: Engine, specs: list[SegmentSpec], segment_id: str | None = None) -> list[dict[str, Any]]:
    """Update segments in one transaction; each spec names its segment by `id` unless `segment_id` is given.

    Fields given replace the stored ones. Giving any of filter / all_users / all_sender_channels
    redefines the kind (the ones left out are cleared). Targets given replace the manual targets.
    """
    if segment_id is not None and len(specs) > 1:
        raise InvalidInput(f"{specs[1].where}: the file holds several segments; "
                           "leave out ID to update each by its id")
    with writing(engine) as conn:
        updated = [_update_segment(conn, spec, segment_id) for spec in specs]
        return [segment_json(_reload(conn, pk)) for pk in updated]


def _update_segment(conn: Connection, spec: SegmentSpec, segment_id: str | None) -> int:
    given_id = spec.fields.get("id")
    if segment_id is not None and given_id is not None and given_id != segment_id:
        raise InvalidInput(f"{spec.label('id')}: {given_id!r} is not the segment being updated ({segment_id!r})")
    segment_id = segment_id or given_id
    if segment_id is None:
        raise InvalidInput(f"{spec.label('id')}: required to say which segment to update")
    row = get_live_segment(conn, segment_id)
    values = _merged_values(row, spec)
    if _kind_of(values) != "manual" and _has_targets(conn, row):
        raise InvalidInput(f"{spec.prefix()}segment {segment_id!r} has targets added by hand; "
                           "remove them before giving it a filter, all_users or all_sender_channels")
    conn.execute(update(SEGMENTS).where(SEGMENTS.c.pk == row.pk).values(**values, updated_at=now()))
    row = _reload(conn, row.pk)
    if spec.targets:
        _replace_targets(conn, row, spec.targets)
    _set_size(conn, row, _computed_size(conn, row))
    return row.pk


def _has_targets(conn: Connection, row: Row) -> bool:
    return bool(conn.scalar(select(exists().where(SEGMENT_TARGETS.c.segment_pk == row.pk))))


def _merged_values(row: Row, spec: SegmentSpec) -> dict[str, Any]:
    fields = {k: v for k, v in spec.fields.items() if k != "id"}
    if fields.get("type", row.type) != row.type:
        raise InvalidInput(f"{spec.label('type')}: a {row.type} segment cannot become a {fields['type']} segment")
    current = {key: getattr(row, key) for key in SEGMENT_KEYS if key != "id"}
    if any(key in fields for key in KIND_KEYS):
        current.update({key: DEFAULTS[key] for key in KIND_KEYS})
    values = {**current, **fields}
    _check_kind(values, spec)
    return values


def delete_segment(engine: Engine, segment_id: str) -> dict[str, Any]:
    """Soft-delete a segment: `deleted_at` is set; it is no longer listed nor usable by campaigns."""
    with writing(engine) as conn:
        row = get_live_segment(conn, segment_id)
        stamp = now()
        conn.execute(update(SEGMENTS).where(SEGMENTS.c.pk == row.pk).values(deleted_at=stamp, updated_at=stamp))
        return segment_json(_reload(conn, row.pk))


def refresh_segment(engine: Engine, segment_id: str) -> dict[str, Any]:
    """Recompute `size`: the targets a filter or all_users reaches now, or the manual targets held."""
    with writing(engine) as conn:
        row = get_live_segment(conn, segment_id)
        _set_size(conn, row, _computed_size(conn, row))
        return segment_json(_reload(conn, row.pk))


# ---------------------------------------------------------------- listing segments


def parse_sort(sort: list[str], allowed: Iterable[str], what: str) -> list[tuple[str, bool]]:
    """`field` / `-field` items → (field, descending); unknown or repeated fields are exit 3."""
    allowed = list(allowed)
    keys: list[tuple[str, bool]] = []
    for item in sort:
        name = item[1:] if item.startswith("-") else item
        if name not in allowed:
            raise InvalidInput(f"--sort: cannot sort {what} by {name!r} (use one of {', '.join(allowed)})")
        if any(name == seen for seen, _ in keys):
            raise InvalidInput(f"--sort: {name!r} is given twice")
        keys.append((name, item.startswith("-")))
    return keys


def list_segments(
    engine: Engine, filter_: dict | None, sort: list[str], limit: int, next_: str | None, prev: str | None = None
) -> Page:
    """One page of live segments matching `filter_`, in `sort` order (default `created_at`), with its cursors."""
    check_limit(limit, MAX_LIST_LIMIT)
    keys = parse_sort(sort or ["created_at"], LIST_FILTER.fields, "segments") + [("pk", False)]
    scope = "segments:" + ",".join(("-" if d else "") + n for n, d in keys)
    query = select(SEGMENTS).where(SEGMENTS.c.deleted_at.is_(None), compile_filter(filter_, LIST_FILTER, "--filter"))
    with reading(engine) as conn:
        page = keyset_page(conn, query, [(SEGMENTS.c[name], d) for name, d in keys], scope, limit, next_, prev)
    page.items = [segment_json(r) for r in page.items]
    return page


# ---------------------------------------------------------------- manual targets


def _check_manual(row: Row) -> None:
    if not is_manual(row):
        raise InvalidInput(f"segment {row.id!r} is defined by {_kind_of(row._mapping)}: "
                           "targets can only be added to or removed from a manual segment")


def _insert_targets(rows: Select) -> Any:
    """INSERT INTO segment_targets from a select of (segment_pk, target_id), stamped now, reporting how many
    it inserted.

    SQLAlchemy keeps the row count of an INSERT only when asked (PostgreSQL reports -1 otherwise).
    """
    stamped = rows.add_columns(literal(now(), SEGMENT_TARGETS.c.created_at.type))
    statement = insert(SEGMENT_TARGETS).from_select(["segment_pk", "target_id", "created_at"], stamped)
    return statement.execution_options(preserve_rowcount=True)


def _add(conn: Connection, row: Row, sources: list[TargetSource]) -> int:
    """Insert the targets of `sources` chunk by chunk, in key order; returns how many were new."""
    added = 0
    for source in sources:
        for chunk in source.chunks(target_problem(row.type)):
            ids = json_array_table(chunk)
            new = select(literal(row.pk), ids.c.value).where(
                ~exists().where(SEGMENT_TARGETS.c.segment_pk == row.pk, SEGMENT_TARGETS.c.target_id == ids.c.value)
            )
            added += conn.execute(_insert_targets(new)).rowcount
    return added


def _remove(conn: Connection, row: Row, sources: list[TargetSource]) -> int:
    """Delete the targets of `sources` chunk by chunk; returns how many were there."""
    removed = 0
    for source in sources:
        for chunk in source.chunks(target_problem(row.type)):
            listed = select(json_array_table(chunk).c.value)
            removed += conn.execute(delete(SEGMENT_TARGETS).where(
                SEGMENT_TARGETS.c.segment_pk == row.pk, SEGMENT_TARGETS.c.target_id.in_(listed)
            )).rowcount
    return removed


def add_targets(engine: Engine, segment_id: str, sources: list[TargetSource]) -> dict[str, Any]:
    """Add targets to a manual segment; ids already there are not an error. All or nothing."""
    with writing(engine) as conn:
        row = get_live_segment(conn, segment_id)
        _check_manual(row)
        added = _add(conn, row, sources)
        return {"segment_id": row.id, "added": added, "size": _touch(conn, row, added)}


def remove_targets(engine: Engine, segment_id: str, sources: list[TargetSource]) -> dict[str, Any]:
    """Remove targets from a manual segment; ids not there are not an error. All or nothing."""
    with writing(engine) as conn:
        row = get_live_segment(conn, segment_id)
        _check_manual(row)
        removed = _remove(conn, row, sources)
        return {"segment_id": row.id, "removed": removed, "size": _touch(conn, row, -removed)}


def _touch(conn: Connection, row: Row, change: int) -> int:
    """Record a change of `change` targets (in SQL, so concurrent writers add up); returns the new size."""
    conn.execute(update(SEGMENTS).where(SEGMENTS.c.pk == row.pk)
                 .values(size=SEGMENTS.c.size + change, updated_at=now()))
    return _reload(conn, row.pk).size


def sync_targets(engine: Engine, segment_id: str, source: TargetSource, dry_run: bool = False) -> dict[str, Any]:
    """Make a manual segment's targets equal the ids of `source`; with `dry_run` only count the changes."""
    with (reading if dry_run else writing)(engine) as conn:
        row = get_live_segment(conn, segment_id)
        _check_manual(row)
        if dry_run:
            added, removed = _sync_differences(conn, row, [source])
            size = row.size
        else:
            added, removed = _replace_targets(conn, row, [source])
            size = _touch(conn, row, added - removed)
        return {"segment_id": row.id, "added": added, "removed": removed, "size": size, "dry_run": dry_run}


def _load_sync_ids(conn: Connection, row: Row, sources: list[TargetSource]) -> None:
    _SYNC_IDS.create(conn)
    for source in sources:
        for chunk in source.chunks(target_problem(row.type)):
            ids = json_array_table(chunk)
            new = select(ids.c.value).where(~exists().where(_SYNC_IDS.c.target_id == ids.c.value))
            conn.execute(insert(_SYNC_IDS).from_select(["target_id"], new))


def _missing(pk: int) -> ColumnElement[bool]:
    """Sync ids that are not targets of segment `pk`."""
    return ~exists().where(SEGMENT_TARGETS.c.segment_pk == pk, SEGMENT_TARGETS.c.target_id == _SYNC_IDS.c.target_id)


def _extra() -> ColumnElement[bool]:
    """Targets that are not among the sync ids."""
    return ~exists().where(_SYNC_IDS.c.target_id == SEGMENT_TARGETS.c.target_id)


def _sync_differences(conn: Connection, row: Row, sources: list[TargetSource]) -> tuple[int, int]:
    _load_sync_ids(conn, row, sources)
    added = conn.scalar(select(func.count()).select_from(_SYNC_IDS).where(_missing(row.pk))) or 0
    removed = conn.scalar(
        select(func.count()).select_from(SEGMENT_TARGETS).where(SEGMENT_TARGETS.c.segment_pk == row.pk, _extra())
    ) or 0
    _SYNC_IDS.drop(conn)
    return added, removed


def _replace_targets(conn: Connection, row: Row, sources: list[TargetSource]) -> tuple[int, int]:
    """Make the targets of `row` equal the ids of `sources`; returns (added, removed)."""
    _load_sync_ids(conn, row, sources)
    new = select(literal(row.pk), _SYNC_IDS.c.target_id).where(_missing(row.pk))
    added = conn.execute(_insert_targets(new)).rowcount
    removed = conn.execute(
        delete(SEGMENT_TARGETS).where(SEGMENT_TARGETS.c.segment_pk == row.pk, _extra())
    ).rowcount
    _SYNC_IDS.drop(conn)
    return added, removed


# ---------------------------------------------------------------- reading targets


def _targets_of(row: Row) -> Any:
    """The target ids `row` reaches, as a subquery with one column `target_id`."""
    if row.all_sender_channels:
        raise InvalidInput(f"segment {row.id!r} targets the sender's channels: its targets are known "
                           "only when a campaign with a sender uses it")
    return segment_targets_select(row).subquery()


def list_targets(
    engine: Engine, segment_id: str, filter_: dict | None, sort: list[str], limit: int, next_: str | None,
    prev: str | None = None,
) -> Page:
    """One page of a segment's targets by target id (keyset paging, so every page costs the same)."""
    check_limit(limit, MAX_TARGETS_LIMIT)
    (_, descending), = parse_sort(sort or ["target_id"], ["target_id"], "targets")
    scope = f"segment-targets:{segment_id}:{'-' if descending else ''}target_id"
    with reading(engine) as conn:
        row = get_live_segment(conn, segment_id)
        targets = _targets_of(row)
        schema = FilterSchema("segment targets", {"target_id": FieldSpec(targets.c.target_id, "string", TARGET_OPS, False)})
        query = select(targets.c.target_id, targets.c.created_at).where(compile_filter(filter_, schema, "--filter"))
        page = keyset_page(conn, query, [(targets.c.target_id, descending)], scope, limit, next_, prev)
    page.items = [{"segment_id": row.id, "target_id": t.target_id, "created_at": to_json(t.created_at)}
                  for t in page.items]
    return page


def target_exists(engine: Engine, segment_id: str, target_id: str) -> bool:
    """Whether the segment reaches `target_id` now."""
    with reading(engine) as conn:
        row = get_live_segment(conn, segment_id)
        column = _targets_of(row).c.target_id
        return bool(conn.scalar(select(exists().where(column == target_id.strip()))))
