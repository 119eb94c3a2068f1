"""Several senders on one campaign (PostgreSQL): claims, leases, retaken claims, exactly once among many.

The senders are real subprocesses (`python -m campaign_cli --db URL run c1`) killed with SIGKILL
at random moments and restarted; the checks read back messages, channels, stats, events and
senders through the CLI.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections import Counter

import pytest
from conftest import Cli
from pg_server import HOW_TO_GET, PgServer, find_bin_dir
from send_helpers import (
    bulk_users,
    config,
    create_campaign,
    done,
    events,
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
SENDERS = 3
KILLS = 5
LEASE = 1.0
BATCH = "40"


@pytest.fixture
def pg(cli):
    """The CLI on the PostgreSQL store only: SQLite has one writer, so one sender per campaign."""
    if cli.store != "postgres":
        pytest.skip("several senders share a campaign on PostgreSQL only")
    return cli


def seeded(cli, count: int, **campaign) -> list[str]:
    """`count` users u00000… and a draft campaign c1 to all of them with a `to` field in each message."""
    users = bulk_users(count)
    import_users(cli, users)
    cli.ok("segment", "create", "--type", "user", "--id", "receivers", "--filter", '{"id": {"$autocomplete": "u"}}')
    create_campaign(cli, "c1", segment_ids=["receivers"], create_channels=True,
                    message_template={"text": "Hi {{ receiver.name }}", "custom": {"to": "{{ receiver.id }}"}},
                    **{"channel_template": {"type": "messaging"}, **campaign})
    return [u["id"] for u in users[1:]]


def test_three_senders_killed_at_random_moments_send_each_target_exactly_once(pg):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    ids = seeded(pg, TARGETS)
    short_lease = config(pg, sending={"lease_seconds": LEASE})
    pg.ok("start", "c1", "--detach")

    senders = [spawn(pg, "run", "c1", "--batch-size", BATCH, config_path=short_lease) for _ in range(SENDERS)]
    started = list(senders)
    kills_in_flight = 0
    try:
        for _ in range(KILLS):
            before = done(pg, "c1")
            wait_until(lambda: done(pg, "c1") > before or any(s.poll() is not None for s in senders), every=0.005)
            time.sleep(rng.uniform(0.0, 0.3))
            victim = rng.randrange(SENDERS)
            if senders[victim].poll() is not None:
                break  # the campaign completed
            senders[victim].send_signal(signal.SIGKILL)
            code, _, err = finish(senders[victim])
            assert code == -signal.SIGKILL, f"seed {seed}: exit {code}: {err}"
            kills_in_flight += 0 < done(pg, "c1") < TARGETS
            senders[victim] = spawn(pg, "run", "c1", "--batch-size", BATCH, config_path=short_lease)
            started.append(senders[victim])
        outcomes = [finish(s, timeout=60) for s in senders]
    finally:
        for s in started:
            stop_process(s)

    assert [(code, err) for code, _, err in outcomes] == [(0, "")] * SENDERS, f"seed {seed}"
    assert kills_in_flight >= 3, f"seed {seed}: only {kills_in_flight} kills hit the campaign mid-way"
    sent = messages(pg, "c1")
    assert sorted(m["to"] for m in sent) == ids, f"seed {seed}"
    assert all(m["cid"] == f"messaging:!members-4.acme.6.{m['to']}" for m in sent)
    assert sql(pg, "SELECT count(*), count(DISTINCT cid) FROM channels") == [(TARGETS, TARGETS)]
    data = pg.ok("status", "c1", "--json").json()
    assert data["campaign"]["status"] == "completed"
    assert {k: data["campaign"]["stats"][k] for k in ("progress", "stats_targets", "stats_messages_sent", "stats_channels_created",
                                          "stats_users_sent", "stats_failed", "stats_skipped")} == {
        "progress": 1.0, "stats_targets": TARGETS, "stats_messages_sent": TARGETS,
        "stats_channels_created": TARGETS, "stats_users_sent": TARGETS, "stats_failed": 0, "stats_skipped": {}}
    types = [e["type"] for e in events(pg, "c1")]
    assert types[0] == "campaign.started" and types[-1] == "campaign.completed"
    assert Counter(types) == {"campaign.started": 1, "channel.created": TARGETS, "message.new": TARGETS,
                              "campaign.completed": 1}
    # Not every process registers: one killed while starting never did, and one restarted just as the
    # others completed the campaign finds nothing to send. Those that worked are all listed.
    assert 1 <= len(data["senders"]) <= len(started)
    assert sum(s["targets"] for s in data["senders"]) == TARGETS
    assert not any(s["live"] for s in data["senders"])


def test_senders_racing_for_the_same_channels_create_each_once(pg):
    """Receivers share ten channels (`id: group-<last digit>`): every sender plans to create them."""
    ids = seeded(pg, 400, channel_template={"type": "messaging", "id": "group-{{ receiver.id[-1] }}"})
    pg.ok("start", "c1", "--detach")

    senders = [spawn(pg, "run", "c1", "--batch-size", "5") for _ in range(SENDERS)]
    try:
        outcomes = [finish(s, timeout=60) for s in senders]
    finally:
        for s in senders:
            stop_process(s)

    assert [(code, err) for code, _, err in outcomes] == [(0, "")] * SENDERS
    sent = messages(pg, "c1")
    assert sorted(m["to"] for m in sent) == ids
    assert all(m["cid"] == f"messaging:group-{m['to'][-1]}" for m in sent)
    assert sql(pg, "SELECT cid, member_count FROM channels ORDER BY cid") == [
        (f"messaging:group-{d}", 2) for d in range(10)]
    stats = get(pg, "c1")["stats"]
    assert (stats["stats_messages_sent"], stats["stats_channels_created"]) == (400, 10)
    assert Counter(e["type"] for e in events(pg, "c1")) == {
        "campaign.started": 1, "channel.created": 10, "message.new": 400, "campaign.completed": 1}


def test_a_second_sender_joins_a_running_campaign_and_both_are_shown(pg):
    seeded(pg, 200)
    pg.ok("start", "c1", "--detach")
    first = spawn(pg, "run", "c1", "--rate", "50", "--batch-size", "10")
    try:
        wait_until(lambda: done(pg, "c1") >= 20)
        second = pg("run", "c1", "--batch-size", "10")
        code, _, err = finish(first)
    finally:
        stop_process(first)

    assert (second.exit_code, code, err) == (0, 0, "")
    data = pg.ok("status", "c1", "--json").json()
    assert data["campaign"]["stats"]["stats_messages_sent"] == 200
    assert [s["owner"].split(":")[1] for s in data["senders"]][0] == str(first.pid)
    assert len(data["senders"]) == 2 and all(s["batches"] > 0 for s in data["senders"])
    assert sum(s["targets"] for s in data["senders"]) == 200
    view = pg.ok("status", "c1").stdout
    assert sum(line.startswith("sender ") for line in view.splitlines()) == 2


@pytest.fixture
def own_server(tmp_path):
    """A PostgreSQL server of this test's own, which it may stop and start again."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {HOW_TO_GET}", pytrace=False)
        pytest.skip(HOW_TO_GET)
    server = PgServer(bin_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_server_restarted_mid_campaign_ends_the_sender_with_one_line_and_run_completes(own_server, tmp_path):
    url = own_server.url(own_server.database())
    cli = Cli(url, tmp_path, url, "postgres")
    ids = seeded(cli, 1000)
    short_lease = config(cli, sending={"lease_seconds": LEASE})
    cli.ok("start", "c1", "--detach")
    sender = spawn(cli, "run", "c1", "--batch-size", "10", "--rate", "1000", config_path=short_lease)
    try:
        wait_until(lambda: done(cli, "c1") >= 100)
        own_server.process.send_signal(signal.SIGINT)  # a fast shutdown, as a restart begins
        own_server.process.wait(20)
        code, _, err = finish(sender)
    finally:
        stop_process(sender)
    assert own_server._launch()

    assert code == 1
    assert re.fullmatch(rf"error: lost the connection to PostgreSQL at 127\.0\.0\.1:{own_server.port} while sending "
                        r"campaign 'c1' \(.+\); the batch in hand was not saved: `campaign run c1` resumes it\n", err), err
    assert 100 <= done(cli, "c1") < 1000
    cli.ok("--config", str(short_lease), "run", "c1")
    assert sorted(m["to"] for m in messages(cli, "c1")) == ids
    stats = get(cli, "c1")["stats"]
    assert (stats["stats_messages_sent"], stats["stats_channels_created"], stats["progress"]) == (1000, 1000, 1.0)
    assert sql(cli, "SELECT count(*) FROM channels") == [(1000,)]
