"""Rendering happens outside the write transaction: a slow template never holds SQLite's write lock.

A sender renders templates that take tens of milliseconds each; meanwhile the test takes the
database's write lock again and again with a short busy timeout, as any other command would.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from send_helpers import create_campaign, done, finish, import_users, spawn, stop_process, wait_until

SLOW_TEXT = ("{% set n = namespace(total=0) %}{% for i in range(3000) %}{% set n.total = n.total + i %}{% endfor %}"
             "Hi {{ receiver.name }} {{ n.total }}")


def take_write_lock(db, timeout: float) -> bool:
    """Whether a write transaction could begin within `timeout` seconds."""
    conn = sqlite3.connect(db, timeout=timeout, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


@pytest.mark.sqlite_only  # about SQLite's database-wide write lock
def test_other_writers_are_not_kept_waiting_while_a_sender_renders(cli):
    users = [{"id": f"u{i:03d}", "name": f"User {i}"} for i in range(60)]
    import_users(cli, [{"id": "acme", "name": "Acme"}, *users])
    create_campaign(cli, "slow", user_ids=[u["id"] for u in users], create_channels=True, channel_template={"type": "messaging"},
                    message_template={"text": SLOW_TEXT})
    sender = spawn(cli, "start", "slow", "--batch-size", "20")
    try:
        wait_until(lambda: done(cli, "slow") >= 20 or sender.poll() is not None)
        probes = []
        while sender.poll() is None:
            probes.append(take_write_lock(cli.db, timeout=0.5))
            time.sleep(0.05)
        code, _, err = finish(sender)
    finally:
        stop_process(sender)

    assert (code, err) == (0, "")
    assert len(probes) >= 5, f"the sender finished too fast to probe ({len(probes)} probes)"
    assert probes.count(False) == 0
    assert done(cli, "slow") == 60
