"""Campaign templates: sandboxed Jinja, checked at definition time, compiled once, rendered per target.

The template fields are `message_template.text`, the string values of `message_template.custom`
and `channel_template.custom`, `channel_template.id` and the strings of
`channel_template.members_template`. They render from a context of plain dicts:

    {"sender": user, "receiver": user (absent for channel targets), "channel": channel, "campaign": {"id", "name"}}

A field missing on a user (or null) renders as an empty string; values are data and are
never evaluated as templates.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError, nodes, pass_context
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from campaign_cli.errors import InvalidInput
from campaign_cli.limits import RenderLimits

CONTEXT_NAMES = ("sender", "receiver", "channel", "campaign")

# The render budget. Any one string or list a template makes holds at most MAX_VALUE items;
# range() gives at most MAX_RANGE numbers; an integer has at most MAX_INT_BITS bits; one render
# takes at most MAX_STEPS steps (a loop iteration or a call, macros included). A rendered field
# is at most `max_text_length` characters (RenderLimits, from the config file).
MAX_VALUE = 100_000
MAX_RANGE = 10_000
MAX_INT_BITS = 10_000
MAX_STEPS = 10_000

class RenderError(TemplateError):
    """A template failed for one target at send time (e.g. arithmetic on a text field); names the field.

    A TemplateError, so that the sender catches every rendering failure with one except clause.
    """


class BudgetExceeded(Exception):
    """A template asked for more than the render budget allows."""


_steps_left: ContextVar[list[int]] = ContextVar("template_steps_left")


def _spend(steps: int = 1) -> None:
    budget = _steps_left.get(None)
    if budget is None:
        return  # rendering outside a budgeted render, e.g. Jinja folding constants while compiling
    budget[0] -= steps
    if budget[0] < 0:
        raise BudgetExceeded(f"more than {MAX_STEPS:,} steps (loop iterations and calls) in one render")


def _bounded(value: Any) -> Any:
    """`value`, unless it is a string, list or integer beyond the render budget."""
    kind = type(value)
    if kind is int and value.bit_length() > MAX_INT_BITS:
        raise BudgetExceeded(f"a number larger than {MAX_INT_BITS:,} bits")
    if kind in (str, list, tuple) and len(value) > MAX_VALUE:
        raise BudgetExceeded(f"a value longer than {MAX_VALUE:,}")
    return value


def _check_size(size: int) -> None:
    if size > MAX_VALUE:
        raise BudgetExceeded(f"a value longer than {MAX_VALUE:,}")


def _check_args(args: Iterable[Any]) -> None:
    """Widths, counts and repeats given to a call or filter stay within MAX_VALUE."""
    for arg in args:
        if type(arg) is int and abs(arg) > MAX_VALUE:
            raise BudgetExceeded(f"argument {arg} is larger than {MAX_VALUE:,}")
        if type(arg) is str and len(arg) > MAX_VALUE:
            _check_size(len(arg))


def _check_growth(name: str, subject: Any, args: tuple[Any, ...]) -> None:
    """The size of what `replace`, `join`, `indent` or `expandtabs` would make, before it is made."""
    if not isinstance(subject, str) and name != "join":
        return
    if name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        _check_size(len(subject) + (subject.count(old) if old else len(subject) + 1) * max(0, len(new) - len(old)))
    elif name == "join" and args:
        separator, items = (subject, args[0]) if isinstance(subject, str) else (str(args[0]), subject)
        if isinstance(items, (list, tuple, str)):
            _check_size(len(separator) * len(items))
    elif name == "indent":
        width = args[0] if args else 4
        _check_size((width if type(width) is int else len(str(width))) * (subject.count("\n") + 1))
    elif name == "expandtabs":
        _check_size((args[0] if args and type(args[0]) is int else 8) * (subject.count("\t") + 1))


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\d*)(?:\.(\d*))?")


def _check_format(template: str, percent: bool) -> None:
    """Widths and precisions in a `%` or `str.format` format string stay within MAX_VALUE."""
    if percent:
        specs = [n for m in _PERCENT_SPEC.finditer(template) for n in m.groups() if n]
    else:
        try:
            specs = [spec for _, _, spec, _ in string.Formatter().parse(template) if spec]
        except ValueError:
            return  # str.format reports the bad format string itself
        specs = re.findall(r"\d+", "".join(specs))
    for number in specs:
        if len(number) > 6 or int(number) > MAX_VALUE:
            raise BudgetExceeded(f"a format width of {number[:12]} is larger than {MAX_VALUE:,}")


def _check_power(base: Any, exponent: Any) -> None:
    if type(base) is int and type(exponent) is int and abs(base) > 1 and exponent > 0:
        if exponent * abs(base).bit_length() > MAX_INT_BITS:
            raise BudgetExceeded(f"a number larger than {MAX_INT_BITS:,} bits")


def _check_repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and type(times) is int:
            _check_size(len(seq) * times)


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, where `a.b` on a dict means the key `b`, and every operation keeps to the render budget.

    Jinja tries the attribute first, so `receiver.items` would be the dict method rather than
    a custom field called `items`; looking dict keys up first is also the fast path.
    The budget is checked before an operation that could make a huge value in one step
    (`'x' * n`, `9 ** n`, `'%999999999s' % x`, `s.replace(a, b)`) and on what it made.
    """

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        if isinstance(obj, str) and attribute in ("format", "format_map"):
            _check_format(obj, percent=False)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_format(left, percent=True)
        return _bounded(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        _spend()
        _check_args((*args, *kwargs.values()))
        _check_growth(getattr(__obj, "__name__", ""), getattr(__obj, "__self__", None), args)
        return _bounded(super().call(__context, __obj, *args, **kwargs))


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _budgeted_filter(name: str, filter_: Callable[..., Any]) -> Callable[..., Any]:
    """`filter_` with its arguments and its result checked against the render budget."""
    skip = 1 if hasattr(filter_, "jinja_pass_arg") else 0  # the context, eval context or environment

    @functools.wraps(filter_)
    def budgeted(*args: Any, **kwargs: Any) -> Any:
        value, rest = args[skip] if len(args) > skip else None, args[skip + 1:]
        _check_args((*rest, *kwargs.values()))
        if name == "join" and not isinstance(value, (list, tuple, str)):
            value = list(value)
            args = (*args[:skip], _bounded(value), *rest)
        _check_growth(name, value, rest)
        return _bounded(filter_(*args, **kwargs))

    return budgeted


@pass_context
def _loop_steps(_context: Context, items: Any) -> Iterator[Any]:
    """A `for` loop's items, each counted against the render budget."""
    for item in items:
        _spend()
        yield item


def _bounded_concat(parts: list[Any]) -> str:
    """The `~` operator, refused before it makes a string beyond the render budget."""
    texts = [str(part) for part in parts]
    _check_size(sum(map(len, texts)))
    return "".join(texts)


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise BudgetExceeded(f"range() of more than {MAX_RANGE:,} numbers")
    return numbers


class _Budgeted(NodeTransformer):
    """Rewrites a parsed template so that every loop and every `~` goes through the render budget."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_loop_steps", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        parts = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(parts, "_bounded_concat", [], [], None, None, lineno=node.lineno)


ENV = _Environment(undefined=ChainableUndefined, finalize=_finalize, autoescape=False)
ENV.filters = {name: _budgeted_filter(name, f) for name, f in ENV.filters.items()}
ENV.filters.update(_loop_steps=_loop_steps, _bounded_concat=_bounded_concat)
# lorem ipsum has no place in a campaign message, and lipsum(1000000) is hundreds of megabytes.
del ENV.globals["lipsum"]
ENV.globals["range"] = _bounded_range


def _compile(source: str) -> tuple[nodes.Template, Any]:
    """Parse and compile a template field with the render budget wired in; returns the AST as written and the template."""
    ast = ENV.parse(source)
    budgeted = _Budgeted().visit(ENV.parse(source))
    return ast, ENV.from_string(budgeted)


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
            elif isinstance(value, dict) and isinstance(value.get("user_id"), str):
                yield f"{prefix}.members_template[{i}].user_id", value["user_id"], channel


def check_templates(message_template: dict, channel_template: dict | None, target_kinds: set[str]) -> list[str]:
    """Every problem of a definition's templates, one line each, naming the field and the line.

    `target_kinds` holds "user" and/or "channel": `receiver` exists only for user targets;
    `channel` only in message fields (a channel_template field is rendered before the channel exists).
    A template that plainly exceeds the render budget (see `budget_problems`) is refused here too.
    """
    problems: list[str] = []
    for field, source, in_channel in template_fields(message_template, channel_template):
        try:
            ast, _template = _compile(source)
        except TemplateSyntaxError as exc:
            problems.append(f"{field}: line {exc.lineno}: {exc.message}")
            continue
        problems.extend(_name_problems(field, ast, target_kinds, in_channel))
        problems.extend(f"{field}: line {line}: {problem}" for line, problem in budget_problems(ast))
    return problems


def budget_problems(ast: nodes.Template) -> list[tuple[int, str]]:
    """What a template's source alone shows to exceed the render budget, as (line, problem).

    A constant number beyond MAX_VALUE given to a call or filter (`range(1000000)`,
    `center(1000000)`); a constant repeat (`'x' * 1000000`) or power (`9 ** 99999`) beyond
    the budget. What depends on the data, and the text length (configurable), are checked
    when each message is rendered.
    """
    problems: list[tuple[int, str]] = []
    for node in ast.find_all((nodes.Call, nodes.Filter, nodes.Mul, nodes.Pow)):
        try:
            if isinstance(node, (nodes.Call, nodes.Filter)):
                _check_args(_constants([*node.args, *(kw.value for kw in node.kwargs)]))
            elif isinstance(node, nodes.Mul):
                _check_repeat(*_constants([node.left, node.right], keep_all=True))
            else:
                _check_power(*_constants([node.left, node.right], keep_all=True))
        except BudgetExceeded as exc:
            problems.append((node.lineno, f"over the render budget: {exc}"))
    return problems


def _constants(exprs: list[nodes.Expr], keep_all: bool = False) -> list[Any]:
    """The values of the constant expressions among `exprs` (None in their place with `keep_all`)."""
    values = []
    for expr in exprs:
        try:
            values.append(expr.as_const())
        except Exception:  # noqa: BLE001 - not a constant (nodes.Impossible) or fails to fold
            if keep_all:
                values.append(None)
    return values


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
    """One compiled template field: renders a string from a context, within the render budget.

    Plain templates (text and `{{ name.key… }}` only) render by direct dict lookups, with
    Jinja's result; the rest, and a plain template meeting a value that is not a mapping
    mid-path, render through the sandboxed Jinja template. A result longer than
    `limits.max_text_length` fails that target.
    """

    __slots__ = ("name", "render", "paths", "max_length")

    def __init__(self, name: str, source: str, limits: RenderLimits = RenderLimits()):
        self.name = name
        self.max_length = limits.max_text_length
        try:
            ast, template = _compile(source)
            self.paths = _field_paths(ast)
            parts = _plain_parts(ast)
        except TemplateSyntaxError as exc:
            raise InvalidInput(f"{name}: line {exc.lineno}: {exc.message}") from None
        jinja = self._guarded(template.generate)
        if parts is None:
            render: Callable[[dict], str] = jinja
        elif all(isinstance(p, str) for p in parts):
            constant = "".join(parts)  # type: ignore[arg-type]
            render = lambda ctx: constant  # noqa: E731
        else:
            render = _lookup_renderer(parts, jinja)
        self.render = self._limited(render)

    def _guarded(self, generate: Callable[[dict], Iterator[str]]) -> Callable[[dict], str]:
        """Render through Jinja with a fresh step budget, stopping as soon as the text is too long."""
        name, max_length = self.name, self.max_length

        def guarded(ctx: dict) -> str:
            out: list[str] = []
            length = 0
            token = _steps_left.set([MAX_STEPS])
            try:
                for piece in generate(ctx):
                    length += len(piece)
                    if length > max_length:
                        break
                    out.append(piece)
            except BudgetExceeded as exc:
                raise RenderError(f"{name}: cannot render: over the render budget: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - any failure of a user's template is that target's failure
                raise RenderError(f"{name}: cannot render: {type(exc).__name__}: {exc}") from None
            finally:
                _steps_left.reset(token)
            return "".join(out) if length <= max_length else _too_long(name, max_length)

        return guarded

    def _limited(self, render: Callable[[dict], str]) -> Callable[[dict], str]:
        name, max_length = self.name, self.max_length

        def limited(ctx: dict) -> str:
            text = render(ctx)
            return text if len(text) <= max_length else _too_long(name, max_length)

        return limited


def _too_long(name: str, max_length: int) -> str:
    raise RenderError(f"{name}: rendered text longer than {max_length:,} characters (templates.max_text_length)")


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

    def __init__(self, message_template: dict, channel_template: dict | None, limits: RenderLimits = RenderLimits()):
        message_template = message_template or {}
        channel_template = channel_template or {}
        self._text = _Field("message_template.text", message_template.get("text") or "", limits)
        self._message_custom = _compile_custom(message_template.get("custom"), "message_template", limits)
        self._channel_id = (_Field("channel_template.id", channel_template["id"], limits)
                            if channel_template.get("id") else None)
        self._channel_custom = _compile_custom(channel_template.get("custom"), "channel_template", limits)
        members_template = channel_template.get("members_template")
        self._members_template = (
            [_member_field(i, entry, limits) for i, entry in enumerate(members_template)]
            if members_template is not None else None
        )
        self._members = channel_template.get("members")
        self._fields = [self._text, *_compiled(self._message_custom), *_compiled(self._channel_custom),
                        *([self._channel_id] if self._channel_id else []), *(f for f, _ in self._members_template or [])]

    @classmethod
    def compile(cls, message_template: dict, channel_template: dict | None,
                limits: RenderLimits = RenderLimits()) -> CampaignTemplates:
        """Compile every template field of a (validated) campaign definition."""
        return cls(message_template, channel_template, limits)

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

    def members(self, ctx: dict) -> list[dict[str, Any]] | None:
        """Members of a channel the campaign creates, as `{user_id, channel_role?, custom?}`: the
        rendered members_template (empty ids dropped, the first entry of an id kept), or the plain
        `members` list, or None when neither is set."""
        if self._members_template is not None:
            rendered: dict[str, dict[str, Any]] = {}
            for field, extra in self._members_template:
                user_id = field.render(ctx).strip()
                if user_id:
                    rendered.setdefault(user_id, {"user_id": user_id, **extra})
            return list(rendered.values())
        return [{"user_id": user_id} for user_id in dict.fromkeys(self._members)] if self._members is not None else None

    def field_paths(self) -> set[tuple[str, ...]]:
        """Every `name.key…` chain the templates read."""
        return set().union(*(f.paths for f in self._fields))


def _member_field(index: int, entry: str | dict, limits: RenderLimits) -> tuple[_Field, dict[str, Any]]:
    """A members_template entry: its user id template, and its `channel_role` / `custom` as given."""
    if isinstance(entry, str):
        return _Field(f"channel_template.members_template[{index}]", entry, limits), {}
    extra = {key: entry[key] for key in ("channel_role", "custom") if entry.get(key) is not None}
    return _Field(f"channel_template.members_template[{index}].user_id", entry["user_id"], limits), extra


def _compile_custom(custom: Any, prefix: str, limits: RenderLimits) -> dict[str, Any]:
    if not isinstance(custom, dict):
        return {}
    return {k: _Field(f"{prefix}.custom.{k}", v, limits) if isinstance(v, str) else v for k, v in custom.items()}


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
