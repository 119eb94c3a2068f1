"""YAML definition files: one object, or a list under `segments:` / `campaigns:`.

Times stay strings here (YAML's own timestamp parsing is switched off) so that the services
can insist on RFC 3339 with an offset and name the field when it is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from campaign_cli.errors import InvalidInput


class _Loader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: `2026-12-01 09:00` stays the string the user wrote."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}


def load_yaml(path: Path) -> Any:
    """Parse a YAML file; unreadable or malformed YAML is exit 3 naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a folder, not a file") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not valid UTF-8") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(f"{where}: bad YAML: {problem}") from None


def load_definitions(path: Path, list_key: str) -> list[tuple[str, dict[str, Any]]]:
    """The objects a definition file holds, each with a `where` label for error messages.

    A file holds one mapping, or a mapping with only `list_key` (e.g. `segments:`) whose value
    is a list of mappings. Anything else is exit 3.
    """
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: a definition file must hold a mapping, got {type(data).__name__}")
    if list_key in data:
        if set(data) != {list_key}:
            extra = sorted(set(data) - {list_key})
            raise InvalidInput(f"{path}: unknown key {extra[0]!r} beside {list_key}:")
        items = data[list_key]
        if not isinstance(items, list):
            raise InvalidInput(f"{path}: {list_key}: must be a list")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidInput(f"{path}: {list_key}[{i}]: must be a mapping")
        return [(f"{path}: {list_key}[{i}]", item) for i, item in enumerate(items)]
    return [(str(path), data)]


def check_keys(obj: dict[str, Any], allowed: set[str] | frozenset[str], where: str) -> None:
    """Unknown keys are errors."""
    for key in obj:
        if key not in allowed:
            raise InvalidInput(f"{where}: unknown key {key!r}")
