"""A real Synapse homeserver on 127.0.0.1 for the Matrix tests (PyPI `matrix-synapse`, test-only).

Synapse runs as a subprocess (`python -m synapse.app.homeserver`) with a hand-written config:
SQLite, one client listener on 127.0.0.1, no federation, no key servers, no stats reporting,
registration closed except through the shared-secret admin API. Rate limits are raised so that
tests are not throttled; only `rc_message` keeps a low limit, and every account registered here
is exempted from it through the admin API's rate-limit override unless asked for `limited=True`
(the test of 429 handling uses such an account).

Synapse is AGPL: it is only ever run as a separate process, never imported.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import yaml

SERVER_NAME = "campaign.test"
PASSWORD = "correct horse battery staple"
START_TIMEOUT = 60.0
# Rates high enough that no test waits on them.
UNLIMITED = {"per_second": 10_000, "burst_count": 100_000}


@dataclass(frozen=True)
class Account:
    """A registered Matrix account with one logged-in device."""

    localpart: str
    user_id: str
    access_token: str
    device_id: str


def synapse_available() -> bool:
    """Whether `matrix-synapse` is installed in this environment."""
    return importlib.util.find_spec("synapse") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Synapse:
    """One homeserver process with its config, database and logs under `workdir`."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server_name = SERVER_NAME
        self.secret = secrets.token_hex(16)
        self.process: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30.0)
        self._admin: Account | None = None

    # ------------------------------------------------------------ process

    def start(self) -> None:
        """Start the server and wait until it answers."""
        config = self._write_config()
        log = (self.workdir / "stdout.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "synapse.app.homeserver", "-c", str(config)],
                                        cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"synapse exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if self.http.get("/_matrix/client/versions").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"synapse did not answer within {START_TIMEOUT}s: {self.log_tail()}")

    def stop(self) -> None:
        """Stop the server (it can be started again on the same port and database)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        self.http.close()

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "homeserver.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _write_config(self) -> Path:
        key = self.workdir / "signing.key"
        if not key.exists():
            # Synapse's key file format: algorithm, version, unpadded base64 of the 32-byte seed.
            seed = base64.b64encode(os.urandom(32)).decode().rstrip("=")
            key.write_text(f"ed25519 a_test {seed}\n")
        log_config = self.workdir / "log.yaml"
        log_config.write_text(yaml.safe_dump({
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "formatter": "plain",
                                  "filename": str(self.workdir / "homeserver.log")}},
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }))
        config = {
            "server_name": self.server_name,
            "pid_file": str(self.workdir / "homeserver.pid"),
            "listeners": [{"port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                           "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}],
            "database": {"name": "sqlite3", "args": {"database": str(self.workdir / "homeserver.db")}},
            "log_config": str(log_config),
            "media_store_path": str(self.workdir / "media"),
            "signing_key_path": str(key),
            "registration_shared_secret": self.secret,
            "macaroon_secret_key": self.secret + "m",
            "form_secret": self.secret + "f",
            "enable_registration": False,
            # Registration and login hash passwords: the lowest cost keeps a test with many accounts fast.
            "bcrypt_rounds": 4,
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "url_preview_enabled": False,
            "enable_metrics": False,
            "presence": {"enabled": False},
            "user_directory": {"enabled": False},
            # Only the sending of events stays limited; accounts are exempted one by one (see `register`).
            "rc_message": {"per_second": 2, "burst_count": 4},
            "rc_room_creation": UNLIMITED,
            "rc_registration": UNLIMITED,
            "rc_login": {"address": UNLIMITED, "account": UNLIMITED, "failed_attempts": UNLIMITED},
            "rc_joins": {"local": UNLIMITED, "remote": UNLIMITED},
            "rc_joins_per_room": UNLIMITED,
            "rc_invites": {"per_room": UNLIMITED, "per_user": UNLIMITED, "per_issuer": UNLIMITED},
            "rc_admin_redaction": UNLIMITED,
            "rc_presence": {"per_user": UNLIMITED},
        }
        path = self.workdir / "homeserver.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # ------------------------------------------------------------ accounts

    def register(self, localpart: str, *, admin: bool = False, displayname: str | None = None,
                 limited: bool = False) -> Account:
        """Register an account through the shared-secret admin API and return its first device."""
        nonce = self.http.get("/_synapse/admin/v1/register").json()["nonce"]
        mac = hmac.new(self.secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), PASSWORD.encode(),
                                 b"admin" if admin else b"notadmin"]))
        body = {"nonce": nonce, "username": localpart, "password": PASSWORD, "admin": admin,
                "mac": mac.hexdigest()}
        if displayname is not None:
            body["displayname"] = displayname
        reply = self.http.post("/_synapse/admin/v1/register", json=body)
        reply.raise_for_status()
        data = reply.json()
        account = Account(localpart, data["user_id"], data["access_token"], data["device_id"])
        if not limited:
            self.unlimit(account.user_id)
        return account

    def login(self, localpart: str, device_id: str | None = None) -> Account:
        """A new access token for an account (on `device_id` when given, else a new device)."""
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart},
                "password": PASSWORD}
        if device_id:
            body["device_id"] = device_id
        reply = self.http.post("/_matrix/client/v3/login", json=body)
        reply.raise_for_status()
        data = reply.json()
        return Account(localpart, data["user_id"], data["access_token"], data["device_id"])

    @property
    def admin(self) -> Account:
        """A server admin account, registered on first use."""
        if self._admin is None:
            self._admin = self.register(f"admin-{secrets.token_hex(3)}", admin=True, limited=True)
        return self._admin

    def unlimit(self, user_id: str) -> None:
        """Exempt an account from every per-user rate limit."""
        self.admin_call("POST", f"/_synapse/admin/v1/users/{quote(user_id)}/override_ratelimit",
                        json={"messages_per_second": 0, "burst_count": 0})

    def deactivate(self, user_id: str) -> None:
        self.admin_call("POST", f"/_synapse/admin/v1/deactivate/{quote(user_id)}", json={"erase": False})

    def admin_call(self, method: str, path: str, **kwargs) -> dict:
        reply = self.http.request(method, path, headers={"Authorization": f"Bearer {self.admin.access_token}"},
                                  **kwargs)
        reply.raise_for_status()
        return reply.json()

    # ------------------------------------------------------------ reading what arrived

    def client(self, account: Account) -> "MatrixReader":
        return MatrixReader(self.http, account)


class MatrixReader:
    """Reads rooms, account data and messages as one account, for the tests' assertions."""

    def __init__(self, http: httpx.Client, account: Account):
        self.http = http
        self.account = account
        self.headers = {"Authorization": f"Bearer {account.access_token}"}

    def get(self, path: str, **params) -> dict:
        reply = self.http.get(f"/_matrix/client/v3{path}", headers=self.headers, params=params or None)
        reply.raise_for_status()
        return reply.json()

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.http.request(method, f"/_matrix/client/v3{path}", headers=self.headers, **kwargs)

    def invited_and_joined_rooms(self) -> dict[str, str]:
        """Room id -> membership ('invite' or 'join') of this account, from one full sync."""
        sync = self.get("/sync", timeout="0", filter='{"room": {"timeline": {"limit": 0}}}')
        rooms = {room_id: "join" for room_id in sync.get("rooms", {}).get("join", {})}
        rooms.update({room_id: "invite" for room_id in sync.get("rooms", {}).get("invite", {})})
        return rooms

    def members(self, room_id: str) -> dict[str, str]:
        """User id -> membership in a room."""
        chunk = self.get(f"/rooms/{quote(room_id)}/members")["chunk"]
        return {event["state_key"]: event["content"]["membership"] for event in chunk}

    def messages(self, room_id: str, limit: int = 100) -> list[dict]:
        """The room's m.room.message events, oldest first."""
        chunk = self.get(f"/rooms/{quote(room_id)}/messages", dir="b", limit=str(limit))["chunk"]
        return [e for e in reversed(chunk) if e["type"] == "m.room.message"]

    def join(self, room_id: str) -> None:
        self.call("POST", f"/join/{quote(room_id)}", json={}).raise_for_status()

    def read_receipt(self, room_id: str, event_id: str) -> None:
        self.call("POST", f"/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}", json={}).raise_for_status()

    def account_data(self, kind: str) -> dict:
        return self.get(f"/user/{quote(self.account.user_id)}/account_data/{kind}")
