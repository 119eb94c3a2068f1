"""Times: RFC 3339 with an offset in, aware UTC inside, UTC 'Z' in JSON, local zone on a terminal."""

from __future__ import annotations

from datetime import datetime, timezone

from campaign_cli.errors import InvalidInput


def now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(timezone.utc)


def parse_time(value: str, what: str) -> datetime:
    """Parse an RFC 3339 time; a time without an offset is an error naming `what`."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what}: expected an RFC 3339 time string, got {value!r}")
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{what}: not an RFC 3339 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{what}: time {value!r} has no offset (add Z or +HH:MM)")
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        raise InvalidInput(f"{what}: time {value!r} is out of range (years 0001 to 9999 in UTC)") from None


def to_json(value: datetime | None) -> str | None:
    """A time as RFC 3339 in UTC with a Z, for JSON output."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def to_local(value: datetime | None) -> str:
    """A time in the local zone, for a terminal."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
