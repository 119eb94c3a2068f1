"""Benchmark delivery into a local Synapse (run by hand; prints its figures).

    python bench/bench_matrix.py --users 1000 --concurrency 8

Needs `matrix-synapse` (the test extra). It starts a Synapse on 127.0.0.1 (the tests' fixture),
registers N receivers and two senders, then:

1. the raw loop: for each receiver, the HTTP calls the campaign makes — profile lookup,
   `createRoom` (direct, invite), `m.room.message` with a transaction id — and one `m.direct`
   update per batch, `concurrency` requests in flight, from plain httpx threads;
2. the campaign: `campaign start` (a subprocess, real CLI) of a campaign to the same N receivers
   from the second sender, with `delivery.backend: matrix` and the same concurrency;

and prints targets/s of both and their ratio. Both talk to the same homeserver in the same run,
so the homeserver's speed cancels out; what remains is the sender loop's own overhead (planning,
ledger writes, room intents).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from synapse_server import Synapse  # noqa: E402

BATCH = 128


def raw_loop(synapse: Synapse, token: str, me: str, receivers: list[str], concurrency: int) -> float:
    """The campaign's HTTP calls without the campaign; returns seconds."""
    client = httpx.Client(base_url=synapse.url, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                          limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))
    api = "/_matrix/client/v3"
    direct: dict[str, list[str]] = {}
    lock = threading.Lock()

    def one(i_user: tuple[int, str]) -> None:
        i, user = i_user
        client.get(f"{api}/profile/{quote(user, safe='')}").raise_for_status()
        room = client.post(f"{api}/createRoom", json={"is_direct": True, "invite": [user],
                                                      "preset": "trusted_private_chat"}).json()["room_id"]
        with lock:
            direct[user] = [room]
        client.put(f"{api}/rooms/{quote(room, safe='')}/send/m.room.message/raw-{i}",
                   json={"msgtype": "m.text", "body": f"Hi {user}"}).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for first in range(0, len(receivers), BATCH):
            list(pool.map(one, enumerate(receivers[first:first + BATCH], first)))
            client.put(f"{api}/user/{quote(me, safe='')}/account_data/m.direct", json=direct).raise_for_status()
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def campaign(workdir: Path, synapse: Synapse, token: str, sender: str, receivers: list[str], concurrency: int) -> float:
    """`campaign start` of a DM campaign to the receivers; returns seconds."""
    db = workdir / "campaign.db"
    cli = [sys.executable, "-m", "campaign_cli", "--db", str(db)]
    users = workdir / "users.jsonl"
    users.write_text("".join(json.dumps({"id": u, "name": u}) + "\n" for u in [sender, *receivers]))
    subprocess.run([*cli, "users", "import", str(users)], check=True, capture_output=True)
    spec = workdir / "campaign.yaml"
    spec.write_text(yaml.safe_dump({"id": "bench", "sender_id": sender, "user_ids": receivers,
                                    "create_channels": True, "channel_template": {"type": "messaging"},
                                    "message_template": {"text": "Hi {{ receiver.name }}"}}))
    subprocess.run([*cli, "create", "-f", str(spec)], check=True, capture_output=True)
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump({"delivery": {"backend": "matrix", "matrix": {
        "homeserver": synapse.url, "access_token": token, "concurrency": concurrency}}}))
    started = time.perf_counter()
    done = subprocess.run([*cli, "--config", str(config), "start", "bench"], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"campaign start exited {done.returncode}: {done.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if not 1 <= args.users <= 1000:
        parser.error("--users: between 1 and 1000 (the campaign lists its receivers in user_ids)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "synapse").mkdir()
        synapse = Synapse(workdir / "synapse")
        synapse.start()
        try:
            started = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                receivers = list(pool.map(lambda i: synapse.register(f"r{i:05}", limited=True).user_id,
                                          range(args.users)))
            raw_sender = synapse.register("rawsender")
            campaign_sender = synapse.register("acme")
            print(f"synapse on {synapse.url}: {args.users} receivers registered in "
                  f"{time.perf_counter() - started:.1f} s")
            raw = raw_loop(synapse, raw_sender.access_token, raw_sender.user_id, receivers, args.concurrency)
            print(f"raw loop:  {args.users} receivers in {raw:.1f} s = {args.users / raw:.1f} targets/s")
            sent = campaign(workdir, synapse, campaign_sender.access_token, "acme",
                            [r[1:].split(":")[0] for r in receivers], args.concurrency)
            print(f"campaign:  {args.users} targets in {sent:.1f} s = {args.users / sent:.1f} targets/s")
            print(f"campaign / raw = {raw / sent:.0%}")
        finally:
            synapse.close()


if __name__ == "__main__":
    main()
