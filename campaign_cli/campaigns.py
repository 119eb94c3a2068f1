"""Campaign definitions: validation, create, update, delete, get, list, and their JSON.

Sending (start, stop, resume, run, preview) lives in `campaign_cli.sending`; the status
changes themselves go through `campaign_cli.lifecycle`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update

from campaign_cli import lifecycle
from campaign_cli.definitions import load_definitions
from campaign_cli.errors import Conflict, InvalidInput, InvalidInputs, NotFound
from campaign_cli.filters import FieldSpec, FilterSchema, compile_filter
from campaign_cli.paging import Page, check_limit, keyset_page
from campaign_cli.segments import segment_object
from campaign_cli.sending.claims import with_claim_stats
from campaign_cli.store.bulk import chunked
from campaign_cli.store.engine import reading, writing
from campaign_cli.store.models import CAMPAIGNS, CHANNEL_MEMBERS as MEMBERS, MESSAGES, SEGMENTS, USERS
from campaign_cli.target_users import DEFAULT_USERS_LIMIT, target_users_page
from campaign_cli.timeutil import now, parse_time, to_json
from campaign_cli.user_object import user_response


MAX_ID = 255
MAX_SEGMENTS = 25
MAX_USER_IDS = 10_000
MAX_ATTACHMENTS = 30
MAX_MEMBERS = 1000
MAX_PAGE = 100
SENDER_MODES = ("include", "exclude")
SENDER_VISIBILITIES = ("hidden", "archived")

DEFINITION_KEYS = frozenset({
    "id", "name", "description", "segment_ids", "user_ids", "sender_id", "sender_mode", "sender_visibility",
    "message_template", "create_channels", "channel_template", "show_channels", "skip_push", "skip_webhook",
    "scheduled_for", "stop_at",
})
READ_ONLY_KEYS = frozenset({"status", "stats", "created_at", "updated_at", "segments", "users", "sender"})
# Keys of the campaign object the API has as optional: left out when they have no value.
OPTIONAL_KEYS = frozenset({"channel_template", "scheduled_for", "stop_at", "sender"})
MESSAGE_TEMPLATE_KEYS = frozenset({"text", "attachments", "custom", "searchable"})
CHANNEL_TEMPLATE_KEYS = frozenset({"type", "id", "team", "custom", "members", "members_template"})
MEMBER_KEYS = frozenset({"user_id", "channel_role", "custom"})
FLAGS = ("create_channels", "show_channels", "skip_push", "skip_webhook")
TIMES = ("scheduled_for", "stop_at")

CAMPAIGN_FILTER = FilterSchema(
    name="campaigns",
    fields={
        "id": FieldSpec(CAMPAIGNS.c.id, "string", nullable=False),
        "name": FieldSpec(CAMPAIGNS.c.name, "string", nullable=False),
        "sender_id": FieldSpec(CAMPAIGNS.c.sender_id, "string", nullable=False),
        "status": FieldSpec(CAMPAIGNS.c.status, "string", nullable=False),
        "created_at": FieldSpec(CAMPAIGNS.c.created_at, "time", nullable=False),
        "updated_at": FieldSpec(CAMPAIGNS.c.updated_at, "time", nullable=False),
        "segments": FieldSpec(CAMPAIGNS.c.segment_ids, "list", ops=frozenset({"$eq", "$contains", "$in"})),
    },
)
SORTABLE = {name: CAMPAIGN_FILTER.fields[name].column
            for name in ("id", "name", "sender_id", "status", "created_at", "updated_at")}


# ---------------------------------------------------------------- JSON


def campaign_json(row: Any, users_read: int = 0, segments: list[dict] | None = None, sender: dict | None = None,
                  users: list[dict] | None = None) -> dict[str, Any]:
    """A campaign as the API's campaign object, with the `stats` object and this tool's stats extensions.

    Keys the API has as optional are left out when empty; required ones are always there
    (`sender_mode` / `sender_visibility` as "" when unset). `segments`, `sender` and `users`
    are loaded by `campaigns_json` / `campaign_document`.
    """
    data = {
        "id": row.id, "name": row.name, "description": row.description,
        "segment_ids": row.segment_ids, "segments": segments or [], "user_ids": row.user_ids, "users": users or [],
        "sender_id": row.sender_id, "sender": sender,
        "sender_mode": row.sender_mode or "", "sender_visibility": row.sender_visibility or "",
        "message_template": _without_empty(row.message_template), "create_channels": row.create_channels,
        "channel_template": row.channel_template, "show_channels": row.show_channels,
        "skip_push": row.skip_push, "skip_webhook": row.skip_webhook,
        "scheduled_for": to_json(row.scheduled_for), "stop_at": to_json(row.stop_at),
        "status": row.status,
        "stats": _stats_json(row, users_read),
        "created_at": to_json(row.created_at), "updated_at": to_json(row.updated_at),
    }
    return {key: value for key, value in data.items() if value is not None or key not in OPTIONAL_KEYS}


def _without_empty(template: dict) -> dict:
    return {key: value for key, value in template.items() if value not in (None, [], {})}


def _stats_json(row: Any, users_read: int) -> dict[str, Any]:
    return {
        "progress": _progress(row),
        "stats_started_at": to_json(row.stats_started_at),
        "stats_completed_at": to_json(row.stats_completed_at),
        "stats_messages_sent": row.stats_messages_sent,
        "stats_channels_created": row.stats_channels_created,
        "stats_users_sent": row.stats_users_sent,
        "stats_users_read": users_read,
        "stats_targets": row.stats_targets,
        "stats_skipped": dict(row.stats_skipped or {}),
        "stats_failed": row.stats_failed,
        "stats_failed_reasons": dict(row.stats_failed_reasons or {}),
    }


def _progress(row: Any) -> float:
    if row.status == lifecycle.COMPLETED:
        return 1.0
    if not row.stats_targets:
        return 0.0
    return min(row.stats_done / row.stats_targets, 1.0)


def campaigns_json(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    """Campaign objects for `rows` (as stored) with the stats their senders hold so far, their segments,
    sender and read counts, in a few queries.

    `users` is left empty: `campaign_document` fills it for one campaign.
    """
    rows = with_claim_stats(conn, rows)
    reads = users_read_by_campaign(conn, [row.id for row in rows])
    segment_ids = {s for row in rows for s in row.segment_ids}
    segments = {r.id: segment_object(r) for chunk in chunked(sorted(segment_ids), 1000)
                for r in conn.execute(select(SEGMENTS).where(SEGMENTS.c.id.in_(chunk)))}
    sender_ids = sorted({row.sender_id for row in rows})
    senders = {r.id: user_response(r) for r in conn.execute(select(USERS).where(USERS.c.id.in_(sender_ids)))}
    return [campaign_json(row, reads.get(row.id, 0), [segments[s] for s in row.segment_ids if s in segments],
                          senders.get(row.sender_id)) for row in rows]


def campaign_document(conn: Connection, row: Any, users_limit: int = DEFAULT_USERS_LIMIT,
                      users_next: str | None = None, users_prev: str | None = None) -> dict[str, Any]:
    """`{"campaign": {...}, "users": {"next", "prev"}}`: the campaign with one page of its target users."""
    page = target_users_page(conn, row, users_limit, users_next, users_prev)
    campaign = campaigns_json(conn, [row])[0]
    campaign["users"] = page.items
    return {"campaign": campaign, "users": page.cursors()}


def users_read(conn: Connection, campaign_row: Any) -> int:
    """How many (message of this campaign, member other than its sender) pairs have been read."""
    return users_read_by_campaign(conn, [campaign_row.id]).get(campaign_row.id, 0)


def users_read_by_campaign(conn: Connection, campaign_ids: list[str]) -> dict[str, int]:
    """`users_read` for several campaigns in one query."""
    if not campaign_ids:
        return {}
    query = (
        select(MESSAGES.c.campaign_id, func.count())
        .join(MEMBERS, MEMBERS.c.channel_pk == MESSAGES.c.channel_pk)
        .where(MESSAGES.c.campaign_id.in_(campaign_ids), MEMBERS.c.user_id != MESSAGES.c.user_id,
               MEMBERS.c.last_read_at >= MESSAGES.c.created_at)
        .group_by(MESSAGES.c.campaign_id)
    )
    return dict(conn.execute(query).all())


# ---------------------------------------------------------------- validation


def validate_spec(conn: Connection | None, spec: dict, where: str, known_segments: dict[str, str] | None = None) -> list[str]:
    """Every problem of one campaign definition (keys, types, rules, templates, references), each prefixed by `where`.

    Without a database (`conn` None) the references (segments, sender) are not checked.
    `known_segments` (id → type) are segments defined beside the campaign, not yet in the database.
    """
    problems: list[str] = []
    _check_keys(spec, problems)
    _check_scalars(spec, problems)
    kinds, certain = _check_targets(conn, spec, problems, known_segments or {})
    _check_sender(conn, spec, problems)
    _check_message_template(spec.get("message_template"), problems)
    _check_channel_template(spec, kinds, problems)
    _check_times(spec, problems)
    if isinstance(spec.get("message_template"), dict):
        from campaign_cli.templates import check_templates  # Jinja only for the commands that check definitions

        possible = kinds if certain else kinds | {"user"}
        problems.extend(check_templates(spec["message_template"], spec.get("channel_template"), possible))
    return [f"{where}: {p}" for p in problems]


def _check_keys(spec: dict, problems: list[str]) -> None:
    for key in spec:
        if key == "status":
            problems.append("status: a definition cannot set the status (a new campaign is a draft; use start/stop)")
        elif key in READ_ONLY_KEYS:
            problems.append(f"{key}: set by campaign, not by a definition")
        elif key not in DEFINITION_KEYS:
            problems.append(f"unknown key {key!r}")


def _check_scalars(spec: dict, problems: list[str]) -> None:
    if "id" in spec:
        _check_id_string(spec["id"], "id", problems)
    for key in ("name", "description"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            problems.append(f"{key}: must be a string")
    for key in FLAGS:
        if spec.get(key) is not None and not isinstance(spec[key], bool):
            problems.append(f"{key}: must be true or false, got {spec[key]!r}")
    _check_choice(spec, "sender_mode", SENDER_MODES, problems)
    _check_choice(spec, "sender_visibility", SENDER_VISIBILITIES, problems)


def _check_id_string(value: Any, field: str, problems: list[str]) -> bool:
    if not isinstance(value, str) or not value:
        problems.append(f"{field}: must be a non-empty string")
        return False
    if len(value) > MAX_ID:
        problems.append(f"{field}: longer than {MAX_ID} characters")
        return False
    return True


def _check_choice(spec: dict, key: str, choices: tuple[str, ...], problems: list[str]) -> None:
    value = spec.get(key)
    if value is not None and value not in choices:
        problems.append(f"{key}: must be {', '.join(choices)} or null, got {value!r}")


def _id_list(spec: dict, key: str, problems: list[str]) -> list[str] | None:
    """The list under `key` ([] when absent), or None when it is not a list of id strings."""
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{key}: must be a list")
        return None
    valid = [_check_id_string(v, f"{key}[{i}]", problems) for i, v in enumerate(value)]
    return value if all(valid) else None


def _check_targets(conn: Connection | None, spec: dict, problems: list[str],
                   known_segments: dict[str, str]) -> tuple[set[str], bool]:
    """Check segment_ids / user_ids; return the target kinds and whether they are known for sure."""
    segment_ids = _id_list(spec, "segment_ids", problems)
    user_ids = _id_list(spec, "user_ids", problems)
    if segment_ids is None or user_ids is None:
        return set(), False
    if segment_ids and user_ids:
        problems.append("segment_ids, user_ids: give exactly one of them, not both")
    elif not segment_ids and not user_ids:
        problems.append("segment_ids, user_ids: give one of them (the campaign has no targets)")
        return set(), False
    if len(user_ids) > MAX_USER_IDS:
        problems.append(f"user_ids: at most {MAX_USER_IDS:,} user ids, got {len(user_ids):,}")
    kinds = {"user"} if user_ids else set()
    if segment_ids:
        segment_kinds, certain = _check_segments(conn, segment_ids, problems, known_segments)
        return kinds | segment_kinds, certain
    return kinds, True


def _check_segments(conn: Connection | None, segment_ids: list[str], problems: list[str],
                    known_segments: dict[str, str]) -> tuple[set[str], bool]:
    if len(segment_ids) > MAX_SEGMENTS:
        problems.append(f"segment_ids: at most {MAX_SEGMENTS} segments, got {len(segment_ids)}")
    kinds = {known_segments[s] for s in segment_ids if s in known_segments}
    stored = [s for s in dict.fromkeys(segment_ids) if s not in known_segments]
    if conn is None:
        return kinds, not stored
    found = {row.id: row for chunk in chunked(set(stored), 1000) for row in conn.execute(
        select(SEGMENTS.c.id, SEGMENTS.c.type, SEGMENTS.c.deleted_at).where(SEGMENTS.c.id.in_(chunk)))}
    for segment_id in stored:
        row = found.get(segment_id)
        if row is None:
            problems.append(f"segment_ids: segment {segment_id!r} not found")
        elif row.deleted_at is not None:
            problems.append(f"segment_ids: segment {segment_id!r} is deleted")
        else:
            kinds.add(row.type)
    return kinds, all(segment_id in found for segment_id in stored)


def _check_sender(conn: Connection | None, spec: dict, problems: list[str]) -> None:
    sender_id = spec.get("sender_id")
    if sender_id is None:
        problems.append("sender_id: required")
    elif _check_id_string(sender_id, "sender_id", problems) and conn is not None:
        if conn.scalar(select(USERS.c.pk).where(USERS.c.id == sender_id)) is None:
            problems.append(f"sender_id: user {sender_id!r} not found")


def _check_message_template(template: Any, problems: list[str]) -> None:
    if template is None:
        problems.append("message_template: required")
        return
    if not isinstance(template, dict):
        problems.append("message_template: must be a mapping with text, attachments and custom")
        return
    _check_sub_keys(template, MESSAGE_TEMPLATE_KEYS, "message_template", problems)
    text = template.get("text")
    if text is None or text == "":
        problems.append("message_template.text: required")
    elif not isinstance(text, str):
        problems.append("message_template.text: must be a string")
    attachments = template.get("attachments")
    if attachments is not None:
        if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
            problems.append("message_template.attachments: must be a list of mappings")
        elif len(attachments) > MAX_ATTACHMENTS:
            problems.append(f"message_template.attachments: at most {MAX_ATTACHMENTS} attachments, got {len(attachments)}")
    if template.get("searchable") is not None and not isinstance(template["searchable"], bool):
        problems.append(f"message_template.searchable: must be true or false, got {template['searchable']!r}")
    custom = _check_mapping(template, "custom", "message_template.custom", problems)
    if custom and "campaign_id" in custom:
        problems.append("message_template.custom.campaign_id: set by campaign on every message")


def _check_sub_keys(obj: dict, allowed: frozenset[str], field: str, problems: list[str]) -> None:
    for key in obj:
        if key not in allowed:
            problems.append(f"{field}: unknown key {key!r}")


def _check_mapping(obj: dict, key: str, field: str, problems: list[str]) -> dict | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, dict):
        problems.append(f"{field}: must be a mapping")
        return None
    return value


def _check_channel_template(spec: dict, kinds: set[str], problems: list[str]) -> None:
    template = spec.get("channel_template")
    if template is None:
        if spec.get("create_channels") is True and "user" in kinds:
            problems.append("channel_template: required when create_channels is true and the campaign targets users")
        return
    if not isinstance(template, dict):
        problems.append("channel_template: must be a mapping")
        return
    _check_sub_keys(template, CHANNEL_TEMPLATE_KEYS, "channel_template", problems)
    if not template.get("type"):
        problems.append("channel_template.type: required")
    for key in ("type", "id", "team"):
        if template.get(key) is not None and not isinstance(template[key], str):
            problems.append(f"channel_template.{key}: must be a string")
    if isinstance(template.get("type"), str) and ":" in template["type"]:
        problems.append("channel_template.type: cannot contain ':' (a cid is type:id)")
    _check_mapping(template, "custom", "channel_template.custom", problems)
    _check_members(template, problems)


def _check_members(template: dict, problems: list[str]) -> None:
    if template.get("members") is not None and template.get("members_template") is not None:
        problems.append("channel_template: members and members_template are exclusive; give one of them")
    members, members_template = template.get("members"), template.get("members_template")
    if members is not None and (not isinstance(members, list) or not all(isinstance(v, str) and v for v in members)):
        problems.append("channel_template.members: must be a list of non-empty strings")
    elif members_template is not None and not isinstance(members_template, list):
        problems.append("channel_template.members_template: must be a list of user ids or {user_id, channel_role, custom}")
    elif members_template is not None:
        for i, entry in enumerate(members_template):
            _check_member_entry(entry, f"channel_template.members_template[{i}]", problems)
    for key, value in (("members", members), ("members_template", members_template)):
        if isinstance(value, list) and len(value) > MAX_MEMBERS:
            problems.append(f"channel_template.{key}: at most {MAX_MEMBERS:,} members, got {len(value):,}")


def _check_member_entry(entry: Any, field: str, problems: list[str]) -> None:
    """A members_template entry: a user id (a template), or a mapping {user_id, channel_role, custom}."""
    if isinstance(entry, str):
        if not entry:
            problems.append(f"{field}: must be a non-empty string")
        return
    if not isinstance(entry, dict):
        problems.append(f"{field}: must be a user id or a mapping with user_id, channel_role and custom")
        return
    _check_sub_keys(entry, MEMBER_KEYS, field, problems)
    if not entry.get("user_id"):
        problems.append(f"{field}.user_id: required")
    elif not isinstance(entry["user_id"], str):
        problems.append(f"{field}.user_id: must be a string")
    if entry.get("channel_role") is not None and not isinstance(entry["channel_role"], str):
        problems.append(f"{field}.channel_role: must be a string")
    _check_mapping(entry, "custom", f"{field}.custom", problems)


def _check_times(spec: dict, problems: list[str]) -> None:
    times = {}
    for key in TIMES:
        if spec.get(key) is None:
            continue
        try:
            times[key] = parse_time(spec[key], key)
        except InvalidInput as exc:
            problems.append(str(exc))
    if len(times) == 2 and times["stop_at"] <= times["scheduled_for"]:
        problems.append("stop_at: must be after scheduled_for")


# ---------------------------------------------------------------- files


def load_campaign_file(path: Path) -> tuple[list[tuple[str, dict]], bool]:
    """The campaign definitions a YAML file holds, each with its `where`, and whether they came as a
    `campaigns:` list (rather than one object)."""
    definitions = load_definitions(path, "campaigns")
    if not definitions:
        raise InvalidInput(f"{path}: holds no campaign definitions")
    # load_definitions labels a file's single object with the bare path, and list items with their index.
    return definitions, definitions[0][0] != str(path)


def load_one_campaign(path: Path) -> tuple[str, dict]:
    """The single campaign definition of a file (for `update`)."""
    definitions, _ = load_campaign_file(path)
    if len(definitions) != 1:
        raise InvalidInput(f"{path}: update takes one campaign definition, the file holds {len(definitions)}")
    return definitions[0]


def duplicate_ids(definitions: list[tuple[str, dict]]) -> list[tuple[str, str]]:
    """(where, message) for every definition whose id an earlier one already has."""
    first: dict[str, str] = {}
    duplicates = []
    for where, spec in definitions:
        campaign_id = spec.get("id")
        if not isinstance(campaign_id, str):
            continue
        if campaign_id in first:
            duplicates.append((where, f"campaign {campaign_id!r} is defined twice (first at {first[campaign_id]})"))
        else:
            first[campaign_id] = where
    return duplicates


# ---------------------------------------------------------------- create / update / delete


def create_campaigns(engine: Engine, specs: list[tuple[str, dict]]) -> list[dict[str, Any]]:
    """Create draft campaigns from (where, definition) pairs in one transaction; all or nothing.

    Returns a campaign document (`campaign_document`) for each.

    Any invalid definition is exit 3 (every problem listed); an id that exists or repeats is exit 5.
    """
    stamp = now()
    with writing(engine) as conn:
        problems = [p for where, spec in specs for p in validate_spec(conn, spec, where)]
        if problems:
            raise InvalidInputs(problems)
        rows = [{**_definition_values(spec), "id": spec.get("id") or str(uuid.uuid4()),
                 "status": lifecycle.DRAFT, "stats_skipped": {}, "created_at": stamp, "updated_at": stamp}
                for _, spec in specs]
        _check_new_ids(conn, specs, [row["id"] for row in rows])
        conn.execute(CAMPAIGNS.insert(), rows)
        created = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id.in_([r["id"] for r in rows]))
                               .order_by(CAMPAIGNS.c.pk)).all()
        return [campaign_document(conn, row) for row in created]


def _check_new_ids(conn: Connection, specs: list[tuple[str, dict]], ids: list[str]) -> None:
    duplicates = duplicate_ids(specs)
    if duplicates:
        where, message = duplicates[0]
        raise Conflict(f"{where}: id: {message}")
    taken = set(conn.scalars(select(CAMPAIGNS.c.id).where(CAMPAIGNS.c.id.in_(ids))))
    for (where, _), campaign_id in zip(specs, ids):
        if campaign_id in taken:
            raise Conflict(f"{where}: id: campaign {campaign_id!r} already exists")


def _definition_values(spec: dict) -> dict[str, Any]:
    """The campaigns columns of a validated definition, with their defaults."""
    template = spec["message_template"]
    return {
        "name": spec.get("name") or "",
        "description": spec.get("description") or "",
        "segment_ids": spec.get("segment_ids") or [],
        "user_ids": spec.get("user_ids") or [],
        "sender_id": spec["sender_id"],
        "sender_mode": spec.get("sender_mode"),
        "sender_visibility": spec.get("sender_visibility"),
        "message_template": {"text": template["text"], "attachments": template.get("attachments") or [],
                             "custom": template.get("custom") or {},
                             **({"searchable": template["searchable"]} if template.get("searchable") is not None else {})},
        "channel_template": spec.get("channel_template"),
        **{key: bool(spec.get(key)) for key in FLAGS},
        **{key: parse_time(spec[key], key) if spec.get(key) is not None else None for key in TIMES},
    }


def _definition_of(row: Any) -> dict[str, Any]:
    """A stored campaign as a definition (the keys a YAML file may hold), for merging an update into."""
    data = {key: getattr(row, key) for key in DEFINITION_KEYS}
    return {**data, **{key: to_json(data[key]) for key in TIMES}}


def update_campaign(engine: Engine, campaign_id: str, spec: dict, where: str = "update") -> dict[str, Any]:
    """Change a draft or scheduled campaign: the keys `spec` holds replace the stored ones, the rest stay.

    The merged definition is validated as a whole (exit 3); another status is exit 5.
    """
    with writing(engine) as conn:
        row = get_campaign_row(conn, campaign_id)
        lifecycle.check_updatable(campaign_id, row.status)
        if "id" in spec and spec["id"] != campaign_id:
            raise InvalidInput(f"{where}: id: cannot change a campaign's id ({spec['id']!r} is not {campaign_id!r})")
        merged = {**_definition_of(row), **spec}
        problems = validate_spec(conn, merged, where)
        if row.status == lifecycle.SCHEDULED and merged.get("scheduled_for") is None:
            problems.append(f"{where}: scheduled_for: a scheduled campaign needs a time (stop it to unschedule)")
        if problems:
            raise InvalidInputs(problems)
        conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.pk == row.pk)
                     .values(**_definition_values(merged), updated_at=now()))
        return campaign_document(conn, get_campaign_row(conn, campaign_id))


def delete_campaign(engine: Engine, campaign_id: str) -> None:
    """Delete a campaign (and its frozen targets) in any status but in_progress (exit 5)."""
    with writing(engine) as conn:
        row = get_campaign_row(conn, campaign_id)
        lifecycle.check_deletable(campaign_id, row.status)
        conn.execute(delete(CAMPAIGNS).where(CAMPAIGNS.c.pk == row.pk))


# ---------------------------------------------------------------- queries


def get_campaign_row(conn: Connection, campaign_id: str) -> Any:
    """The campaigns row with this id; exit 4 when there is none."""
    row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).first()
    if row is None:
        raise NotFound(f"campaign {campaign_id!r} not found")
    return row


def live_campaign_row(conn: Connection, campaign_id: str) -> Any:
    """The campaigns row with this id, with the stats its senders have written so far; exit 4 when there is none."""
    row, = with_claim_stats(conn, [get_campaign_row(conn, campaign_id)])
    return row


def get_campaign(engine: Engine, campaign_id: str, users_limit: int = DEFAULT_USERS_LIMIT,
                 users_next: str | None = None, users_prev: str | None = None) -> dict[str, Any]:
    """`{"campaign": {...}, "users": {...}}` for one campaign, with a page of its target users."""
    with reading(engine) as conn:
        return campaign_document(conn, get_campaign_row(conn, campaign_id), users_limit, users_next, users_prev)


def list_campaigns(engine: Engine, filter_: dict | None, sort: list[str], limit: int, next_: str | None,
                   prev: str | None = None) -> Page:
    """One page of campaigns matching `filter_` in `sort` order (keyset paging), with its cursors."""
    check_limit(limit, MAX_PAGE)
    keys = _sort_keys(sort)
    scope = "campaigns:" + ",".join(sort)
    query = select(CAMPAIGNS).where(compile_filter(filter_, CAMPAIGN_FILTER, "--filter"))
    with reading(engine) as conn:
        page = keyset_page(conn, query, keys, scope, limit, next_, prev)
        page.items = campaigns_json(conn, page.items)
    return page


def _sort_keys(sort: list[str]) -> list[tuple[Any, bool]]:
    """(column, descending) for each `--sort`, then the primary key as a tie-breaker."""
    keys = []
    for item in sort:
        name = item.removeprefix("-")
        if name not in SORTABLE:
            raise InvalidInput(f"--sort: cannot sort by {name!r} (use {', '.join(SORTABLE)}, with - for descending)")
        keys.append((SORTABLE[name], item.startswith("-")))
    return [*keys, (CAMPAIGNS.c.pk, False)]
