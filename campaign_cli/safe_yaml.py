"""YAML parsing for files users write: PyYAML's SafeLoader with limits on depth and on alias expansion,
no implicit timestamps and no duplicate keys."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml

from campaign_cli.limits import MAX_DEPTH

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


def parse(text: str) -> Any:
    """The one YAML document in `text`; raises yaml.YAMLError naming the line of a problem."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
