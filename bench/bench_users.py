"""Benchmark: import N users through the CLI, then count a filter over them.

Run by hand:  python bench/bench_users.py --users 1000000
              python bench/bench_users.py --users 1000000 --pg     # on a throwaway PostgreSQL server
              python bench/bench_users.py --db postgresql+psycopg://user@host/empty_db

It writes N generated users as JSONL into a temporary folder, runs
`python -m campaign_cli --db … users import …` as a subprocess and reports its wall time,
CPU time and peak RSS, imports the same file again (every record an update), then times
`users list --filter '{"country":"US"}' --count` and a range + array filter (also
subprocesses, so interpreter start-up is included). Targets on the 2-core machine: 1M users
imported in <= 20 s with peak RSS <= 200 MB; the filtered count in <= 2 s. The CPU time
tells a slow run from a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

COUNTRIES = ["US", "FR", "DE", "NL", "BR", "IN", "JP", "GB", "ES", "IT"]
LANGUAGES = ["en", "fr", "de", "nl", "pt", "hi", "ja", "es", "it"]
TEAMS = ["red", "blue", "green", "yellow", "black"]
PROVIDERS = ["apn", "firebase"]


@dataclass
class Timed:
    """The outcome of one CLI subprocess."""

    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    stdout: str


def generate(path: Path, users: int, seed: int) -> None:
    """Write `users` random users as JSONL: standard fields plus custom ones (country, age, plan)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for n in range(users):
            record = {
                "id": f"user-{n:08d}",
                "name": f"User {n}",
                "language": rng.choice(LANGUAGES),
                "teams": rng.sample(TEAMS, rng.randint(0, 2)),
                "country": rng.choice(COUNTRIES),
                "age": rng.randint(13, 90),
                "plan": rng.choice(["free", "pro", "team"]),
            }
            if n % 3 == 0:
                record["devices"] = [{"id": f"dev-{n}", "push_provider": rng.choice(PROVIDERS)}]
            out.write(json.dumps(record, separators=(",", ":")) + "\n")


def run_cli(db: str, *args: str) -> Timed:
    """Run `python -m campaign_cli --db DB ARGS…`: wall time, CPU time and peak RSS of that process alone."""
    command = [sys.executable, "-m", "campaign_cli", "--db", db, *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _pid, status, usage = os.wait4(process.pid, 0)  # the rusage of this child alone
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            sys.exit(f"{' '.join(args)}: exit {process.returncode}: {err.read().strip()}")
        return Timed(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000, help="how many users to generate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    parser.add_argument("--db", help="an empty database to import into (default: a new SQLite file)")
    parser.add_argument("--pg", action="store_true", help="start a throwaway PostgreSQL server (tests/pg_server.py)")
    args = parser.parse_args()
    if args.pg:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from pg_server import HOW_TO_GET, PgServer, find_bin_dir

        bin_dir = find_bin_dir()
        if bin_dir is None:
            sys.exit(HOW_TO_GET)
        server = PgServer(bin_dir)
        server.start()
        try:
            bench(args, server.url(server.database()))
        finally:
            server.stop()
    else:
        bench(args, args.db)


def bench(args: argparse.Namespace, db_url: str | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench_users_"))
    data = folder / "users.jsonl"
    db = db_url or str(folder / "campaign.db")
    print(f"database: {db if db_url else 'a new SQLite file'}")
    started = time.perf_counter()
    generate(data, args.users, args.seed)
    print(f"generated {args.users:,} users ({data.stat().st_size / 2**20:.0f} MB JSONL) "
          f"in {time.perf_counter() - started:.1f} s")

    imported = run_cli(db, "users", "import", str(data))
    print(f"import:         {imported.seconds:6.2f} s (cpu {imported.cpu_seconds:5.2f} s)  peak RSS "
          f"{imported.peak_rss_mb:5.1f} MB  {args.users / imported.seconds:,.0f} users/s"
          "   (target for 1M: <= 20 s, <= 200 MB)")

    reimported = run_cli(db, "users", "import", str(data))
    print(f"re-import:      {reimported.seconds:6.2f} s (cpu {reimported.cpu_seconds:5.2f} s)  peak RSS "
          f"{reimported.peak_rss_mb:5.1f} MB  (every record an update)")

    for filter_ in ('{"country":"US"}', '{"age": {"$gte": 30, "$lt": 40}, "teams": {"$contains": "red"}}'):
        counted = run_cli(db, "users", "list", "--filter", filter_, "--count")
        print(f"count {filter_}: {counted.seconds:.2f} s (cpu {counted.cpu_seconds:.2f} s) -> "
              f"{counted.stdout.strip()} users   (target <= 2 s)")

    started_cli = run_cli(db, "--help")
    print(f"CLI start-up (campaign --help): {started_cli.seconds:.2f} s, included in every figure above")
    if db_url is None:
        print(f"database: {Path(db).stat().st_size / 2**20:.0f} MB")
    if args.keep:
        print(f"kept {folder}")
    else:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
