"""Benchmark: manual segment targets at scale, through the CLI.

Run by hand:  python bench/bench_segments.py --targets 1000000

Every step runs `python -m campaign_cli --db … segment …` as a subprocess (interpreter
start-up included) and prints its wall time:

1. `segment add-targets big --file ids.txt` with N ids in random order (target <= 10 s for 1M);
2. `segment sync big --file changed.txt` where the file drops 1% of the targets and adds
   1% new ones (target <= 15 s for 1M), checking the printed added/removed counts;
3. `segment targets big --limit 10000 --next …` over every page; prints the first, middle and
   last page times, which must be flat (keyset paging, never OFFSET). The same pages are
   then timed in-process (no interpreter start-up) to show the query cost alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAGE = 10_000


def run_cli(db: Path, *args: str) -> tuple[float, float, str]:
    """Run `python -m campaign_cli --db DB ARGS…`: wall seconds, peak RSS in MB of that child, stdout."""
    command = [sys.executable, "-m", "campaign_cli", "--db", str(db), *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(args)}: exit {os.waitstatus_to_exitcode(status)}: {err.read().strip()}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def write_ids(path: Path, ids: list[str]) -> None:
    path.write_text("\n".join(ids) + "\n", encoding="utf-8")


def bench_add(db: Path, folder: Path, ids: list[str]) -> None:
    write_ids(folder / "ids.txt", ids)
    run_cli(db, "segment", "create", "--type", "user", "--id", "big")
    seconds, rss, out = run_cli(db, "segment", "add-targets", "big", "--file", str(folder / "ids.txt"), "--json")
    added = json.loads(out)["added"]
    assert added == len(ids), out
    print(f"add-targets {len(ids):>9,} ids: {seconds:6.2f} s  peak RSS {rss:6.1f} MB  "
          f"{len(ids) / seconds:,.0f} ids/s   (target <= 10 s for 1M)")


def bench_sync(db: Path, folder: Path, ids: list[str], rng: random.Random) -> None:
    change = len(ids) // 100
    dropped = set(rng.sample(ids, change))
    kept = [i for i in ids if i not in dropped]
    new = [f"new-{n:08d}" for n in range(change)]
    changed = kept + new
    rng.shuffle(changed)
    write_ids(folder / "changed.txt", changed)
    changed_file = str(folder / "changed.txt")
    seconds, _, out = run_cli(db, "segment", "sync", "big", "--file", changed_file, "--dry-run", "--json")
    print(f"sync --dry-run {len(changed):>6,} ids: {seconds:6.2f} s  -> {out.strip().replace(chr(10), ' ')}")
    seconds, rss, out = run_cli(db, "segment", "sync", "big", "--file", changed_file, "--json")
    result = json.loads(out)
    assert (result["added"], result["removed"], result["size"]) == (change, change, len(ids)), out
    print(f"sync {len(changed):>9,} ids (1% diff): {seconds:6.2f} s  peak RSS {rss:6.1f} MB  "
          f"added {result['added']:,} removed {result['removed']:,}   (target <= 15 s for 1M)")


def bench_paging(db: Path) -> None:
    times: list[float] = []
    cursor: list[str] = []
    seen = 0
    while True:
        seconds, _, out = run_cli(db, "segment", "targets", "big", "--limit", str(PAGE), "--json", *cursor)
        page = json.loads(out)
        times.append(seconds)
        seen += len(page["targets"])
        if page["next"] is None:
            break
        cursor = ["--next", page["next"]]
    _report_pages("subprocess", times, seen)
    _bench_paging_in_process(db)


def _bench_paging_in_process(db: Path) -> None:
    from campaign_cli.segments import list_targets
    from campaign_cli.store.engine import open_engine

    engine = open_engine(f"sqlite:///{db}")
    times: list[float] = []
    cursor, seen = None, 0
    while True:
        started = time.perf_counter()
        items, cursor = list_targets(engine, "big", None, [], PAGE, cursor)
        times.append(time.perf_counter() - started)
        seen += len(items)
        if cursor is None:
            break
    _report_pages("in-process", times, seen)


def _report_pages(how: str, times: list[float], seen: int) -> None:
    middle = len(times) // 2
    print(f"page {PAGE:,} targets ({how}, {len(times)} pages, {seen:,} targets): first {times[0] * 1000:7.1f} ms  "
          f"middle {times[middle] * 1000:7.1f} ms  last {times[-1] * 1000:7.1f} ms  "
          f"median {statistics.median(times) * 1000:7.1f} ms  max {max(times) * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=1_000_000, help="how many target ids")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="bench_segments_"))
    db = folder / "campaign.db"
    ids = [f"user-{n:08d}" for n in range(args.targets)]
    rng.shuffle(ids)
    bench_add(db, folder, ids)
    bench_sync(db, folder, ids, rng)
    bench_paging(db)
    print(f"database: {db.stat().st_size / 2**20:.0f} MB")
    if args.keep:
        print(f"kept {folder}")
    else:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
