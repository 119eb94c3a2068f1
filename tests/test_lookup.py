"""`store.lookup` answers `users list`, `users get` and `segment target-exists` on SQLite without
SQLAlchemy: it must give what the store gives, or None so that the store answers."""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from campaign_cli import segments, users
from campaign_cli.errors import DatabaseBusy, InvalidInput, NoDatabase, NotFound
from campaign_cli.paging import encode_cursor
from campaign_cli.store import lookup
from campaign_cli.store.engine import open_engine

pytestmark = pytest.mark.sqlite_only

USERS = [
    {"id": "ann", "name": "Ann ☃ [b]x[/b]", "teams": ["red", "blue"], "language": "fr", "banned": True,
     "created_at": "2026-01-02T03:04:05.5+02:00", "last_active": "2026-11-30T00:00:00Z",
     "country": "NL", "nested": {"a": [1, 2.5, None, "ü", {"deep": True}]}},
    {"id": "bob"},
    {"id": "café-𝄞", "name": "", "role": "admin", "devices": [{"id": "tok-1", "push_provider": "firebase"}],
     "updated_at": "2025-05-05T05:05:05Z"},
    {"id": "big", "max": 9223372036854775807, "min": -9223372036854775808, "tiny": 1e-300, "flag": False,
     "empty": {}, "none": None, "text": "line\nbreak\ttab \u2028 \x7f"},
    {"id": "eve", "name": None, "teams": []},
]
IDS = [user["id"] for user in USERS]


@pytest.fixture
def db(cli):
    """A database with hostile users, a target list, an all-users segment, a filter segment, a channel
    segment of the sender's channels and a deleted segment."""
    cli.ok("users", "import", str(cli.write_jsonl("users.jsonl", USERS)))
    cli.ok("segment", "create", "--type", "user", "--id", "hand")
    cli.ok("segment", "add-targets", "hand", "ann", "ghost", "café-𝄞")
    cli.ok("segment", "create", "--type", "user", "--id", "everyone", "--all-users")
    cli.ok("segment", "create", "--type", "user", "--id", "french", "--filter", '{"language": "fr"}')
    cli.ok("segment", "create", "--type", "channel", "--id", "mine", "--all-sender-channels")
    cli.ok("segment", "create", "--type", "user", "--id", "gone")
    cli.ok("segment", "delete", "gone")
    engine = open_engine(cli.url, create=False)
    yield cli, engine
    engine.dispose()


def test_every_page_forward_and_back_is_the_stores_page(db):
    cli, engine = db
    for limit in (1, 2, 3, 5, 1000):
        page = lookup.list_users(cli.url, limit, None, None)
        assert page == users.list_users(engine, None, limit, None, None)
        seen = list(page.items)
        while page.next is not None:
            following = lookup.list_users(cli.url, limit, page.next, None)
            assert following == users.list_users(engine, None, limit, page.next, None)
            back = lookup.list_users(cli.url, limit, None, following.prev)
            assert back == users.list_users(engine, None, limit, None, following.prev) == page
            seen.extend(following.items)
            page = following
        assert [user["id"] for user in seen] == IDS


def test_the_first_page_and_every_user_are_the_stores(db):
    cli, engine = db
    assert lookup.list_users(cli.url, 2, None, None) == users.list_users(engine, None, 2, None, None)
    for user_id in IDS:
        assert lookup.get_user(cli.url, user_id) == users.get_user(engine, user_id)
    ann = lookup.get_user(cli.url, "ann")
    assert ann["banned"] is True and ann["created_at"] == "2026-01-02T01:04:05.500000Z"
    assert ann["nested"] == {"a": [1, 2.5, None, "ü", {"deep": True}]}
    assert lookup.get_user(cli.url, "big")["max"] == 9223372036854775807


def test_an_unknown_user_is_left_to_the_store(db):
    cli, engine = db
    assert lookup.get_user(cli.url, "nobody") is None
    with pytest.raises(NotFound):
        users.get_user(engine, "nobody")


@pytest.mark.parametrize(("segment_id", "target_id", "expected"), [
    ("hand", "ann", True), ("hand", " ann ", True), ("hand", "ghost", True), ("hand", "café-𝄞", True),
    ("hand", "bob", False), ("hand", "ANN", False), ("hand", "", False),
    ("everyone", "bob", True), ("everyone", "café-𝄞", True), ("everyone", "ghost", False),
])
def test_targets_of_a_list_or_of_all_users_are_the_stores(db, segment_id, target_id, expected):
    cli, engine = db
    assert lookup.target_exists(cli.url, segment_id, target_id) is expected
    assert segments.target_exists(engine, segment_id, target_id) is expected


def test_segments_that_need_their_filter_or_are_unknown_are_left_to_the_store(db):
    cli, engine = db
    assert lookup.target_exists(cli.url, "french", "ann") is None
    assert segments.target_exists(engine, "french", "ann") is True
    assert lookup.target_exists(cli.url, "mine", "messaging:x") is None
    with pytest.raises(InvalidInput, match="targets the sender's channels"):
        segments.target_exists(engine, "mine", "messaging:x")
    for segment_id, why in (("gone", "it was deleted"), ("nope", "not found")):
        assert lookup.target_exists(cli.url, segment_id, "ann") is None
        with pytest.raises(NotFound, match=why):
            segments.target_exists(engine, segment_id, "ann")


@pytest.mark.parametrize(("limit", "use", "message"), [
    (0, "none", "--limit: must be between 1 and 1000, got 0"),
    (1001, "none", "--limit: must be between 1 and 1000, got 1001"),
    (1, "both", "--next, --prev: give one of them, not both"),
    (1, "forged", "--next: not a cursor produced by campaign"),
    (1, "other listing", "--next: this cursor belongs to another listing or sort order"),
    (1, "a prev cursor as next", "--next: this is a --prev cursor"),
    (1, "a key beyond 64 bits", "--next: not a cursor produced by campaign"),
])
def test_bad_paging_is_refused_in_the_stores_words(db, limit, use, message):
    cli, engine = db
    cursors = {"none": (None, None), "both": ("a", "b"), "forged": ("bm90IGEgY3Vyc29y", None),
               "other listing": (encode_cursor("segments", [1]), None),
               "a prev cursor as next": (encode_cursor("users", [1], "prev"), None),
               "a key beyond 64 bits": (encode_cursor("users", [2**63]), None)}[use]
    with pytest.raises(InvalidInput) as quick:
        lookup.list_users(cli.url, limit, *cursors)
    with pytest.raises(InvalidInput) as store:
        users.list_users(engine, None, limit, *cursors)
    assert str(quick.value) == str(store.value) == message


@pytest.mark.parametrize(("next_", "prev"), [("", None), (None, ""), ("", "")])
def test_empty_cursors_give_the_stores_page(db, next_, prev):
    cli, engine = db
    assert lookup.list_users(cli.url, 2, next_, prev) == users.list_users(engine, None, 2, next_, prev)


def test_a_signed_cursor_with_another_key_is_left_to_the_store(db):
    cli, engine = db
    for key in ([], ["ann"], [1, 2], [True], [1.5]):
        assert lookup.list_users(cli.url, 1, encode_cursor("users", key), None) is None


def test_databases_it_is_not_sure_of_are_left_to_the_store(cli, tmp_path):
    cli.ok("users", "import", str(cli.write_jsonl("users.jsonl", [{"id": "ann"}])))
    assert lookup.get_user(cli.url, "ann")["id"] == "ann"
    missing = tmp_path / "missing.db"
    empty = tmp_path / "empty.db"
    empty.touch()
    text = tmp_path / "text.db"
    text.write_text("not a database\n" * 10)
    urls = [f"sqlite:///{missing}", f"sqlite:///{empty}", f"sqlite:///{text}", f"sqlite:///{tmp_path}",
            f"{cli.url}?mode=ro", "sqlite://", "sqlite:///:memory:", "postgresql+psycopg://nobody@127.0.0.1:1/none",
            f"sqlite:///{tmp_path}/%63ampaign.db"]
    for url in urls:
        assert lookup.get_user(url, "ann") is None, url
        assert lookup.list_users(url, 1, None, None) is None, url
        assert lookup.target_exists(url, "hand", "ann") is None, url
    assert not missing.exists()
    with sqlite3.connect(Path(cli.db)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0003'")
    assert lookup.get_user(cli.url, "ann") is None


def test_a_damaged_value_is_left_to_the_store(cli):
    cli.ok("users", "import", str(cli.write_jsonl("users.jsonl", [{"id": "ann"}, {"id": "bob"}])))
    with sqlite3.connect(Path(cli.db)) as conn:
        conn.execute("UPDATE users SET custom = '{not json' WHERE id = 'ann'")
        conn.execute("UPDATE users SET created_at = 'yesterday' WHERE id = 'bob'")
    assert lookup.get_user(cli.url, "ann") is None
    assert lookup.get_user(cli.url, "bob") is None
    assert lookup.list_users(cli.url, 10, None, None) is None


def test_a_database_locked_past_the_busy_timeout_is_refused_after_one_wait(cli, monkeypatch):
    cli.ok("users", "import", str(cli.write_jsonl("users.jsonl", [{"id": "ann"}])))
    monkeypatch.setattr(lookup, "BUSY_TIMEOUT_MS", 300)
    writer = sqlite3.connect(Path(cli.db), isolation_level=None)
    writer.execute("PRAGMA locking_mode = EXCLUSIVE")
    writer.execute("BEGIN EXCLUSIVE")
    try:
        began = time.monotonic()
        with pytest.raises(DatabaseBusy, match=r"^database is locked by another process \(waited 0.3 s\); try again$"):
            lookup.get_user(cli.url, "ann")
        assert time.monotonic() - began < 2
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert lookup.get_user(cli.url, "ann")["id"] == "ann"


def test_a_database_not_in_wal_mode_is_left_to_the_store(cli):
    """The store makes every connection WAL, a write that a read-only copy in another mode refuses."""
    cli.ok("users", "import", str(cli.write_jsonl("users.jsonl", [{"id": "ann"}])))
    with sqlite3.connect(Path(cli.db), isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
    assert lookup.get_user(cli.url, "ann") is None
    assert lookup.target_exists(cli.url, "nope", "ann") is None


def test_dot_dot_after_a_symbolic_link_is_read_as_the_store_reads_it(cli, tmp_path, monkeypatch):
    """SQLAlchemy opens os.path.abspath(path): `link/..` is the folder holding `link`, not the link target's parent."""
    cli.ok("users", "import", str(cli.write_jsonl("users.jsonl", [{"id": "ann", "name": "here"}])))
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    for name in ("campaign.db", "only-there.db"):
        with closing(sqlite3.connect(Path(cli.db))) as source, closing(sqlite3.connect(tmp_path / "real" / name)) as copy:
            source.backup(copy)
            copy.execute("UPDATE users SET name = 'elsewhere'")
            copy.commit()
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///link/../campaign.db"
    assert lookup.get_user(url, "ann")["name"] == "here"
    engine = open_engine(url, create=False)
    assert users.get_user(engine, "ann")["name"] == "here"
    engine.dispose()
    # A file only at the link target's parent is no database here, and none is created.
    assert lookup.get_user("sqlite:///link/../only-there.db", "ann") is None
    with pytest.raises(NoDatabase):
        open_engine("sqlite:///link/../only-there.db", create=False)
    assert sorted(os.listdir(tmp_path)) == sorted(["campaign.db", *_sidecars(tmp_path), "link", "real", "users.jsonl"])


def _sidecars(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith("campaign.db-")]
