"""`campaign status`: rate, ETA, elapsed time and senders; `--watch` follows a campaign to its end;
the progress bar counts this run only; views fit 80 columns."""

from __future__ import annotations

import io
import os
import pty
import re
import signal
import subprocess
import sys

from rich.console import Console
from rich.progress import Progress

from campaign_cli.cli.output import RunProgress, count_progress_columns, table
from campaign_cli.sending.loop import Progress as BatchProgress
from send_helpers import (bulk_users, config, create_campaign, done, finish, import_users, segment, spawn, stop_process,
                          wait_until)


def seeded(cli, users: int = 60) -> None:
    import_users(cli, bulk_users(users))
    segment(cli, "all", all_users=True)
    create_campaign(cli, "c1", segment_ids=["all"], create_channels=True, channel_template={"type": "messaging"})


def test_status_json_of_a_completed_campaign_has_elapsed_time_and_no_rate(cli):
    seeded(cli, 20)
    cli.ok("start", "c1")

    status = cli.ok("status", "c1", "--json").json()

    assert status["campaign"]["status"] == "completed"
    assert (status["rate"], status["eta_seconds"]) == (None, None)
    assert [(s["batches"], s["targets"], s["live"]) for s in status["senders"]] == [(1, 21, False)]
    assert isinstance(status["elapsed_seconds"], float) and 0 <= status["elapsed_seconds"] < 30
    assert status["campaign"]["stats"]["stats_messages_sent"] == 20


def test_status_json_of_a_draft_has_no_figures(cli):
    seeded(cli, 3)

    status = cli.ok("status", "c1", "--json").json()

    assert (status["rate"], status["eta_seconds"], status["elapsed_seconds"], status["senders"]) == (None, None, None, [])


def test_watch_on_a_draft_prints_the_view_once_and_exits_0(cli):
    seeded(cli, 3)

    run = cli.ok("status", "c1", "--watch")

    assert run.stdout.count("campaign  ") == 1
    assert re.search(r"^status\s+draft\s*$", run.stdout, re.M)
    assert run.stderr == ""


def test_watch_follows_a_running_campaign_until_it_completes(cli):
    seeded(cli, 60)
    cli.ok("start", "c1", "--detach")
    watcher = spawn(cli, "status", "c1", "--watch", "--interval", "0.1", "--json")
    try:
        cli.ok("run", "c1", "--rate", "200", "--batch-size", "10")
        code, out, err = finish(watcher)
    finally:
        stop_process(watcher)

    assert (code, err) == (0, "")
    final = __import__("json").loads(out)
    assert final["campaign"]["status"] == "completed"
    assert final["campaign"]["stats"]["stats_messages_sent"] == 60
    assert [(s["batches"], s["targets"], s["live"], s["lease_expires_at"]) for s in final["senders"]] == [
        (7, 61, False, None)]  # the all-users segment holds the sender too, skipped


def test_watch_of_a_campaign_that_gets_stopped_exits_6(cli):
    seeded(cli, 60)
    cli.ok("start", "c1", "--detach")
    sender = spawn(cli, "run", "c1", "--rate", "20", "--batch-size", "5")
    watcher = spawn(cli, "status", "c1", "--watch", "--interval", "0.1")
    try:
        wait_until(lambda: done(cli, "c1") >= 10)
        live = cli.ok("status", "c1", "--json").json()
        cli.ok("stop", "c1")
        code, out, err = finish(watcher)
        finish(sender)
    finally:
        stop_process(watcher)
        stop_process(sender)

    assert live["campaign"]["status"] == "in_progress"
    assert [s["live"] for s in live["senders"]] == [True]
    assert re.fullmatch(rf"[^:\s]+:{sender.pid}:[0-9a-f]{{8}}", live["senders"][0]["owner"])
    assert live["rate"] > 0 and live["eta_seconds"] > 0 and live["elapsed_seconds"] >= 0
    assert (code, err) == (6, "error: campaign 'c1' ended stopped\n")
    assert re.search(r"^status\s+stopped\s*$", out, re.M)


def test_status_says_when_the_sender_died(cli):
    seeded(cli, 60)
    short_lease = config(cli, sending={"lease_seconds": 0.5})
    cli.ok("start", "c1", "--detach")
    sender = spawn(cli, "run", "c1", "--rate", "20", "--batch-size", "5", config_path=short_lease)
    try:
        wait_until(lambda: done(cli, "c1") >= 10)
        sender.send_signal(signal.SIGKILL)
        sender.wait(10)
    finally:
        stop_process(sender)
    wait_until(lambda: not cli.ok("status", "c1", "--json").json()["senders"][0]["live"], timeout=5)

    status = cli.ok("status", "c1", "--json").json()
    view = cli.ok("status", "c1").stdout

    assert status["campaign"]["status"] == "in_progress"
    assert [(s["owner"].split(":")[1], s["live"]) for s in status["senders"]] == [(str(sender.pid), False)]
    assert "lease expired" in view
    assert "note its sender died (lease expired): `campaign resume c1` continues" in " ".join(view.split()), view
    cli.ok("--config", str(short_lease), "run", "c1")
    assert cli.ok("status", "c1", "--json").json()["campaign"]["stats"]["stats_messages_sent"] == 60


def test_status_of_an_unknown_campaign_exits_4(cli):
    seeded(cli, 1)

    for args in (("status", "nope"), ("status", "nope", "--watch")):
        run = cli(*args)
        assert (run.exit_code, run.error_line()) == (4, "error: campaign 'nope' not found")


# ---------------------------------------------------------------- the progress bar


def test_progress_rate_counts_this_run_only():
    runs = RunProgress(None)
    runs.begin("c1")  # the campaign holds 9,000 messages from an earlier run, and another sender adds 300
    runs.update(BatchProgress("c1", done=9_800, total=10_000, messages=9_800, skipped=0, failed=0, sent_here=500))
    run = runs.runs["c1"]
    run.began -= 2.0  # this run has been sending for two seconds
    runs.end("c1")

    assert run.messages == 500
    assert 240 <= runs.rate(run) <= 250
    assert re.fullmatch(r"c1: 500 messages in 2\.0s \(2(4\d|50) msg/s on average\)", runs.summaries()[0])


def on_a_terminal(cli, *args: str) -> tuple[int, str]:
    """Run `campaign ARGS…` with stderr on a pseudo-terminal 80 columns wide; returns the exit code and what it showed."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("CAMPAIGN_DB", "CAMPAIGN_CONFIG")}
    process = subprocess.Popen([sys.executable, "-m", "campaign_cli", "--db", str(cli.db), *args], cwd=cli.cwd,
                               env={**env, "COLUMNS": "80", "TERM": "xterm"}, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is gone
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return process.wait(30), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode()).replace("\r", "\n")


def test_a_resumed_run_shows_its_own_count_and_rate(cli):
    seeded(cli, 40)
    cli.ok("start", "c1", "--detach")
    sender = spawn(cli, "run", "c1", "--rate", "40", "--batch-size", "5")
    try:
        wait_until(lambda: done(cli, "c1") >= 15)
        cli.ok("stop", "c1")
        finish(sender)
    finally:
        stop_process(sender)
    before = cli.ok("status", "c1", "--json").json()["campaign"]["stats"]["stats_messages_sent"]

    code, shown = on_a_terminal(cli, "resume", "c1")

    assert 0 < before < 40 and code == 0
    assert "sending c1" in shown
    assert "41/41" in shown
    assert re.search(rf"^c1: {40 - before} messages in \d+\.\ds \([\d,]+ msg/s on average\)$", shown, re.M), shown
    assert max(len(line) for line in shown.splitlines()) <= 80


def test_progress_bar_fits_80_columns_without_cutting_the_total():
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    with Progress(*count_progress_columns(), console=console, auto_refresh=False) as bar:
        runs = RunProgress(bar)
        runs.begin("a-campaign-with-a-rather-long-identifier-2026-12")
        runs.update(BatchProgress("a-campaign-with-a-rather-long-identifier-2026-12", done=999_999, total=1_000_000,
                                  messages=990_000, skipped=8_888, failed=1_111))
        bar.refresh()
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    lines = [line for line in shown.replace("\r", "\n").split("\n") if line.strip()]

    assert "sending a-campaign-with-a-rather-long-identifier-2026-12" in lines
    assert any("999999/1000000" in line and "8,888 skip" in line and "1,111 fail" in line for line in lines), lines
    assert max(len(line) for line in lines) <= 80


def test_tables_wrap_ids_at_80_columns_instead_of_cutting_them(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("campaign_cli.cli.output.stdout", Console(file=out, width=80, color_system=None))
    message_id = "msg-0123456789abcdef0123456789abcdef"
    cid = "messaging:!members-0123456789abcdef0123456789"

    table(["id", "cid", "user_id", "text", "created_at"],
          [[message_id, cid, "user-00000001", "Hello there, how are you today?", "2026-12-01 04:10:29 UTC"]])

    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in out.getvalue()
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    assert "".join(row[0] for row in cells) == message_id
    assert "".join(row[1] for row in cells) == cid


def test_ctrl_c_ends_a_watch_with_130(cli):
    seeded(cli, 3)
    cli.ok("start", "c1", "--detach")
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("CAMPAIGN_DB", "CAMPAIGN_CONFIG")}
    watcher = subprocess.Popen([sys.executable, "-m", "campaign_cli", "--db", str(cli.db), "status", "c1", "--watch",
                                "--interval", "0.1"], env={**env, "TERM": "xterm"}, stdout=follower,
                               stderr=subprocess.PIPE, text=True)
    os.close(follower)
    try:
        shown = b""
        while b"in_progress" not in shown:  # the live view is on the screen: the watcher is polling
            shown += os.read(leader, 65536)
        watcher.send_signal(signal.SIGINT)
        code, err = watcher.wait(30), watcher.stderr.read()
    finally:
        stop_process(watcher)
        os.close(leader)

    assert (code, err) == (130, "error: interrupted\n")


def test_status_view_fits_80_columns_and_keeps_the_whole_id_and_total(cli, monkeypatch):
    long_id = "a-rather-long-campaign-identifier-for-spring-2026-everyone-in-france-and-belgium"
    import_users(cli, bulk_users(3))
    create_campaign(cli, long_id, user_ids=["u00000", "u00001"], create_channels=True,
                    channel_template={"type": "messaging"})
    cli.ok("start", long_id)
    out = io.StringIO()
    monkeypatch.setattr("campaign_cli.cli.campaigns.stdout", Console(file=out, width=80, color_system=None))

    cli.ok("status", long_id)

    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "".join(line[15:].strip() for line in lines[:2]) == long_id
    assert lines[2].startswith("status         completed")
    assert re.fullmatch(r"progress\s+━+\s+100% \(2/2\)\s*", lines[3])
