"""Shell completion through the protocol the installed scripts use: command names, flags, and campaign and
segment ids from the database (`campaign start <TAB>` offers the campaigns that can start)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from send_helpers import create_campaign, import_users, segment

BIN = str(Path(sys.executable).parent)


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CAMPAIGN_DB", "CAMPAIGN_CONFIG")}
    return {**env, "HOME": str(home), "PATH": BIN + os.pathsep + env.get("PATH", ""), **extra}


def for_shell(home: Path) -> dict[str, str]:
    """The environment in which --show-completion / --install-completion take the shell as a value
    (Typer's switch for tests), rather than detecting the shell the command runs in."""
    return env_for(home, _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")


def complete(cli, line: str, db: Path | None = None) -> list[str]:
    """What bash completion offers for `line` (the word under the cursor is the last, possibly empty)."""
    words = line.split(" ")
    env = env_for(cli.cwd, _CAMPAIGN_COMPLETE="complete_bash", COMP_WORDS=line, COMP_CWORD=str(len(words) - 1),
                  CAMPAIGN_DB=str(db or cli.db))
    done = subprocess.run([sys.executable, "-m", "campaign_cli"], env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    return done.stdout.split()


@pytest.fixture
def world(cli):
    import_users(cli, [{"id": "acme", "name": "Acme"}, {"id": "alice", "name": "Alice"}])
    segment(cli, "everyone", all_users=True)
    segment(cli, "early", targets=["alice"])
    for campaign_id in ("draft-1", "draft-2", "sent", "held"):
        create_campaign(cli, campaign_id, user_ids=["alice"], create_channels=True, channel_template={"type": "messaging"})
    cli.ok("start", "sent")
    cli.ok("start", "held", "--detach")
    cli.ok("stop", "held")
    return cli


def test_command_names_and_flags(world):
    assert complete(world, "campaign st") == ["status", "start", "stop"]
    assert complete(world, "campaign segment target") == ["targets", "target-exists"]
    flags = complete(world, "campaign start --")
    assert {"--at", "--stop-at", "--detach", "--rate", "--batch-size", "--json", "--help"} <= set(flags)


def test_campaign_ids_that_fit_the_command(world):
    assert complete(world, "campaign start ") == ["draft-1", "draft-2"]
    assert complete(world, "campaign resume ") == ["held"]
    assert complete(world, "campaign status ") == ["draft-1", "draft-2", "held", "sent"]
    assert complete(world, "campaign report d") == ["draft-1", "draft-2"]
    assert complete(world, "campaign start s") == []


def test_segment_ids(world):
    assert complete(world, "campaign segment get ") == ["early", "everyone"]
    assert complete(world, "campaign segment targets ev") == ["everyone"]
    assert complete(world, "campaign create --segment e") == ["early", "everyone"]


def test_no_database_offers_nothing_and_creates_nothing(cli):
    missing = cli.cwd / "missing.db"

    assert complete(cli, "campaign start ", db=missing) == []
    assert not missing.exists()


@pytest.mark.parametrize("shell, marker", [("bash", "complete_bash"), ("zsh", "complete_zsh"), ("fish", "complete_fish")])
def test_show_completion_prints_the_script_of_each_shell(tmp_path, shell, marker):
    done = subprocess.run([sys.executable, "-m", "campaign_cli", "--show-completion", shell], env=for_shell(tmp_path),
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert f"_CAMPAIGN_COMPLETE={marker}" in done.stdout


@pytest.mark.parametrize("shell, script, rc", [
    ("bash", ".bash_completions/campaign.sh", ".bashrc"),
    ("zsh", ".zfunc/_campaign", ".zshrc"),
    ("fish", ".config/fish/completions/campaign.fish", None),
])
def test_install_completion_writes_the_script_for_each_shell(tmp_path, shell, script, rc):
    done = subprocess.run([sys.executable, "-m", "campaign_cli", "--install-completion", shell], env=for_shell(tmp_path),
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert "_CAMPAIGN_COMPLETE" in (tmp_path / script).read_text()
    if rc is not None:
        assert script.split("/")[0] in (tmp_path / rc).read_text()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_bash_script_completes_in_bash(world):
    script = subprocess.run([sys.executable, "-m", "campaign_cli", "--show-completion", "bash"], env=for_shell(world.cwd),
                            capture_output=True, text=True, timeout=60, check=True).stdout
    (world.cwd / "completion.sh").write_text(script)
    probe = ('source completion.sh; COMP_WORDS=(campaign start ""); COMP_CWORD=2; _campaign_completion campaign; '
             'printf "%s\\n" "${COMPREPLY[@]}"')

    # `campaign` is the console script of this environment, on PATH
    done = subprocess.run(["bash", "--norc", "-c", probe], cwd=world.cwd, capture_output=True, text=True, timeout=60,
                          env=env_for(world.cwd, CAMPAIGN_DB=str(world.db)))

    assert (done.returncode, done.stdout) == (0, "draft-1\ndraft-2\n"), done.stderr
