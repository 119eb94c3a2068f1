"""The limits on what users hand in (records, filters, definitions), and the one check of a parsed value.

Every value that comes from a file or a flag (an import record, a filter, a YAML definition)
is a tree of dicts, lists, strings, numbers, bools and None. `check_value` walks such a tree
once, without recursion, and refuses what no store can hold the same way:
- nesting deeper than MAX_DEPTH (Python, SQLite and PostgreSQL each give up somewhere else);
- NaN and ±Infinity (not JSON: stored once, they break every later filter and `--json`);
- integers outside 64 bits (SQLite cannot hold them; PostgreSQL would, so both refuse);
- NUL characters (PostgreSQL cannot store them in text or JSON) and lone surrogates (not Unicode).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from campaign_cli.errors import InvalidInput

MAX_DEPTH = 64
MAX_RECORD = 16 << 20
MAX_IN = 100_000
MAX_TIME_IN = 1_000
DEFAULT_MAX_TEXT_LENGTH = 5_000
_INT64 = (-(1 << 63), (1 << 63) - 1)


@dataclass(frozen=True)
class RenderLimits:
    """The limits of a campaign's rendered fields (`templates:` in the config file)."""

    max_text_length: int = DEFAULT_MAX_TEXT_LENGTH


def check_value(value: Any, where: str) -> Any:
    """Return `value` when it is within the limits; otherwise raise InvalidInput naming `where` and the field."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        kind = type(item)
        if kind is str:
            _check_text(item, where, path)
        elif kind is dict or kind is list:
            if depth > MAX_DEPTH:
                raise InvalidInput(f"{where}: {_at(path)}nested deeper than {MAX_DEPTH} levels")
            pairs = item.items() if kind is dict else enumerate(item)
            for key, child in pairs:
                if type(key) is str:
                    _check_text(key, where, path, key=True)
                stack.append((child, f"{path}.{key}" if kind is dict else f"{path}[{key}]", depth + 1))
        elif kind is float:
            if not math.isfinite(item):
                name = "NaN" if math.isnan(item) else "Infinity" if item > 0 else "-Infinity"
                raise InvalidInput(f"{where}: {_at(path)}{name} is not a number JSON can hold")
        elif kind is int and not _INT64[0] <= item <= _INT64[1]:
            raise InvalidInput(f"{where}: {_at(path)}integer {_short(item)} does not fit in 64 bits")
    return value


def _check_text(text: str, where: str, path: str, key: bool = False) -> None:
    if text.isprintable() and text.isascii():
        return  # the common case, checked in C
    what = f"key {text[:40]!r}" if key else "text"
    if "\x00" in text:
        raise InvalidInput(f"{where}: {_at(path)}{what} holds a NUL character (\\u0000), which cannot be stored")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{where}: {_at(path)}{what} holds a lone surrogate (like \\ud800), not valid Unicode") from None


def _at(path: str) -> str:
    path = path.lstrip(".")
    if len(path) > 60:
        path = f"{path[:28]}…{path[-28:]}"
    return f"field {path!r}: " if path else ""


def _short(number: int) -> str:
    digits = str(abs(number)) if number.bit_length() < 4000 else "…"
    sign = "-" if number < 0 else ""
    return f"{sign}{digits}" if len(digits) <= 30 else f"{sign}{digits[:12]}…({len(digits)} digits)"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON can hold")


def _int64(text: str) -> int:
    value = int(text)
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"integer {_short(value)} does not fit in 64 bits")
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:30]} is not a number JSON can hold")
    return value


# JSON as the stores can hold it: numbers are checked while they are parsed, which costs far
# less than walking every record of a large import afterwards.
STRICT_JSON = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_int64, parse_float=_finite)
_LENIENT_JSON = json.JSONDecoder()


def strict_failure(exc: ValueError | RecursionError, text: str, pos: int, where: str) -> InvalidInput:
    """The error for JSON at `text[pos:]` that STRICT_JSON refused with `exc`, naming the field when it can.

    Only on this error path is the value parsed again, leniently, to find the field at fault.
    """
    if isinstance(exc, RecursionError):
        return InvalidInput(f"{where}: nested deeper than {MAX_DEPTH} levels")
    try:
        check_value(_LENIENT_JSON.raw_decode(text, pos)[0], where)
    except InvalidInput as named:
        return named
    except (ValueError, RecursionError):
        pass
    return InvalidInput(f"{where}: bad JSON: {exc}")


def loads(text: str, where: str) -> Any:
    """Strict JSON: no NaN or Infinity, nesting and numbers within the limits; errors name `where`."""
    try:
        value = STRICT_JSON.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where}: not valid JSON: {exc.msg} at column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise strict_failure(exc, text, len(text) - len(text.lstrip()), where) from None
    return check_value(value, where)
