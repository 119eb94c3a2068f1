"""Settings resolved once per run: flags beat environment beat the config file beat defaults (SPEC §6)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaign_cli.definitions import load_yaml
from campaign_cli.errors import InvalidInput
from campaign_cli.limits import DEFAULT_MAX_TEXT_LENGTH, RenderLimits

DEFAULT_DB = "campaign.db"
DEFAULT_BATCH_SIZE = 5000


@dataclass(frozen=True)
class Number:
    """A numeric config value: its type and its range (`above`: strictly greater than `minimum`)."""

    kind: type | tuple[type, ...]
    minimum: float
    maximum: float | None = None
    above: bool = False

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable, or None."""
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return "has the wrong type"
        if self.above and not value > self.minimum:
            return f"must be greater than {self.minimum:g}"
        if value < self.minimum:
            return f"must be at least {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}"
        return None


_SECONDS = Number((int, float), 0, 86_400, above=True)
_ATTEMPTS = Number(int, 1, 100)
_CONCURRENCY = Number(int, 1, 1_000)

# The keys a config file may hold, and the type (or the Number range) of each leaf.
CONFIG_SCHEMA: dict[str, Any] = {
    "db": str,
    "webhook": {"url": str, "secret": str, "timeout": _SECONDS, "max_attempts": _ATTEMPTS, "concurrency": _CONCURRENCY},
    "push": {"url": str, "timeout": _SECONDS, "max_attempts": _ATTEMPTS, "concurrency": _CONCURRENCY},
    "sending": {"rate": Number((int, float), 0, above=True), "batch_size": Number(int, 1, 100_000),
                "lease_seconds": _SECONDS},
    "quota": {"monthly_messages": Number(int, 0)},
    "templates": {"max_text_length": Number(int, 1, 1_000_000)},
}


@dataclass(frozen=True)
class SinkSettings:
    """Where one kind of event is POSTed (webhook or push gateway), and how hard to try."""

    url: str | None = None
    secret: str = ""
    timeout: float = 5.0
    max_attempts: int = 6
    concurrency: int = 8


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about its environment."""

    db_url: str
    config_path: Path | None = None
    webhook: SinkSettings = field(default_factory=SinkSettings)
    push: SinkSettings = field(default_factory=SinkSettings)
    rate: float | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    lease_seconds: float = 30.0
    monthly_messages: int | None = None
    render_limits: RenderLimits = field(default_factory=RenderLimits)


def db_url_from(value: str) -> str:
    """Turn `--db` (a path or an SQLAlchemy URL) into an SQLAlchemy URL."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser()}"


def load_config(path: Path) -> dict[str, Any]:
    """Read and check a config file; unknown keys, wrong types and values out of range name the file and key."""
    data = load_yaml(path, "config file")
    if data is None:
        return {}
    _check_config(path, data, CONFIG_SCHEMA, "")
    return data


def _check_config(path: Path, data: Any, schema: dict[str, Any], prefix: str) -> None:
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: {prefix.rstrip('.') or 'config'} must be a mapping")
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in schema:
            raise InvalidInput(f"{path}: unknown config key {name!r}")
        expected = schema[key]
        if isinstance(expected, dict):
            _check_config(path, value, expected, f"{name}.")
        elif value is None:
            continue
        elif isinstance(expected, Number):
            problem = expected.problem(value)
            if problem:
                raise InvalidInput(f"{path}: config key {name!r} {problem}")
        elif isinstance(value, bool) or not isinstance(value, expected):
            raise InvalidInput(f"{path}: config key {name!r} has the wrong type")


def resolve(db: str | None = None, config: str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Resolve the settings from flags, environment, config file and defaults."""
    env = os.environ if env is None else env
    config_value = config or env.get("CAMPAIGN_CONFIG")
    config_path = Path(config_value) if config_value else None
    data = load_config(config_path) if config_path else {}
    db_value = db or env.get("CAMPAIGN_DB") or data.get("db") or DEFAULT_DB
    sending = data.get("sending") or {}
    return Settings(
        db_url=db_url_from(db_value),
        config_path=config_path,
        webhook=_sink(data.get("webhook")),
        push=_sink(data.get("push")),
        rate=sending.get("rate"),
        batch_size=sending.get("batch_size") or DEFAULT_BATCH_SIZE,
        lease_seconds=sending.get("lease_seconds") or 30.0,
        monthly_messages=(data.get("quota") or {}).get("monthly_messages"),
        render_limits=RenderLimits(
            max_text_length=(data.get("templates") or {}).get("max_text_length") or DEFAULT_MAX_TEXT_LENGTH),
    )


def _sink(section: dict[str, Any] | None) -> SinkSettings:
    section = {k: v for k, v in (section or {}).items() if v is not None}
    return SinkSettings(**section)
