"""Benchmark: how long a `campaign` call takes from the shell, beside `python -c pass`.

Run by hand:  python bench/bench_startup.py [--users 1000000] [--runs 10] [--db PATH]

Shell scripts call the CLI in loops, so start-up is most of what they wait for. This builds a
database of N users (kept at --db and reused when it already holds them) with a manual segment
of 1,000 targets, then runs each command --runs times as a subprocess and prints the median
wall time. Targets on the 2-core machine: `campaign --help` <= 0.25 s,
`campaign users list --limit 1` on 1M users <= 0.5 s, `campaign segment target-exists` <= 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CAMPAIGN = [sys.executable, "-m", "campaign_cli"]


# As a user's shell runs it: Python caches compiled modules (some sandboxes switch that off, and
# then every run compiles every module again, which would measure the compiler, not the start-up).
ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def median_seconds(argv: list[str], runs: int) -> tuple[float, float]:
    """The median wall time and CPU time (user + system) of `runs` runs of `argv` (output discarded; it must succeed),
    after one run that is not counted (it fills Python's cache of compiled modules).

    On a busy machine the wall time grows with the load; the CPU time much less.
    """
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        walls.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def build_database(db: Path, users: int) -> None:
    """N users (JSONL through `users import`) and a manual segment `bench-seg` of 1,000 of them."""
    last = subprocess.run([*CAMPAIGN, "--db", str(db), "users", "get", f"user-{users - 1:08d}"], capture_output=True)
    if last.returncode == 0:
        return  # built by an earlier run (at this release's schema: an older one is refused)
    db.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "users.jsonl"
        with source.open("w", encoding="utf-8") as out:
            for n in range(users):
                out.write(json.dumps({"id": f"user-{n:08d}", "name": f"User {n}", "country": "US"}) + "\n")
        subprocess.run([*CAMPAIGN, "--db", str(db), "users", "import", str(source)], check=True)
    subprocess.run([*CAMPAIGN, "--db", str(db), "segment", "create", "--type", "user", "--id", "bench-seg"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([*CAMPAIGN, "--db", str(db), "segment", "add-targets", "bench-seg",
                    *(f"user-{n:08d}" for n in range(0, users, max(1, users // 1000)))], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "bench_startup.db")
    args = parser.parse_args()
    build_database(args.db, args.users)
    db = ["--db", str(args.db)]
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"], None),
        ("campaign --help", [*CAMPAIGN, "--help"], 0.25),
        (f"campaign users list --limit 1 ({args.users:,} users)", [*CAMPAIGN, *db, "users", "list", "--limit", "1"], 0.5),
        ("campaign segment target-exists", [*CAMPAIGN, *db, "segment", "target-exists", "bench-seg", "user-00000000"], 0.5),
    ]
    print(f"median of {args.runs} runs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for label, argv, target in rows:
        seconds, cpu = median_seconds(argv, args.runs)
        verdict = "" if target is None else f"  (target <= {target:.2f} s: {'ok' if seconds <= target else 'MISSED'})"
        print(f"{label:<52} {seconds:6.3f} s wall, {cpu:6.3f} s CPU{verdict}")


if __name__ == "__main__":
    main()
