"""Benchmark several senders on one PostgreSQL campaign (run by hand; prints its figures).

    python bench/bench_pg.py --users 1000000 --senders 1,2,4 [--sqlite] [--url postgresql+psycopg://…/postgres]

For each sender count: a fresh database, N users imported (timed), a campaign to all of them
with 1-to-1 channel creation, `start --detach`, then that many `campaign run` processes started
together; prints the wall time, targets/s, the speed-up over one sender and the time of the
first, middle and last batches (from the claims' completion times). With --sqlite the same
campaign is also sent on SQLite by one sender, for the PostgreSQL/SQLite ratio.

Without --url a throwaway server is started from the PostgreSQL binaries the tests use
(tests/pg_server.py: initdb in a temporary folder, 127.0.0.1, a free port, fsync off).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bench_send import USERS_CAMPAIGN  # noqa: E402  (the same campaign as on SQLite)
from pg_server import PgServer, find_bin_dir  # noqa: E402  (the tests' throwaway server)

CLI = [sys.executable, "-m", "campaign_cli"]


def campaign(db: str, *args: str) -> float:
    """Run the CLI; returns its wall time."""
    start = time.perf_counter()
    proc = subprocess.run([*CLI, "--db", db, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"campaign {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return time.perf_counter() - start


def prepare(db: str, folder: Path, n: int) -> float:
    """Users, segment and a draft campaign; returns the import time."""
    users = folder / "users.jsonl"
    if not users.exists():
        with users.open("w") as f:
            f.write(json.dumps({"id": "sender", "name": "The Team"}) + "\n")
            for i in range(n):
                f.write(json.dumps({"id": f"user-{i:08d}", "name": f"User {i}"}) + "\n")
    imported = campaign(db, "users", "import", str(users))
    (folder / "segment.yaml").write_text("{id: everyone, type: user, name: Everyone, all_users: true}\n")
    campaign(db, "segment", "create", "-f", str(folder / "segment.yaml"))
    (folder / "campaign.yaml").write_text(USERS_CAMPAIGN)
    campaign(db, "create", "-f", str(folder / "campaign.yaml"))
    campaign(db, "start", "to-users", "--detach")
    return imported


def send_with(db: str, senders: int, batch: list[str]) -> float:
    """Start `senders` senders together on the campaign; returns the wall time until all have finished."""
    start = time.perf_counter()
    procs = [subprocess.Popen([*CLI, "--db", db, "run", "to-users", *batch], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(senders)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"a sender failed ({proc.returncode}): {err}")
    return time.perf_counter() - start


def batch_times(dsn: str) -> tuple[float, float, float]:
    """Mean seconds between one sender's claims completing, over each sender's first, middle and last
    five batches (averaged over the senders)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT owner, done_at FROM campaign_claims ORDER BY owner, done_at").fetchall()
    gaps: dict[str, list[float]] = {}
    for (owner, at), (next_owner, next_at) in zip(rows, rows[1:]):
        if owner == next_owner:
            gaps.setdefault(owner, []).append((next_at - at).total_seconds())
    spans = [g for g in gaps.values() if len(g) >= 15]
    if not spans:
        return (float("nan"),) * 3
    parts = [(g[:5], g[len(g) // 2 - 2:len(g) // 2 + 3], g[-5:]) for g in spans]
    return tuple(statistics.mean(statistics.mean(p[i]) for p in parts) for i in range(3))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--senders", default="1,2,4", help="sender counts to measure, comma-separated")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--sqlite", action="store_true", help="also send the campaign on SQLite (one sender)")
    parser.add_argument("--url", help="an existing server's maintenance database URL (postgresql+psycopg://…/postgres)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    batch = ["--batch-size", str(args.batch_size)] if args.batch_size else []
    server = None
    admin_url = args.url
    if admin_url is None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            sys.exit("no PostgreSQL server binaries: give --url or install PostgreSQL 15 (see tests/pg_server.py)")
        server = PgServer(bin_dir)
        server.start()
        admin_url = server.url("postgres")
    n = args.users
    try:
        base = None
        for count in [int(c) for c in args.senders.split(",")]:
            name = f"bench_{count}_senders"
            with psycopg.connect(admin_url.replace("+psycopg", ""), autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                admin.execute(f"CREATE DATABASE {name}")
            db = admin_url.rsplit("/", 1)[0] + f"/{name}"
            imported = prepare(db, folder, n)
            took = send_with(db, count, batch)
            if count == 1:
                base = took
            first, middle, last = batch_times(db.replace("+psycopg", ""))
            speedup = f" = {base / took:.2f}x one sender" if base and count > 1 else ""
            print(f"postgresql, {count} sender(s): {n:,} targets with 1-to-1 channels in {took:.1f} s = "
                  f"{n / took:,.0f} targets/s{speedup}; batches first/middle/last {first:.2f}/{middle:.2f}/{last:.2f} s; "
                  f"users import {imported:.1f} s")
        if args.sqlite:
            db = str(folder / "campaign.db")
            prepare(db, folder, n)
            took = send_with(db, 1, batch)
            ratio = f" (postgresql, 1 sender: {base / took:.2f}x this)" if base else ""
            print(f"sqlite, 1 sender: {n:,} targets with 1-to-1 channels in {took:.1f} s = {n / took:,.0f} targets/s"
                  f"{ratio}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
