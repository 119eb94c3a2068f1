"""Streaming readers for JSONL, JSON-array and CSV record files (`-` is stdin).

Each reader yields `(line, record)` pairs and never holds more than one chunk of the file,
so memory does not grow with the file. Bad JSON, bad UTF-8 and a CSV without an `id`
column are exit 3 naming the file and line. Files are read as bytes and decoded line by
line (or chunk by chunk for a JSON array), so a bad byte is reported on its own line.
A UTF-8 byte order mark at the start of a file is skipped.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from campaign_cli.errors import InvalidInput
from campaign_cli.files import open_file
from campaign_cli.limits import MAX_DEPTH, MAX_RECORD, STRICT_JSON, check_value, strict_failure

FORMATS = ("jsonl", "json", "csv")
CHUNK = 1 << 20
BOM = "\ufeff"
BOM_BYTES = BOM.encode()


class RecordSource:
    """One input file; `bytes_read` and `size` feed a progress bar."""

    def __init__(self, name: str, fmt: str | None = None):
        self.name = name
        self.fmt = fmt or _format_from_name(name)
        self.size = 0 if name == "-" else _size(name)
        self._raw: Any = None

    @property
    def bytes_read(self) -> int:
        try:
            return self._raw.tell() if self._raw is not None else 0
        except (OSError, ValueError):
            return 0

    def records(self) -> Iterator[tuple[int, Any]]:
        """Yield `(line, value)` for every record in the file."""
        self._raw = _stdin() if self.name == "-" else open_file(self.name)
        reader = {"jsonl": _jsonl, "json": _json_array, "csv": _csv}[self._detect()]
        try:
            yield from reader(self._raw, self.name)
        finally:
            if self.name != "-":
                self._raw.close()

    def _detect(self) -> str:
        """The format named or implied by the extension; otherwise a JSON array if it starts with '['."""
        if self.fmt is not None:
            return self.fmt
        head = self._raw.peek(256)[:256].lstrip(b"\xef\xbb\xbf \t\r\n")
        return "json" if head.startswith(b"[") else "jsonl"


def _stdin() -> BinaryIO:
    """Standard input as a buffered byte stream that can `peek` (a test runner may give a plain BytesIO)."""
    raw = sys.stdin.buffer
    return raw if hasattr(raw, "peek") else io.BufferedReader(raw)


def _size(name: str) -> int:
    path = Path(name)
    if not path.exists():
        raise InvalidInput(f"{name}: file not found")
    if path.is_dir():
        raise InvalidInput(f"{name}: is a folder, not a file")
    return path.stat().st_size


def _format_from_name(name: str) -> str | None:
    suffix = Path(name).suffix.lower().lstrip(".")
    return {"jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "csv": "csv"}.get(suffix)


def _decode_error(name: str, line: int) -> InvalidInput:
    return InvalidInput(f"{name}:{line}: not valid UTF-8")


def _raw_lines(raw: BinaryIO, name: str) -> Iterator[tuple[int, bytes]]:
    """The numbered lines of a byte stream, without the byte order mark of the first.

    A line longer than MAX_RECORD is refused rather than read whole into memory.
    """
    for line_no, line in enumerate(iter(partial(raw.readline, MAX_RECORD + 1), b""), 1):
        if len(line) > MAX_RECORD:
            raise InvalidInput(f"{name}:{line_no}: a record larger than {MAX_RECORD >> 20} MB")
        yield line_no, line.removeprefix(BOM_BYTES) if line_no == 1 else line


def _lines(raw: BinaryIO, name: str) -> Iterator[tuple[int, str]]:
    """The lines of a byte stream, decoded one by one so that bad UTF-8 names its line."""
    for line_no, line in _raw_lines(raw, name):
        yield line_no, _text(line, name, line_no)


def _text(line: bytes, name: str, line_no: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise _decode_error(name, line_no) from None


def _jsonl(raw: BinaryIO, name: str) -> Iterator[tuple[int, Any]]:
    """The records of a JSONL stream; blank lines are skipped.

    orjson reads a line in a third of the time of the standard parser. The lines it would read
    differently (integers of 19 digits or more: it takes up to 2**64 and turns larger ones into
    floats) or refuses go to the standard parser with STRICT_JSON, whose errors name the problem.
    """
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    for line_no, line in _raw_lines(raw, name):
        if _LONG_NUMBER not in line.translate(_DIGITS_AS_ZEROS):
            try:
                record = loads(line)
            except decode_error:
                pass
            else:
                yield line_no, _checked(record, line, f"{name}:{line_no}")
                continue
        record = _careful_record(_text(line, name, line_no), f"{name}:{line_no}")
        if record is not _BLANK:
            yield line_no, record


# 19 digits in a row (in a number or a string: either way the standard parser decides); found by a
# translation and a substring search, ten times faster than a regular expression.
_DIGITS_AS_ZEROS = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_NUMBER = b"0" * 19
_BLANK = object()


def _checked(record: Any, text: bytes | str, where: str) -> Any:
    """`record`, parsed from `text` (whose numbers were checked), when it is within the limits.

    Only a `\\u` escape can put a NUL or a lone surrogate into JSON, and nesting needs brackets:
    records without either skip the walk, which keeps it off a large import's hot path.
    """
    escape, opening, brace = ("\\u", "[", "{") if isinstance(text, str) else (b"\\u", b"[", b"{")
    if escape in text or text.count(opening) + text.count(brace) > MAX_DEPTH:
        check_value(record, where)
    return record


def _careful_record(line: str, where: str) -> Any:
    """One line read by the standard parser with STRICT_JSON: exact errors; `_BLANK` for a blank line."""
    try:
        record = STRICT_JSON.decode(line)
    except json.JSONDecodeError as exc:
        if not line.strip():
            return _BLANK
        column = min(exc.pos, len(line.rstrip("\r\n"))) + 1  # not past the end of the line
        raise InvalidInput(f"{where}: bad JSON: {exc.msg} at column {column}") from None
    except (ValueError, RecursionError) as exc:
        raise strict_failure(exc, line, len(line) - len(line.lstrip()), where) from None
    return _checked(record, line, where)


def _json_array(raw: BinaryIO, name: str) -> Iterator[tuple[int, Any]]:
    """Stream the elements of a top-level JSON array, one at a time."""
    reader = _ArrayReader(raw, name)
    yield from reader.elements()


class _ArrayReader:
    def __init__(self, raw: BinaryIO, name: str):
        self.raw, self.name = raw, name
        self.buf, self.pos, self.line, self.eof = "", 0, 1, False
        self.decoder = STRICT_JSON
        self.utf8 = codecs.getincrementaldecoder("utf-8-sig")()
        self.lines_decoded = 0  # newlines in the bytes decoded so far, to place a bad byte

    def fill(self) -> bool:
        data = self.raw.read(CHUNK)
        try:
            chunk = self.utf8.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise _decode_error(self.name, self.lines_decoded + exc.object[:exc.start].count(b"\n") + 1) from None
        self.lines_decoded += data.count(b"\n")
        if not chunk:
            self.eof = not data
            return bool(data) and self.fill()
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space ('' at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                if self.buf[self.pos] == "\n":
                    self.line += 1
                self.pos += 1
            if self.pos < len(self.buf) or not self.fill():
                return self.buf[self.pos:self.pos + 1]

    def fail(self, message: str) -> InvalidInput:
        return InvalidInput(f"{self.name}:{self.line}: bad JSON: {message}")

    def elements(self) -> Iterator[tuple[int, Any]]:
        first = self.peek()
        if first == "":
            return
        if first != "[":
            raise self.fail("expected a JSON array of records ('[' at the start)")
        self.pos += 1
        if self.peek() == "]":
            self.pos += 1
            return self.expect_end()
        while True:
            yield self.line, self.value()
            nxt = self.peek()
            self.pos += 1
            if nxt == "]":
                return self.expect_end()
            if nxt != ",":
                raise self.fail(f"expected ',' or ']' but found {nxt!r}" if nxt else "unexpected end of file")
            self.peek()

    def value(self) -> Any:
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos > MAX_RECORD:
                    raise InvalidInput(f"{self.name}:{self.line}: a record larger than {MAX_RECORD >> 20} MB") from None
                if self.eof or not self.fill():
                    self.line += self.buf.count("\n", self.pos, exc.pos)
                    raise self.fail(exc.msg) from None
                continue
            except (ValueError, RecursionError) as exc:
                raise strict_failure(exc, self.buf, self.pos, f"{self.name}:{self.line}") from None
            if end == len(self.buf) and not self.eof and self.fill():
                continue  # a number may go on in the next chunk
            if end - self.pos > MAX_RECORD:
                raise InvalidInput(f"{self.name}:{self.line}: a record larger than {MAX_RECORD >> 20} MB")
            _checked(value, self.buf[self.pos:end], f"{self.name}:{self.line}")
            self.line += self.buf.count("\n", self.pos, end)
            self.pos = end
            return value

    def expect_end(self) -> None:
        if self.peek() != "":
            raise self.fail("unexpected data after the closing ']'")


def _csv(raw: BinaryIO, name: str) -> Iterator[tuple[int, Any]]:
    """CSV read strictly: a duplicated column, a row longer than the header or a quote left open is exit 3."""
    reader = csv.DictReader((text for _, text in _lines(raw, name)), strict=True)
    try:
        if reader.fieldnames is None:
            return
        _check_header(reader.fieldnames, name)
        for row in reader:
            if None in row:
                raise InvalidInput(f"{name}:{reader.line_num}: more cells than columns in the header")
            where = f"{name}:{reader.line_num}"
            record = {k: _csv_cell(k, v, where) for k, v in row.items() if v not in (None, "") or k == "id"}
            yield reader.line_num, check_value(record, where)
    except csv.Error as exc:
        # line_num counts the lines of the rows read whole: the bad row starts on the next line.
        problem = "a quoted cell is still open at the end of the file" if "end of data" in str(exc) else exc
        raise InvalidInput(f"{name}:{reader.line_num + 1}: bad CSV: {problem}") from None


def _check_header(columns: list[str], name: str) -> None:
    if "id" not in columns:
        raise InvalidInput(f"{name}:1: CSV has no 'id' column")
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise InvalidInput(f"{name}:1: CSV column {column!r} appears twice in the header")
        seen.add(column)


_CSV_TEXT_FIELDS = {"id", "name", "role", "language", "type", "team", "created_by_id", "cid",
                    "created_at", "updated_at", "last_active"}


def _csv_cell(key: str, value: str, where: str) -> Any:
    """CSV has no types: a cell that reads as a JSON number, bool, array or object becomes one.

    A cell that is not strict JSON (`NaN`, `-Infinity`, `{oops`) stays text.
    """
    if key in _CSV_TEXT_FIELDS:
        return value
    if key in ("teams", "members") and not value.startswith("["):
        return [part.strip() for part in value.split(",") if part.strip()]
    if key == "banned":
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return value
    if value[:1] in "[{-0123456789tf":
        try:
            return STRICT_JSON.decode(value)
        except RecursionError:
            raise InvalidInput(f"{where}: column {key!r}: nested deeper than {MAX_DEPTH} levels") from None
        except ValueError:
            return value
    return value
