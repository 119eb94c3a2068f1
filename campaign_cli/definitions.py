"""YAML definition files: one object, or a list under `segments:` / `campaigns:`.

Times stay strings here (YAML's own timestamp parsing is switched off) so that the services
can insist on RFC 3339 with an offset and name the field when it is missing.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from campaign_cli.errors import InvalidInput
from campaign_cli.files import read_text
from campaign_cli.limits import MAX_DEPTH, check_value


MAX_YAML_BYTES = 1 << 20


MAX_YAML_VALUES = 100_000


class _Loader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps or duplicate keys, with a depth limit and an alias budget.

    `2026-12-01 09:00` stays the string the user wrote. Aliases (which `yaml.dump` writes for
    a value used twice) are expanded within a budget: a few lines of nested aliases would
    otherwise expand to gigabytes ("billion laughs"). A key given twice is an error rather
    than the last one silently winning.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0
        self.values = 0  # values composed so far, each alias counting as the values it stands for
        self.sizes: dict[str, int] = {}  # anchor → values under it, once it is complete

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            if event.anchor in self.anchors and event.anchor not in self.sizes:
                raise _Problem(event.start_mark, f"alias *{event.anchor} refers to a value that holds it")
            self._spend(self.sizes.get(event.anchor, 0), event.start_mark)
            return super().compose_node(parent, index)
        start, event = self.values, self.peek_event()
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Problem(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
            self._spend(1, event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if getattr(event, "anchor", None) is not None:
            self.sizes[event.anchor] = self.values - start
        return node

    def _spend(self, values: int, mark: Any) -> None:
        self.values += values
        if self.values > MAX_YAML_VALUES:
            raise _Problem(mark, f"more than {MAX_YAML_VALUES:,} values once aliases are expanded")

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # SafeLoader's own check names an unhashable key
            if key in seen:
                raise _Problem(key_node.start_mark, f"key {key!r} appears twice in one mapping")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Problem(yaml.MarkedYAMLError):
    def __init__(self, mark: Any, problem: str):
        super().__init__(problem=problem, problem_mark=mark)


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}


def load_yaml(path: Path, what: str = "file") -> Any:
    """Parse one YAML document from a file; unreadable, malformed or oversized YAML is exit 3 naming the file and line.

    `what` names the file in messages ("file", "config file").
    """
    text = read_text(path, what, MAX_YAML_BYTES)
    try:
        return check_value(yaml.load(text, Loader=_Loader), str(path))  # noqa: S506 - a SafeLoader subclass
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
