"""The README runs as written: the command blocks of "Try it" and "A session" are read from README.md
itself and run, in a fresh folder holding a copy of examples/, so the README and this test cannot drift."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
# `pip install .` is what put the `campaign` command of this checkout on the PATH this test runs with.
INSTALLED = re.compile(r"^pip install \.(\s+#.*)?$")


def command_blocks(section: str) -> list[str]:
    """The untagged ``` blocks of a `## section` of README.md, in order."""
    start = README.index(f"\n## {section}\n")
    end = README.find("\n## ", start + 1)
    return re.findall(r"^```\n(.*?)^```$", README[start:end if end > 0 else None], re.S | re.M)


def run_blocks(blocks: list[str], folder: Path) -> str:
    """Run each block with bash -e; returns the stderr of the last one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for block in blocks:
        script = "\n".join(line for line in block.splitlines() if not INSTALLED.match(line))
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=folder, env=env, capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, f"README block failed (exit {run.returncode}):\n{block}\n{run.stderr}"
    return run.stderr


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def test_the_sections_hold_the_blocks_this_test_runs():
    assert len(command_blocks("Try it")) == 1
    assert len(command_blocks("A session")) == 3
    assert any(INSTALLED.match(line) for line in command_blocks("Try it")[0].splitlines())


def test_try_it_runs_as_written_and_its_rerun_sends_nothing(folder):
    stderr = run_blocks(command_blocks("Try it"), folder)

    assert stderr.endswith("campaign demo-release already completed; nothing to send\n")
    with sqlite3.connect(folder / "demo.db") as db:
        row, = db.execute("SELECT status, stats_targets, stats_messages_sent, stats_channels_created, stats_skipped "
                          "FROM campaigns WHERE id = 'demo-release'")
    # 5 sample users and 20,000 generated ones; the sender (acme) is not messaged in a channel with itself.
    assert row == ("completed", 20_005, 20_004, 20_004, '{"receiver_is_sender":1}')


def test_a_session_runs_as_written(folder):
    run_blocks(command_blocks("A session"), folder)

    with sqlite3.connect(folder / "campaign.db") as db:
        campaigns = dict(db.execute("SELECT id, status FROM campaigns"))
        welcome = db.execute("SELECT cid FROM messages WHERE campaign_id = 'welcome-pilot' ORDER BY pk").fetchall()
        pending = db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
    assert campaigns == {"release-2-0": "completed", "meetup-reminder-day-before": "scheduled",
                         "meetup-reminder-hour-before": "draft", "welcome-pilot": "completed",
                         "maintenance-window": "completed"}
    assert [cid for cid, in welcome] == ["messaging:!members-4.acme.5.alice", "messaging:!members-4.acme.3.bob",
                                         "messaging:!members-4.acme.5.carol"]
    assert pending > 0  # nothing answers at the example config's endpoints
