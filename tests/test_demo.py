"""The README's first command runs examples/demo/run.sh: it must work end to end."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo" / "run.sh"


@pytest.mark.skipif(shutil.which("campaign") is None, reason="the campaign command is not installed")
def test_demo_sends_a_campaign_once_and_a_rerun_sends_nothing(tmp_path, db_url):
    env = {**os.environ, "DEMO_USERS": "300", "CAMPAIGN_DB": db_url}
    run = subprocess.run(["bash", str(DEMO)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "campaign demo-release already completed; nothing to send" in run.stderr

    shown = subprocess.run([sys.executable, "-m", "campaign_cli", "--db", db_url, "get", "demo-release"],
                           capture_output=True, text=True, check=True)
    stats = json.loads(shown.stdout)["campaign"]["stats"]
    # 5 sample users + 300 generated ones; the sender (acme) is not messaged in a channel with itself.
    assert (stats["stats_targets"], stats["stats_messages_sent"], stats["stats_channels_created"]) == (305, 304, 304)
    assert stats["stats_skipped"] == {"receiver_is_sender": 1}
    assert json.loads(shown.stdout)["campaign"]["status"] == "completed"
