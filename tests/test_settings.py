"""Settings precedence: --db beats CAMPAIGN_DB beats the config file's `db:` beats campaign.db;
--config beats CAMPAIGN_CONFIG; a bad config file is exit 3 naming the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from campaign_cli.cli.app import app
from campaign_cli.settings import DEFAULT_BATCH_SIZE, resolve


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No CAMPAIGN_* variables from the outside, and the test's folder as the current one."""
    monkeypatch.delenv("CAMPAIGN_DB", raising=False)
    monkeypatch.delenv("CAMPAIGN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def campaign(*args: str, **env: str) -> Any:
    """Run the real CLI with exactly these arguments (no --db added) and environment variables."""
    return CliRunner().invoke(app, list(args), env=env or None, catch_exceptions=False)


def make_db(path: str, users: int) -> None:
    """A database holding `users` users, so that a count tells which database a command used."""
    Path("users.jsonl").write_text("".join(f'{{"id": "u{n}"}}\n' for n in range(users)), encoding="utf-8")
    run = campaign("--db", path, "users", "import", "users.jsonl")
    assert run.exit_code == 0, run.stderr


def count(*args: str, **env: str) -> int:
    run = campaign(*args, "users", "list", "--count", **env)
    assert run.exit_code == 0, run.stderr
    return int(run.stdout)


@pytest.fixture
def databases() -> None:
    make_db("campaign.db", 1)
    make_db("config.db", 2)
    make_db("env.db", 3)
    make_db("flag.db", 4)
    make_db("other-config.db", 5)
    Path("config.yaml").write_text("db: config.db\n", encoding="utf-8")
    Path("other.yaml").write_text("db: other-config.db\n", encoding="utf-8")


def test_default_is_campaign_db_in_the_current_folder(databases):
    assert count() == 1


def test_config_file_db_beats_the_default(databases):
    assert count("--config", "config.yaml") == 2
    assert count(CAMPAIGN_CONFIG="config.yaml") == 2


def test_environment_beats_the_config_file(databases):
    assert count("--config", "config.yaml", CAMPAIGN_DB="env.db") == 3
    assert count(CAMPAIGN_CONFIG="config.yaml", CAMPAIGN_DB="env.db") == 3


def test_db_flag_beats_everything(databases):
    assert count("--db", "flag.db", "--config", "config.yaml", CAMPAIGN_DB="env.db", CAMPAIGN_CONFIG="other.yaml") == 4


def test_config_flag_beats_config_environment(databases):
    assert count("--config", "config.yaml", CAMPAIGN_CONFIG="other.yaml") == 2
    assert count(CAMPAIGN_CONFIG="other.yaml") == 5


def test_db_accepts_an_sqlalchemy_url(databases, tmp_path):
    assert count("--db", f"sqlite:///{tmp_path / 'flag.db'}") == 4
    assert count(CAMPAIGN_DB=f"sqlite:///{tmp_path / 'env.db'}") == 3


def test_first_import_creates_the_database_where_told(tmp_path):
    make_db("fresh.db", 1)
    assert count("--db", "fresh.db") == 1
    assert (tmp_path / "fresh.db").is_file()
    assert not (tmp_path / "campaign.db").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("webhok:\n  url: http://x\n", "error: cfg.yaml: unknown config key 'webhok'"),
        ("webhook:\n  urll: http://x\n", "error: cfg.yaml: unknown config key 'webhook.urll'"),
        ("sending:\n  batch_size: many\n", "error: cfg.yaml: config key 'sending.batch_size' has the wrong type"),
        ("sending:\n  rate: true\n", "error: cfg.yaml: config key 'sending.rate' has the wrong type"),
        ("db: 5\n", "error: cfg.yaml: config key 'db' has the wrong type"),
        ("- db\n", "error: cfg.yaml: config must be a mapping"),
        ("push: http://x\n", "error: cfg.yaml: push must be a mapping"),
        ("db: [unclosed\n", "error: cfg.yaml:2: bad YAML: expected ',' or ']', but got '<stream end>'"),
    ],
)
def test_bad_config_is_exit_3_naming_file_and_key(text, message):
    Path("cfg.yaml").write_text(text, encoding="utf-8")
    for run in (campaign("--config", "cfg.yaml", "users", "list"), campaign("users", "list", CAMPAIGN_CONFIG="cfg.yaml")):
        assert run.exit_code == 3
        assert run.stderr.splitlines() == [message]
    assert not Path("campaign.db").exists()


def test_missing_config_file_is_exit_3():
    run = campaign("--config", "nope.yaml", "users", "list")
    assert (run.exit_code, run.stderr) == (3, "error: nope.yaml: config file not found\n")


def test_empty_config_file_means_defaults():
    Path("cfg.yaml").write_text("", encoding="utf-8")
    Path("users.jsonl").write_text('{"id": "u1"}\n', encoding="utf-8")
    assert campaign("--config", "cfg.yaml", "users", "import", "users.jsonl").exit_code == 0
    assert count("--config", "cfg.yaml") == 1
    assert Path("campaign.db").is_file()


def test_config_values_reach_the_settings(tmp_path):
    Path("cfg.yaml").write_text(
        "webhook: {url: 'http://127.0.0.1:9/hook', secret: s3cret, max_attempts: 2}\n"
        "push: {url: 'http://127.0.0.1:9/push', timeout: 1.5}\n"
        "sending: {rate: 50, batch_size: 500, lease_seconds: 12}\n"
        "quota: {monthly_messages: 1000}\n",
        encoding="utf-8",
    )
    settings = resolve(config="cfg.yaml", env={})
    assert settings.db_url == "sqlite:///campaign.db"
    assert (settings.webhook.url, settings.webhook.secret, settings.webhook.max_attempts) == ("http://127.0.0.1:9/hook", "s3cret", 2)
    assert (settings.push.url, settings.push.timeout, settings.push.secret) == ("http://127.0.0.1:9/push", 1.5, "")
    assert (settings.rate, settings.batch_size, settings.lease_seconds, settings.monthly_messages) == (50, 500, 12, 1000)
    defaults = resolve(env={})
    assert (defaults.webhook.url, defaults.rate, defaults.batch_size, defaults.monthly_messages) == (
        None, None, DEFAULT_BATCH_SIZE, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("delivery: {backend: slack}\n",
         "error: cfg.yaml: config key 'delivery.backend' must be one of local, matrix, got 'slack'"),
        ("delivery: {backend: matrix, matrix: {access_token: t}}\n",
         "error: cfg.yaml: config key 'delivery.matrix.homeserver' is required with backend matrix"),
        ("delivery: {backend: matrix, matrix: {homeserver: '127.0.0.1:8008', access_token: t}}\n",
         "error: cfg.yaml: config key 'delivery.matrix.homeserver' must be an http:// or https:// URL"),
        ("delivery: {backend: matrix, matrix: {homeserver: 'http://127.0.0.1:8008'}}\n",
         "error: cfg.yaml: config key 'delivery.matrix.access_token' (or env CAMPAIGN_MATRIX_TOKEN) "
         "is required with backend matrix"),
        ("delivery: {matrix: {concurrency: 0}}\n",
         "error: cfg.yaml: config key 'delivery.matrix.concurrency' must be between 1 and 256, got 0"),
        ("delivery: {matrix: {tokn: x}}\n", "error: cfg.yaml: unknown config key 'delivery.matrix.tokn'"),
    ],
)
def test_bad_delivery_config_is_exit_3(text, message):
    Path("cfg.yaml").write_text(text, encoding="utf-8")
    run = campaign("--config", "cfg.yaml", "users", "list")
    assert (run.exit_code, run.stderr.splitlines()) == (3, [message])
    assert not Path("campaign.db").exists()


def test_delivery_settings_and_the_token_from_the_environment():
    Path("cfg.yaml").write_text("delivery:\n  backend: matrix\n  matrix: {homeserver: 'http://127.0.0.1:8008', "
                                "access_token: from-file, concurrency: 3}\n", encoding="utf-8")
    settings = resolve(config="cfg.yaml", env={"CAMPAIGN_MATRIX_TOKEN": "from-env"})
    matrix = settings.delivery.matrix
    assert (settings.delivery.backend, matrix.homeserver, matrix.access_token, matrix.concurrency) == (
        "matrix", "http://127.0.0.1:8008", "from-env", 3)
    assert resolve(env={}).delivery.backend == "local"
