"""Benchmark the sender loop end to end (run by hand; prints its figures).

    python bench/bench_send.py --users 1000000

1. imports N users (through the CLI) and creates an all-users segment;
2. times `campaign start` of a campaign with create_channels and 1-to-1 channels (a subprocess,
   with its peak RSS);
3. times `campaign start` of a campaign to a channel segment of the N channels step 2 created;
4. prints, for comparison, the raw SQLite insert rate of the same rows (channels, members,
   messages, events) written with plain sqlite3 executemany on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "campaign_cli"]
# A campaign to every user, creating a 1-to-1 channel for each.
USERS_CAMPAIGN = """
id: to-users
sender_id: sender
segment_ids: [everyone]
create_channels: true
channel_template: {type: messaging}
message_template: {text: "Hello {{ receiver.name }}, version 2 is out!"}
"""


def run(db: Path, *args: str) -> tuple[float, float]:
    """Run the CLI; returns (seconds, peak RSS of the child in MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run([*CLI, "--db", str(db), *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"campaign {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024


def peak_rss_of(db: Path, *args: str) -> tuple[float, float]:
    """Like run(), but measures this child alone with /usr/bin/time-like wait4 accounting."""
    start = time.perf_counter()
    proc = subprocess.Popen([*CLI, "--db", str(db), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"campaign {' '.join(args)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_maxrss / 1024


def write_users(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"user-{i:08d}", "name": f"User {i}", "country": "US" if i % 3 else "DE"}) + "\n")


def raw_insert_rate(n: int, folder: Path) -> float:
    """Rows per second for plain sqlite3 executemany of the same rows a campaign writes per target."""
    db = sqlite3.connect(folder / "raw.db", isolation_level=None)
    db.executescript("""
        PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
        CREATE TABLE channels (pk INTEGER PRIMARY KEY, cid TEXT UNIQUE, type TEXT, id TEXT, created_by_id TEXT,
            member_count INT, created_at TEXT, updated_at TEXT, custom TEXT);
        CREATE TABLE members (channel_pk INT, user_id TEXT, role TEXT, created_at TEXT, PRIMARY KEY (channel_pk, user_id))
            WITHOUT ROWID;
        CREATE INDEX ix_members_user ON members (user_id);
        CREATE TABLE messages (pk INTEGER PRIMARY KEY, id TEXT UNIQUE, cid TEXT, channel_pk INT, user_id TEXT,
            text TEXT, custom TEXT, campaign_id TEXT, created_at TEXT);
        CREATE TABLE events (pk INTEGER PRIMARY KEY, type TEXT, campaign_id TEXT, cid TEXT, message_id TEXT,
            created_at TEXT, payload TEXT);
    """)
    start = time.perf_counter()
    batch = 5000
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        db.execute("BEGIN")
        db.executemany("INSERT INTO channels VALUES (?,?,?,?,?,?,?,?,?)",
                       [(i + 1, f"messaging:!members-{i:040x}", "messaging", f"!members-{i:040x}", "sender", 2,
                         "2026-01-01", "2026-01-01", "{}") for i in range(lo, hi)])
        db.executemany("INSERT INTO members VALUES (?,?,?,?)",
                       [(i + 1, u, "channel_member", "2026-01-01") for i in range(lo, hi) for u in (f"user-{i:08d}", "sender")])
        db.executemany("INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?)",
                       [(i + 1, f"c-{i}", f"messaging:!members-{i:040x}", i + 1, "sender", f"Hello User {i}",
                         '{"campaign_id":"c"}', "c", "2026-01-01") for i in range(lo, hi)])
        db.executemany("INSERT INTO events (type, campaign_id, cid, message_id, created_at, payload) VALUES (?,?,?,?,?,?)",
                       [(t, "c", f"messaging:!members-{i:040x}", f"c-{i}", "2026-01-01", "{}")
                        for i in range(lo, hi) for t in ("channel.created", "message.new")])
        db.execute("COMMIT")
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--keep", help="folder to keep the database in")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench-send-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "campaign.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    n = args.users
    users = folder / "users.jsonl"
    write_users(users, n)
    t, _ = run(db, "users", "import", str(users))
    print(f"imported {n:,} users in {t:.1f} s")
    (folder / "sender.jsonl").write_text(json.dumps({"id": "sender", "name": "The Team"}) + "\n")
    run(db, "users", "import", str(folder / "sender.jsonl"))
    (folder / "defs.yaml").write_text("""
segments:
  - {id: everyone, type: user, name: Everyone, all_users: true}
  - {id: dms, type: channel, name: Direct channels, filter: {type: messaging}}
""")
    run(db, "segment", "create", "-f", str(folder / "defs.yaml"))
    extra = ["--batch-size", str(args.batch_size)] if args.batch_size else []
    (folder / "users-campaign.yaml").write_text(USERS_CAMPAIGN)
    run(db, "create", "-f", str(folder / "users-campaign.yaml"))
    t, rss = peak_rss_of(db, "start", "to-users", *extra)
    print(f"users campaign: {n:,} targets, create_channels 1-to-1: {t:.1f} s = {n / t:,.0f} targets/s, peak RSS {rss:.0f} MB")
    (folder / "channels-campaign.yaml").write_text("""
id: to-channels
sender_id: sender
segment_ids: [dms]
message_template: {text: "News for {{ channel.cid }}"}
""")
    run(db, "create", "-f", str(folder / "channels-campaign.yaml"))
    t, rss = peak_rss_of(db, "start", "to-channels", *extra)
    print(f"channel campaign: {n:,} existing channels: {t:.1f} s = {n / t:,.0f} targets/s, peak RSS {rss:.0f} MB")
    rate = raw_insert_rate(n, folder)
    print(f"raw sqlite3 executemany of the same rows (channel, 2 members, message, 2 events): {rate:,.0f} targets/s")


if __name__ == "__main__":
    main()
