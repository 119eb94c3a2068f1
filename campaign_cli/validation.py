"""`campaign validate`: check campaign and segment definition files, writing nothing.

A file is told apart by its content: a `campaigns:` or `segments:` list, or one object whose keys
belong to a campaign (sender_id, message_template, …) or to a segment (type, filter, …). Without a
database the references of campaigns (segments, sender) are not checked; segments defined in the
files being validated count as known either way.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine

from campaign_cli import campaigns, segments
from campaign_cli.definitions import load_definitions, load_yaml
from campaign_cli.errors import InvalidInput
from campaign_cli.store.engine import reading

CAMPAIGN, SEGMENT = "campaign", "segment"
_SHARED_KEYS = {"id", "name", "description"}
CAMPAIGN_KEYS = (campaigns.DEFINITION_KEYS | campaigns.READ_ONLY_KEYS) - _SHARED_KEYS
SEGMENT_KEYS = segments.DEFINITION_KEYS - _SHARED_KEYS
_FIELD = re.compile(r"([A-Za-z_][\w.\[\]]*)(?:, [\w.\[\]]+)*: (.+)", re.S)
_UNKNOWN_KEY = re.compile(r"unknown key '([^']+)'")


@dataclass(frozen=True)
class Problem:
    """One problem: the file, the line in it (when known), the field (when one is at fault), and what is wrong."""

    file: str
    line: int | None
    field: str | None
    message: str
    text: str  # the whole line, as printed without --json

    def json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


@dataclass
class Report:
    """What `validate` found."""

    files: int
    references_checked: bool
    counts: dict[str, int] = field(default_factory=lambda: {CAMPAIGN: 0, SEGMENT: 0})
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def json(self) -> dict[str, Any]:
        return {"ok": self.ok, "files": self.files, "problems": [p.json() for p in self.problems]}


@dataclass
class _Definition:
    kind: str
    path: Path
    index: int | None
    where: str
    obj: dict[str, Any]


def validate_files(engine: Engine | None, paths: list[Path]) -> Report:
    """Check every definition of `paths`; with `engine`, check the campaigns' references against it too."""
    report = Report(files=len(paths), references_checked=engine is not None)
    definitions: list[_Definition] = []
    for path in paths:
        try:
            definitions.extend(_definitions(path))
        except InvalidInput as exc:
            report.problems.append(_file_problem(path, str(exc)))
    for d in definitions:
        report.counts[d.kind] += 1
    known = _check_segments(report, [d for d in definitions if d.kind == SEGMENT])
    wanted = [d for d in definitions if d.kind == CAMPAIGN]
    with reading(engine) if engine is not None else nullcontext() as conn:
        for d in wanted:
            for text in campaigns.validate_spec(conn, d.obj, d.where, known):
                report.problems.append(_problem(d, text))
    for kind in (SEGMENT, CAMPAIGN):
        same_kind = [d for d in definitions if d.kind == kind]
        by_where = {d.where: d for d in same_kind}
        for where, message in _duplicates(kind, same_kind):
            report.problems.append(_problem(by_where[where], f"{where}: id: {message}"))
    return report


def _definitions(path: Path) -> list[_Definition]:
    kind = _kind_of(path, load_yaml(path))
    loaded = load_definitions(path, "campaigns" if kind == CAMPAIGN else "segments")
    listed = not (len(loaded) == 1 and loaded[0][0] == str(path))
    return [_Definition(kind, path, i if listed else None, where, obj) for i, (where, obj) in enumerate(loaded)]


def _kind_of(path: Path, data: Any) -> str:
    """Campaign or segment, from the file's content; a file that is neither is exit 3 naming it."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: a definition file must hold a mapping, got {type(data).__name__}")
    if "campaigns" in data:
        return CAMPAIGN
    if "segments" in data:
        return SEGMENT
    campaign_keys, segment_keys = data.keys() & CAMPAIGN_KEYS, data.keys() & SEGMENT_KEYS
    if campaign_keys and (not segment_keys or {"sender_id", "message_template"} & campaign_keys):
        return CAMPAIGN
    if segment_keys:
        return SEGMENT
    raise InvalidInput(f"{path}: neither a campaign definition (sender_id, message_template, …) "
                       "nor a segment definition (type, filter, …), nor a campaigns: or segments: list")


def _check_segments(report: Report, definitions: list[_Definition]) -> dict[str, str]:
    """Check segment definitions; returns the id → type of those that can be referenced."""
    known: dict[str, str] = {}
    for d in definitions:
        try:
            spec = segments.check_definition(d.obj, d.where, d.path.parent)
        except InvalidInput as exc:
            report.problems.append(_problem(d, str(exc)))
            continue
        if isinstance(spec.fields.get("id"), str):
            known[spec.fields["id"]] = spec.fields["type"]
    return known


def _duplicates(kind: str, definitions: list[_Definition]) -> list[tuple[str, str]]:
    if kind == CAMPAIGN:
        return campaigns.duplicate_ids([(d.where, d.obj) for d in definitions])
    first: dict[str, str] = {}
    found = []
    for d in definitions:
        segment_id = d.obj.get("id")
        if isinstance(segment_id, str) and segment_id in first:
            found.append((d.where, f"segment {segment_id!r} is defined twice (first at {first[segment_id]})"))
        elif isinstance(segment_id, str):
            first[segment_id] = d.where
    return found


def _file_problem(path: Path, text: str) -> Problem:
    """A problem with a whole file (unreadable, bad YAML, neither kind): `PATH:LINE: message` or `PATH: message`."""
    match = re.match(rf"{re.escape(str(path))}(?::(\d+))?: (.*)", text, re.S)
    if match is None:
        return Problem(str(path), None, None, text, text)
    line = int(match.group(1)) if match.group(1) else None
    return Problem(str(path), line, None, match.group(2), text)


def _problem(d: _Definition, text: str) -> Problem:
    """Split `WHERE: field: message` into its parts and find the field's line in the file."""
    rest = text[len(d.where) + 2:] if text.startswith(d.where + ": ") else text
    field_name, message = None, rest
    match = _FIELD.fullmatch(rest)
    if match is not None:
        field_name, message = match.group(1), match.group(2)
    else:
        unknown = _UNKNOWN_KEY.fullmatch(rest)
        if unknown is not None:
            field_name = unknown.group(1)
    return Problem(str(d.path), _line_of(d, field_name), field_name, message, text)


def _line_of(d: _Definition, field_name: str | None) -> int | None:
    """The line of the field (or of the definition) in its file, 1-based; None when it cannot be found."""
    try:
        node = yaml.compose(d.path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if node is not None and d.index is not None:
        node = _child(_child(node, "campaigns" if d.kind == CAMPAIGN else "segments"), d.index)
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", field_name or ""):
        key: str | int = int(part[1:-1]) if part.startswith("[") else part
        child = _child(node, key)
        if child is None:
            break
        node, line = child, _key_line(node, key)
    return line


def _child(node: Any, key: str | int) -> Any:
    if isinstance(node, yaml.MappingNode) and isinstance(key, str):
        return next((v for k, v in node.value if getattr(k, "value", None) == key), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key]
    return None


def _key_line(parent: Any, key: str | int) -> int:
    """The line where `key` is written in `parent` (a mapping key's own line, or a list item's)."""
    if isinstance(parent, yaml.MappingNode):
        for k, _ in parent.value:
            if getattr(k, "value", None) == key:
                return k.start_mark.line + 1
    return parent.value[key].start_mark.line + 1
