"""Campaign templates: sandboxed Jinja, checked at definition time, compiled once, rendered per target.

The template fields are `message_template.text`, the string values of `message_template.custom`
and `channel_template.custom`, `channel_template.id` and the strings of
`channel_template.members_template`. They render from a context of plain dicts:

    {"sender": user, "receiver": user (absent for channel targets), "channel": channel, "campaign": {"id", "name"}}

A field missing on a user (or null) renders as an empty string; values are data and are
never evaluated as templates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError, nodes
from jinja2.meta import find_undeclared_variables
from jinja2.sandbox import SandboxedEnvironment

from campaign_cli.errors import InvalidInput

CONTEXT_NAMES = ("sender", "receiver", "channel", "campaign")


class RenderError(TemplateError):
    """A template failed for one target at send time (e.g. arithmetic on a text field); names the field.

    A TemplateError, so that the sender catches every rendering failure with one except clause.
    """


class _Environment(SandboxedEnvironment):
    """The sandbox, where `a.b` on a dict means the key `b`.

    Jinja tries the attribute first, so `receiver.items` would be the dict method rather than
    a custom field called `items`; looking dict keys up first is also the fast path.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def _finalize(value: Any) -> Any:
    return "" if value is None else value


ENV = _Environment(undefined=ChainableUndefined, finalize=_finalize, autoescape=False)


def template_fields(message_template: dict, channel_template: dict | None) -> Iterator[tuple[str, str, bool]]:
    """Every template string of a definition as (field name, source, is a channel_template field).

    Values that are not strings are skipped: the definition's schema check reports those.
    """
    yield from _fields_of(message_template, "message_template", channel=False)
    if isinstance(channel_template, dict):
        yield from _fields_of(channel_template, "channel_template", channel=True)


def _fields_of(template: Any, prefix: str, channel: bool) -> Iterator[tuple[str, str, bool]]:
    if not isinstance(template, dict):
        return
    main_key = "id" if channel else "text"
    if isinstance(template.get(main_key), str):
        yield f"{prefix}.{main_key}", template[main_key], channel
    custom = template.get("custom")
    if isinstance(custom, dict):
        for key, value in custom.items():
            if isinstance(value, str):
                yield f"{prefix}.custom.{key}", value, channel
    members = template.get("members_template") if channel else None
    if isinstance(members, list):
        for i, value in enumerate(members):
            if isinstance(value, str):
                yield f"{prefix}.members_template[{i}]", value, channel


def check_templates(message_template: dict, channel_template: dict | None, target_kinds: set[str]) -> list[str]:
    """Every problem of a definition's templates, one line each, naming the field and the line.

    `target_kinds` holds "user" and/or "channel": `receiver` exists only for user targets;
    `channel` only in message fields (a channel_template field is rendered before the channel exists).
    """
    problems: list[str] = []
    for field, source, in_channel in template_fields(message_template, channel_template):
        try:
            ast = ENV.parse(source)
            ENV.compile(ast)
        except TemplateSyntaxError as exc:
            problems.append(f"{field}: line {exc.lineno}: {exc.message}")
            continue
        problems.extend(_name_problems(field, ast, target_kinds, in_channel))
    return problems


def _name_problems(field: str, ast: nodes.Template, target_kinds: set[str], in_channel: bool) -> list[str]:
    problems = []
    for name in sorted(find_undeclared_variables(ast), key=lambda n: (_first_line(ast, n), n)):
        reason = _why_unavailable(name, target_kinds, in_channel)
        if reason:
            problems.append(f"{field}: line {_first_line(ast, name)}: {reason}")
    return problems


def _why_unavailable(name: str, target_kinds: set[str], in_channel: bool) -> str | None:
    if name == "receiver" and "user" not in target_kinds:
        return "'receiver' is not available: the campaign targets only channels"
    if name == "channel" and in_channel:
        return "'channel' is not available in channel_template: the channel does not exist yet"
    if name in CONTEXT_NAMES or name in ENV.globals:
        return None
    return f"unknown variable {name!r} (use sender, receiver, channel or campaign)"


def _first_line(ast: nodes.Template, name: str) -> int:
    return min((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), default=1)


def _field_paths(ast: nodes.Template) -> set[tuple[str, ...]]:
    """The longest `name.key.key` chains on context names that a template reads, e.g. ('receiver', 'country')."""
    undeclared = find_undeclared_variables(ast) & set(CONTEXT_NAMES)
    paths: set[tuple[str, ...]] = set()
    prefixes: set[tuple[str, ...]] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        path = _path_of(node)
        if path and path[0] in undeclared:
            path = tuple(str(key) for key in path)
            paths.add(path)
            prefixes.update(path[:i] for i in range(1, len(path)))
    return paths - prefixes


def _path_of(node: nodes.Node) -> tuple[Any, ...] | None:
    """`receiver.address["city"]` → ('receiver', 'address', 'city'); None for anything but such a chain."""
    if isinstance(node, nodes.Name):
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        key: Any = node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        key = node.arg.value
    else:
        return None
    base = _path_of(node.node)
    return None if base is None else (*base, key)


def _plain_parts(ast: nodes.Template) -> list[str | tuple[str, ...]] | None:
    """Text and `{{ name.key… }}` outputs only (most campaign texts), as literal strings and key paths; else None."""
    parts: list[str | tuple[str, ...]] = []
    for node in ast.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append(child.data)
                continue
            path = _path_of(child)
            if path is None or path[0] not in CONTEXT_NAMES or not all(isinstance(k, str) for k in path):
                return None
            parts.append(path)
    return parts


class _Field:
    """One compiled template field: renders a string from a context.

    Plain templates (text and `{{ name.key… }}` only) render by direct dict lookups, with
    Jinja's result; the rest, and a plain template meeting a value that is not a mapping
    mid-path, render through the sandboxed Jinja template.
    """

    __slots__ = ("name", "render", "paths")

    def __init__(self, name: str, source: str):
        self.name = name
        try:
            ast = ENV.parse(source)
            self.paths = _field_paths(ast)
            parts = _plain_parts(ast)
            jinja = self._guarded(ENV.from_string(ast).render)
        except TemplateSyntaxError as exc:
            raise InvalidInput(f"{name}: line {exc.lineno}: {exc.message}") from None
        if parts is None:
            self.render: Callable[[dict], str] = jinja
        elif all(isinstance(p, str) for p in parts):
            constant = "".join(parts)  # type: ignore[arg-type]
            self.render = lambda ctx: constant
        else:
            self.render = _lookup_renderer(parts, jinja)

    def _guarded(self, render: Callable[[dict], str]) -> Callable[[dict], str]:
        name = self.name

        def guarded(ctx: dict) -> str:
            try:
                return render(ctx)
            except Exception as exc:  # noqa: BLE001 - any failure of a user's template is that target's failure
                raise RenderError(f"{name}: cannot render: {type(exc).__name__}: {exc}") from None

        return guarded


def _lookup_renderer(parts: list[str | tuple[str, ...]], jinja: Callable[[dict], str]) -> Callable[[dict], str]:
    """Render literal text and key paths by dict lookups: missing or null is "", other values as str()."""

    def render(ctx: dict) -> str:
        out = []
        for part in parts:
            if type(part) is str:
                out.append(part)
                continue
            value: Any = ctx
            for key in part:
                if type(value) is not dict:
                    return jinja(ctx)
                value = value.get(key)
                if value is None:
                    break
            out.append("" if value is None else value if type(value) is str else str(value))
        return "".join(out)

    return render


class CampaignTemplates:
    """A campaign's templates, compiled once; each method renders one target's value from plain dicts."""

    def __init__(self, message_template: dict, channel_template: dict | None):
        message_template = message_template or {}
        channel_template = channel_template or {}
        self._text = _Field("message_template.text", message_template.get("text") or "")
        self._message_custom = _compile_custom(message_template.get("custom"), "message_template")
        self._channel_id = _Field("channel_template.id", channel_template["id"]) if channel_template.get("id") else None
        self._channel_custom = _compile_custom(channel_template.get("custom"), "channel_template")
        members_template = channel_template.get("members_template")
        self._members_template = (
            [_Field(f"channel_template.members_template[{i}]", s) for i, s in enumerate(members_template)]
            if members_template is not None else None
        )
        self._members = channel_template.get("members")
        self._fields = [self._text, *_compiled(self._message_custom), *_compiled(self._channel_custom),
                        *([self._channel_id] if self._channel_id else []), *(self._members_template or [])]

    @classmethod
    def compile(cls, message_template: dict, channel_template: dict | None) -> CampaignTemplates:
        """Compile every template field of a (validated) campaign definition."""
        return cls(message_template, channel_template)

    def text(self, ctx: dict) -> str:
        """The message text for one target."""
        return self._text.render(ctx)

    def message_custom(self, ctx: dict) -> dict:
        """The message's custom fields: string values rendered, other values as given (do not mutate them)."""
        return _render_custom(self._message_custom, ctx)

    def channel_id(self, ctx: dict) -> str | None:
        """The id of the channel to use or create; None when the channel template has no id,
        "" when it renders empty (a field missing for this target)."""
        if self._channel_id is None:
            return None
        return self._channel_id.render(ctx).strip()

    def channel_custom(self, ctx: dict) -> dict:
        """The custom fields of a channel the campaign creates."""
        return _render_custom(self._channel_custom, ctx)

    def members(self, ctx: dict) -> list[str] | None:
        """Members of a channel the campaign creates: the rendered members_template (empty ids
        dropped, duplicates removed), or the plain `members` list, or None when neither is set."""
        if self._members_template is not None:
            return list(dict.fromkeys(m for f in self._members_template if (m := f.render(ctx).strip())))
        return list(self._members) if self._members is not None else None

    def field_paths(self) -> set[tuple[str, ...]]:
        """Every `name.key…` chain the templates read."""
        return set().union(*(f.paths for f in self._fields))


def _compile_custom(custom: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(custom, dict):
        return {}
    return {k: _Field(f"{prefix}.custom.{k}", v) if isinstance(v, str) else v for k, v in custom.items()}


def _compiled(custom: dict[str, Any]) -> list[_Field]:
    return [v for v in custom.values() if isinstance(v, _Field)]


def _render_custom(custom: dict[str, Any], ctx: dict) -> dict:
    return {k: v.render(ctx) if isinstance(v, _Field) else v for k, v in custom.items()}


def missing_fields(templates: CampaignTemplates, ctx: dict) -> list[str]:
    """The dotted fields (e.g. "receiver.country") the templates read that are missing or null in `ctx`.

    Each chain is reported up to its first missing key (`receiver.address` for `receiver.address.city`);
    it stops being checked where it reaches a value that is not a mapping (`receiver.name.upper`).
    """
    return sorted({missing for path in templates.field_paths() if (missing := _first_missing(ctx, path))})


def _first_missing(ctx: dict, path: tuple[str, ...]) -> str | None:
    value: Any = ctx
    for depth, key in enumerate(path):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
        if value is None:
            return ".".join(path[:depth + 1])
    return None
