"""Settings resolved once per run: flags beat environment beat the config file beat defaults."""

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
    """A numeric config value: its type and its range (`above`: strictly greater than `minimum`),
    so that a typo cannot make the sender spin or hang."""

    kind: type | tuple[type, ...]
    minimum: float
    maximum: float | None = None
    above: bool = False

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable, or None."""
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return "has the wrong type"
        low, high = f"{self.minimum}", f"{self.maximum}" if self.maximum is not None else None
        if self.above and not value > self.minimum:
            return f"must be greater than {low}" + (f" and at most {high}" if high else "") + f", got {value}"
        if value < self.minimum or (high is not None and value > self.maximum):
            return (f"must be between {low} and {high}" if high else f"must be at least {low}") + f", got {value}"
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
    "delivery": {
        "backend": str,
        "matrix": {"homeserver": str, "access_token": str, "admin_token": str, "concurrency": Number(int, 1, 256),
                   "timeout": Number((int, float), 0.1, 600), "max_attempts": _ATTEMPTS},
    },
}
BACKENDS = ("local", "matrix")
MATRIX_TOKEN_ENV = "CAMPAIGN_MATRIX_TOKEN"


@dataclass(frozen=True)
class SinkSettings:
    """Where one kind of event is POSTed (webhook or push gateway), and how hard to try."""

    url: str | None = None
    secret: str = ""
    timeout: float = 5.0
    max_attempts: int = 6
    concurrency: int = 8


@dataclass(frozen=True)
class MatrixSettings:
    """A Matrix homeserver to deliver to, and the sender's token there."""

    homeserver: str | None = None
    access_token: str | None = None
    admin_token: str | None = None
    concurrency: int = 8
    timeout: float = 30.0
    max_attempts: int = 6


@dataclass(frozen=True)
class DeliverySettings:
    """Where messages go: `local` (the built-in chat store) or a real chat server."""

    backend: str = "local"
    matrix: MatrixSettings = field(default_factory=MatrixSettings)


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
    delivery: DeliverySettings = field(default_factory=DeliverySettings)


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
        delivery=_delivery(config_path, data.get("delivery"), env),
    )


def _delivery(path: Path | None, section: dict[str, Any] | None, env: Any) -> DeliverySettings:
    """The `delivery:` section; the Matrix token may come from the environment instead of the file."""
    section = section or {}
    backend = section.get("backend") or "local"
    if backend not in BACKENDS:
        raise InvalidInput(f"{path}: config key 'delivery.backend' must be one of {', '.join(BACKENDS)}, got {backend!r}")
    matrix = {k: v for k, v in (section.get("matrix") or {}).items() if v is not None}
    if env.get(MATRIX_TOKEN_ENV):
        matrix["access_token"] = env[MATRIX_TOKEN_ENV]
    settings = MatrixSettings(**matrix)
    if backend == "matrix":
        if not settings.homeserver:
            raise InvalidInput(f"{path}: config key 'delivery.matrix.homeserver' is required with backend matrix")
        if not settings.homeserver.startswith(("http://", "https://")):
            raise InvalidInput(f"{path}: config key 'delivery.matrix.homeserver' must be an http:// or https:// URL")
        if not settings.access_token:
            raise InvalidInput(f"{path}: config key 'delivery.matrix.access_token' (or env {MATRIX_TOKEN_ENV}) "
                               "is required with backend matrix")
    return DeliverySettings(backend=backend, matrix=settings)


def _sink(section: dict[str, Any] | None) -> SinkSettings:
    section = {k: v for k, v in (section or {}).items() if v is not None}
    return SinkSettings(**section)
