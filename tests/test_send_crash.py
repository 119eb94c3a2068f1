"""Exactly once: a sender killed at random moments, a second sender on a leased campaign, Ctrl-C.

The senders run as real subprocesses (`python -m campaign_cli --db DB …`) against one SQLite file;
the test kills them with SIGKILL or interrupts them with SIGINT and then checks, through the CLI,
that every target got exactly one message.
"""

from __future__ import annotations

import random
import re
import signal
import time
from collections import Counter
from datetime import datetime, timezone

import pytest
from send_helpers import (
    bulk_users,
    config,
    create_campaign,
    done,
    finish,
    get,
    import_users,
    messages,
    spawn,
    sql,
    stop_process,
    wait_until,
)

TARGETS = 3000
KILLS = 5
LEASE = 1.0
INTERRUPTED = "error: interrupted: the batch in hand was saved; 'campaign resume c1' continues\n"


def seeded_campaign(cli, count: int) -> list[str]:
    """`count` users u00000… and a draft campaign c1 to all of them (a filter segment), one created channel each."""
    users = bulk_users(count)
    import_users(cli, users)
    cli.ok("segment", "create", "--type", "user", "--id", "receivers", "--filter", '{"id": {"$autocomplete": "u"}}')
    create_campaign(cli, "c1", segment_ids=["receivers"], create_channels=True,
                    channel_template={"type": "messaging", "id": "dm-{{ receiver.id }}"},
                    message_template={"text": "Hi {{ receiver.name }}", "custom": {"to": "{{ receiver.id }}"}})
    return [u["id"] for u in users[1:]]


def wait_for_lease_expiry(cli) -> None:
    """Sleep until the lease a killed sender left on c1 has expired (it renewed it for LEASE seconds per batch)."""
    (expires,), = sql(cli, "SELECT lease_expires_at FROM campaigns WHERE id = 'c1'")
    if expires is not None:  # text on SQLite, a datetime on PostgreSQL; naive UTC on both
        until = (expires if isinstance(expires, datetime) else datetime.fromisoformat(expires)).replace(tzinfo=timezone.utc)
        time.sleep(max((until - datetime.now(timezone.utc)).total_seconds(), 0.0) + 0.05)


def assert_exactly_once(cli, ids: list[str]) -> None:
    """Every target has exactly one message, in its own channel, and the stats agree with the messages."""
    sent = messages(cli, "c1")
    per_receiver = Counter(m["to"] for m in sent)
    assert sorted(per_receiver) == ids
    assert [r for r, n in per_receiver.items() if n != 1] == []
    assert all(m["cid"] == f"messaging:dm-{m['to']}" for m in sent)
    data = get(cli, "c1")
    assert data["status"] == "completed"
    stats = data["stats"]
    assert (stats["stats_targets"], stats["stats_messages_sent"], stats["stats_channels_created"],
            stats["stats_users_sent"], stats["progress"]) == (len(ids), len(sent), len(ids), len(ids), 1.0)
    counts = dict(sql(cli, "SELECT type, count(*) FROM events WHERE campaign_id = 'c1' GROUP BY type"))
    assert counts == {"campaign.started": 1, "channel.created": len(ids), "message.new": len(ids),
                      "campaign.completed": 1}
    assert sql(cli, "SELECT count(*) FROM channels") == [(len(ids),)]


def test_a_sender_killed_at_random_moments_loses_and_duplicates_nothing(cli):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    ids = seeded_campaign(cli, TARGETS)
    short_lease = config(cli, sending={"lease_seconds": LEASE})
    cli.ok("start", "c1", "--detach")

    kills_in_flight = 0
    for _ in range(KILLS):
        before = done(cli, "c1")
        if before == TARGETS:
            break
        # A watching sender starts while the last one's lease runs out, and takes the campaign over when it has.
        sender = spawn(cli, "run", "--watch", "--interval", "0.05", "--batch-size", "50", config_path=short_lease)
        try:
            wait_until(lambda: done(cli, "c1") > before or sender.poll() is not None, every=0.005)
            time.sleep(rng.uniform(0.0, 0.08))
            sender.send_signal(signal.SIGKILL)
            code, _, err = finish(sender)
        finally:
            stop_process(sender)
        assert code == -signal.SIGKILL, f"seed {seed}: exit {code}: {err}"
        kills_in_flight += 0 < done(cli, "c1") < TARGETS
    wait_for_lease_expiry(cli)

    run = cli("--config", str(short_lease), "run", "c1")

    assert run.exit_code == 0, f"seed {seed}: {run.stderr}"
    assert kills_in_flight >= 3, f"seed {seed}: only {kills_in_flight} kills hit a sender mid-campaign"
    assert_exactly_once(cli, ids)


@pytest.mark.sqlite_only  # on PostgreSQL several senders share a campaign (test_send_many.py)
def test_a_second_sender_does_not_send_a_campaign_with_a_live_lease(cli):
    ids = seeded_campaign(cli, 100)
    cli.ok("start", "c1", "--detach")
    first = spawn(cli, "run", "c1", "--rate", "20")
    try:
        wait_until(lambda: done(cli, "c1") >= 20)

        for command in ("run", "resume"):
            second = cli(command, "c1")

            assert second.exit_code == 5
            sqlite = "; SQLite has one writer, so one sender per campaign; to send with several, use PostgreSQL " \
                     r"\(--db postgresql\+psycopg://…\)" if command == "run" else ""
            assert re.fullmatch(rf"error: campaign 'c1' is being sent by [^:\s]+:{first.pid} \(its lease runs "
                                rf"\d+ s more\); 'campaign stop c1' stops it{sqlite}\n", second.stderr), second.stderr
        assert 0 < done(cli, "c1") < 100
        first.send_signal(signal.SIGINT)
        code, _, err = finish(first)
    finally:
        stop_process(first)

    assert (code, err) == (130, INTERRUPTED)
    cli.ok("run", "c1")
    assert_exactly_once(cli, ids)


def test_ctrl_c_saves_the_batch_in_hand_and_run_finishes_without_duplicates(cli):
    ids = seeded_campaign(cli, 100)
    sender = spawn(cli, "start", "c1", "--rate", "20")
    try:
        wait_until(lambda: done(cli, "c1") >= 20)
        sender.send_signal(signal.SIGINT)
        code, out, err = finish(sender)
    finally:
        stop_process(sender)

    assert (code, err) == (130, INTERRUPTED)
    assert "in_progress" in out
    data = get(cli, "c1")
    stats = data["stats"]
    assert data["status"] == "in_progress"
    assert 0 < stats["stats_messages_sent"] < 100 and stats["stats_messages_sent"] % 20 == 0
    assert stats["progress"] == stats["stats_messages_sent"] / 100
    assert len(messages(cli, "c1")) == stats["stats_messages_sent"]

    resumed = cli.ok("resume", "c1")  # no lease to wait for: the interrupted sender gave it back

    assert resumed.stderr == ""
    assert_exactly_once(cli, ids)


def test_resume_continues_a_campaign_whose_sender_was_killed_once_its_lease_has_expired(cli):
    ids = seeded_campaign(cli, 100)
    short_lease = config(cli, sending={"lease_seconds": LEASE})
    sender = spawn(cli, "--config", str(short_lease), "start", "c1", "--rate", "20")
    try:
        wait_until(lambda: done(cli, "c1") >= 20)
        sender.kill()
        sender.wait()
    finally:
        stop_process(sender)
    assert get(cli, "c1")["status"] == "in_progress"
    wait_for_lease_expiry(cli)

    cli.ok("--config", str(short_lease), "resume", "c1")

    assert_exactly_once(cli, ids)
