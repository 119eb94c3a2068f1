"""YAML definition files: one object, or a list under `segments:` / `campaigns:`.

Times stay strings here (YAML's own timestamp parsing is switched off) so that the services
can insist on RFC 3339 with an offset and name the field when it is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from campaign_cli.errors import InvalidInput
from campaign_cli.files import read_text
from campaign_cli.limits import check_value

MAX_YAML_BYTES = 1 << 20


def load_yaml(path: Path, what: str = "file") -> Any:
    """Parse one YAML document from a file; unreadable, malformed or oversized YAML is exit 3 naming the file and line.

    `what` names the file in messages ("file", "config file").
    """
    import yaml  # here, not above: most commands read no YAML, and PyYAML takes 20 ms to import

    from campaign_cli.safe_yaml import parse

    text = read_text(path, what, MAX_YAML_BYTES)
    try:
        return check_value(parse(text), str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if getattr(exc, "context", None) == "expected a single document in the stream":
            problem = "more than one document ('---') in the file"
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
