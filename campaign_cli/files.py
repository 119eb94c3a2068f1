"""Opening the user's files: every way a file can be unreadable is exit 3 naming it."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from campaign_cli.errors import InvalidInput


def open_file(path: Path | str, what: str = "file") -> BinaryIO:
    """Open a file for reading bytes; a missing, unreadable or folder path is exit 3 naming it.

    `what` names the file in messages ("file", "config file").
    """
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise InvalidInput(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a folder, not a {what}") from None
    except PermissionError:
        raise InvalidInput(f"{path}: cannot read the {what}: permission denied") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None


def read_text(path: Path | str, what: str = "file", max_bytes: int | None = None) -> str:
    """The whole of a small UTF-8 text file; over `max_bytes` is refused before it is read."""
    with open_file(path, what) as stream:
        data = stream.read(max_bytes + 1) if max_bytes is not None else stream.read()
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidInput(f"{path}: {what} larger than {_size(max_bytes)}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InvalidInput(f"{path}:{line}: not valid UTF-8") from None


def _size(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} KB"
