"""Large `$in` / `$nin` lists: one JSON parameter instead of one SQL parameter (or OR branch) per value.

Run by hand:  python bench/bench_filters_in.py --users 100000

Imports N users (custom number `n`, custom string `code`, `teams`) into a fresh SQLite file,
then times `count_users` in-process (a filter of 100,000 values is too long for one
command-line argument; from the CLI it comes in a segment definition file) for `$in` lists of
1,000, 10,000 and 100,000 values on a custom number, a custom string, `id` and `teams`, and
one `$nin`. Every list holds the wanted values among as many misses.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from campaign_cli.records import RecordSource
from campaign_cli.store.engine import open_engine
from campaign_cli.users import count_users, import_users


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "users.jsonl"
        with source.open("w") as out:
            for n in range(args.users):
                out.write(json.dumps({"id": f"u{n}", "n": n, "code": f"k{n}", "teams": [f"t{n % 1000}"]}) + "\n")
        engine = open_engine(f"sqlite:///{Path(folder) / 'campaign.db'}")
        import_users(engine, [RecordSource(str(source))])
        print(f"{args.users:,} users")
        for size in (1_000, 10_000, 100_000):
            filters = {
                "custom number $in": {"n": {"$in": list(range(0, 2 * size, 2))}},
                "custom string $in": {"code": {"$in": [f"k{n}" for n in range(0, 2 * size, 2)]}},
                "id $in": {"id": {"$in": [f"u{n}" for n in range(0, 2 * size, 2)]}},
                "teams $in": {"teams": {"$in": [f"t{n}" for n in range(0, 2 * size, 2)]}},
                "custom number $nin": {"n": {"$nin": list(range(0, 2 * size, 2))}},
            }
            for label, filter_ in filters.items():
                started = time.perf_counter()
                found = count_users(engine, filter_)
                print(f"{size:>7,} values  {label:<20} {time.perf_counter() - started:7.3f} s  -> {found:,} users")


if __name__ == "__main__":
    main()
