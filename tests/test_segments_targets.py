"""Segment targets: add / remove (args, file, stdin), paging, target-exists, sync and their bad input."""

from __future__ import annotations

from typing import Any

import pytest

from test_segments import fails, import_directory, segment, snapshot


@pytest.fixture
def manual(cli: Any) -> Any:
    """The CLI with an empty manual user segment `m`."""
    cli.ok("segment", "create", "--type", "user", "--id", "m")
    return cli


def targets(cli: Any, segment_id: str = "m", *args: str) -> list[str]:
    return cli.ok("segment", "targets", segment_id, *args).stdout.splitlines()


# ---------------------------------------------------------------- add and remove


def test_add_targets_from_arguments_file_and_stdin(manual):
    run = manual.ok("segment", "add-targets", "m", "u1", "u2", "--json")
    assert run.json() == {"segment_id": "m", "added": 2, "size": 2}
    path = manual.write("ids.txt", "u3\n\n  u4\t\n\nu1\n")
    assert manual.ok("segment", "add-targets", "m", "--file", str(path), "--json").json()["added"] == 2
    assert manual.ok("segment", "add-targets", "m", "--json", input="u5\nu2\n").json() == {
        "segment_id": "m", "added": 1, "size": 5}
    assert manual.ok("segment", "add-targets", "m", "--file", "-", "--json", input="u6\n").json()["size"] == 6
    assert targets(manual) == ["u1", "u2", "u3", "u4", "u5", "u6"]


def test_adding_existing_targets_and_removing_missing_ones_is_not_an_error(manual):
    manual.ok("segment", "add-targets", "m", "a", "b")
    run = manual.ok("segment", "add-targets", "m", "a", "b", "a")
    assert run.stderr == "added 0 targets to segment m (size 2)\n"
    run = manual.ok("segment", "remove-targets", "m", "b", "zz", "b")
    assert run.stderr == "removed 1 target from segment m (size 1)\n"
    assert manual.ok("segment", "remove-targets", "m", "zz", "--json").json() == {
        "segment_id": "m", "removed": 0, "size": 1}
    assert targets(manual) == ["a"]


def test_targets_need_not_be_known_users(manual):
    manual.ok("segment", "add-targets", "m", "not-imported-yet")
    assert segment(manual, "m")["size"] == 1


def test_add_updates_the_segment_updated_at(manual):
    before = segment(manual, "m")
    manual.ok("segment", "add-targets", "m", "a")
    assert segment(manual, "m")["updated_at"] > before["updated_at"]


def test_many_targets_in_one_call_across_chunks(manual):
    ids = [f"user-{i:06d}" for i in range(120_001)]
    big = manual.write("big.txt", "\n".join(reversed(ids)) + "\n" + "\n".join(ids[:1000]) + "\n")
    assert manual.ok("segment", "add-targets", "m", "--file", str(big), "--json").json()["size"] == 120_001
    half = manual.write("half.txt", "\n".join(ids[::2]) + "\n")
    assert manual.ok("segment", "remove-targets", "m", "--file", str(half), "--json").json() == {
        "segment_id": "m", "removed": 60_001, "size": 60_000}
    page = manual.ok("segment", "targets", "m", "--limit", "10000", "--json").json()
    assert [t["target_id"] for t in page["targets"][:2]] == ["user-000001", "user-000003"]


def test_a_line_with_white_space_inside_an_id_names_the_file_and_line(manual):
    manual.ok("segment", "add-targets", "m", "keep")
    path = manual.write("ids.txt", "a\n\nb\nc d\ne\n")
    fails(manual, 3, f"{path}:4: target id 'c d' contains white space",
          "segment", "add-targets", "m", "--file", str(path))
    fails(manual, 3, "stdin:2: target id 'x\\ty' contains white space",
          "segment", "add-targets", "m", input="ok\nx\ty\n")
    fails(manual, 3, "arguments[1]: target id 'b c' contains white space", "segment", "add-targets", "m", "a", "b c")
    fails(manual, 3, f"{path}:4: target id 'c d' contains white space",
          "segment", "remove-targets", "m", "--file", str(path))


def test_a_targets_file_that_is_missing_or_not_utf8_is_refused(manual):
    missing = manual.cwd / "nope.txt"
    fails(manual, 3, f"{missing}: file not found", "segment", "add-targets", "m", "--file", str(missing))
    fails(manual, 3, f"{manual.cwd}: is a folder, not a file", "segment", "add-targets", "m", "--file", str(manual.cwd))
    binary = manual.cwd / "bin.txt"
    binary.write_bytes(b"ok\n\xff\xfe\n")
    fails(manual, 3, f"{binary}:2: not valid UTF-8", "segment", "add-targets", "m", "--file", str(binary))


def test_a_user_id_over_255_characters_is_refused(manual):
    fails(manual, 3, "arguments[0]: user id is longer than 255 characters",
          "segment", "add-targets", "m", "u" * 256)


def test_channel_segment_targets_are_cids(cli):
    cli.ok("segment", "create", "--type", "channel", "--id", "c")
    cli.ok("segment", "add-targets", "c", "messaging:general", "support:s1")
    fails(cli, 3, "arguments[0]: 'general' is not a channel cid (type:id)", "segment", "add-targets", "c", "general")
    fails(cli, 3, "arguments[0]: ':x' is not a channel cid (type:id)", "segment", "add-targets", "c", ":x")
    assert targets(cli, "c") == ["messaging:general", "support:s1"]


def test_adding_targets_to_a_filter_segment_is_refused(cli):
    cli.ok("segment", "create", "--type", "user", "--id", "fr", "--filter", '{"country": "FR"}')
    cli.ok("segment", "create", "--type", "user", "--id", "all", "--all-users")
    fails(cli, 3, "segment 'fr' is defined by filter: targets can only be added to or removed from a manual segment",
          "segment", "add-targets", "fr", "alice")
    fails(cli, 3, "segment 'all' is defined by all_users: targets can only be added to or removed from a manual "
                  "segment", "segment", "remove-targets", "all", "alice")
    path = cli.write("ids.txt", "alice\n")
    fails(cli, 3, "segment 'fr' is defined by filter: targets can only be added to or removed from a manual segment",
          "segment", "sync", "fr", "--file", str(path))


# ---------------------------------------------------------------- paging


@pytest.fixture
def ten(manual: Any) -> Any:
    """Segment `m` with targets t0..t9."""
    manual.ok("segment", "add-targets", "m", *[f"t{i}" for i in range(9, -1, -1)])
    return manual


def _pages(cli: Any, *args: str) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: list[str] = []
    while True:
        page = cli.ok("segment", "targets", "m", *args, *cursor, "--json").json()
        assert {t["segment_id"] for t in page["targets"]} <= {"m"}
        pages.append([t["target_id"] for t in page["targets"]])
        if "next" not in page:
            return pages
        cursor = ["--next", page["next"]]


def test_targets_page_by_target_id(ten):
    assert _pages(ten, "--limit", "4") == [["t0", "t1", "t2", "t3"], ["t4", "t5", "t6", "t7"], ["t8", "t9"]]
    assert _pages(ten, "--limit", "5") == [["t0", "t1", "t2", "t3", "t4"], ["t5", "t6", "t7", "t8", "t9"]]


def test_targets_sorted_descending(ten):
    assert _pages(ten, "--sort", "-target_id", "--limit", "6") == [["t9", "t8", "t7", "t6", "t5", "t4"],
                                                                    ["t3", "t2", "t1", "t0"]]


def test_targets_filter_on_target_id(ten):
    assert _pages(ten, "--filter", '{"target_id": {"$gte": "t3", "$lt": "t6"}}') == [["t3", "t4", "t5"]]
    assert _pages(ten, "--filter", '{"target_id": {"$in": ["t7", "t1", "zz"]}}') == [["t1", "t7"]]
    assert _pages(ten, "--filter", '{"target_id": "t2"}') == [["t2"]]
    assert _pages(ten, "--filter", '{"target_id": {"$gt": "t8"}}', "--limit", "1") == [["t9"]]


def test_targets_filter_refuses_other_fields_and_operators(ten):
    fails(ten, 3, "--filter: field 'name' does not exist for segment targets",
          "segment", "targets", "m", "--filter", '{"name": "x"}')
    fails(ten, 3, "--filter: field 'target_id': operator $ne is not allowed on a string field",
          "segment", "targets", "m", "--filter", '{"target_id": {"$ne": "x"}}')
    fails(ten, 3, "--sort: cannot sort targets by 'name' (use one of target_id)",
          "segment", "targets", "m", "--sort", "name")


def test_targets_limit_is_at_most_10000(ten):
    fails(ten, 3, "--limit: must be between 1 and 10000, got 10001", "segment", "targets", "m", "--limit", "10001")
    assert len(ten.ok("segment", "targets", "m", "--limit", "10000", "--json").json()["targets"]) == 10


def test_targets_refuse_a_cursor_not_produced_by_the_tool(ten):
    cursor = ten.ok("segment", "targets", "m", "--limit", "2", "--json").json()["next"]
    fails(ten, 3, "--next: not a cursor produced by campaign", "segment", "targets", "m", "--next", "x" + cursor[1:])
    fails(ten, 3, "--next: this cursor belongs to another listing or sort order",
          "segment", "targets", "m", "--sort", "-target_id", "--next", cursor)
    ten.ok("segment", "create", "--type", "user", "--id", "other")
    fails(ten, 3, "--next: this cursor belongs to another listing or sort order",
          "segment", "targets", "other", "--next", cursor)


def test_targets_prints_ids_one_a_line_and_the_cursor_on_stderr(ten):
    run = ten.ok("segment", "targets", "m", "--limit", "3")
    assert run.stdout == "t0\nt1\nt2\n"
    assert run.stderr.startswith("next: ")


def test_targets_of_a_filter_segment_are_the_users_it_reaches_now(cli):
    import_directory(cli)
    cli.ok("segment", "create", "--type", "user", "--id", "fr", "--filter", '{"country": "FR"}')
    assert targets(cli, "fr") == ["alice", "bob"]
    cli.ok("segment", "create", "--type", "channel", "--id", "eu", "--filter", '{"team": "eu"}')
    assert targets(cli, "eu", "--sort", "-target_id") == ["support:s2", "support:s1", "messaging:m1"]
    cli.ok("segment", "create", "--type", "channel", "--id", "mine", "--all-sender-channels")
    fails(cli, 3, "segment 'mine' targets the sender's channels: its targets are known only when a campaign with "
                  "a sender uses it", "segment", "targets", "mine")


def test_target_exists(ten):
    run = ten.ok("segment", "target-exists", "m", "t3")
    assert run.stderr == "t3 is a target of segment m\n"
    assert ten.ok("segment", "target-exists", "m", "t3", "--json").json() == {
        "segment_id": "m", "target_id": "t3", "exists": True}
    fails(ten, 4, "'t33' is not a target of segment 'm'", "segment", "target-exists", "m", "t33")
    run = ten("segment", "target-exists", "m", "t33", "--json")
    assert (run.exit_code, run.json()["exists"]) == (4, False)


def test_target_exists_for_a_filter_segment(cli):
    import_directory(cli)
    cli.ok("segment", "create", "--type", "user", "--id", "fr", "--filter", '{"country": "FR"}')
    assert cli("segment", "target-exists", "fr", "bob").exit_code == 0
    assert cli("segment", "target-exists", "fr", "carol").exit_code == 4


# ---------------------------------------------------------------- sync


def test_sync_makes_the_targets_equal_the_file(ten):
    want = str(ten.write("want.txt", "t1\n\nt2\nnew-1\n  new-2 \nt2\n"))
    run = ten.ok("segment", "sync", "m", "--file", want, "--dry-run")
    assert run.stderr == "dry run: would add 2 targets to and remove 8 targets from segment m; nothing changed\n"
    assert ten.ok("segment", "sync", "m", "--file", want, "--dry-run", "--json").json() == {
        "segment_id": "m", "added": 2, "removed": 8, "size": 10, "dry_run": True}
    assert len(targets(ten)) == 10
    run = ten.ok("segment", "sync", "m", "--file", want)
    assert run.stderr == "added 2 targets to and removed 8 targets from segment m (size 4)\n"
    assert targets(ten) == ["new-1", "new-2", "t1", "t2"]
    assert segment(ten, "m")["size"] == 4
    assert ten.ok("segment", "sync", "m", "--file", want, "--json").json() == {
        "segment_id": "m", "added": 0, "removed": 0, "size": 4, "dry_run": False}


def test_sync_from_stdin_and_to_an_empty_file(ten):
    assert ten.ok("segment", "sync", "m", "--file", "-", "--json", input="t0\n").json()["removed"] == 9
    empty = str(ten.write("empty.txt", ""))
    assert ten.ok("segment", "sync", "m", "--file", empty, "--json").json() == {
        "segment_id": "m", "added": 0, "removed": 1, "size": 0, "dry_run": False}


def test_sync_with_a_bad_line_changes_nothing(ten):
    bad = str(ten.write("bad.txt", "t1\nt 2\n"))
    fails(ten, 3, f"{bad}:2: target id 't 2' contains white space", "segment", "sync", "m", "--file", bad)
    fails(ten, 3, f"{bad}:2: target id 't 2' contains white space", "segment", "sync", "m", "--file", bad, "--dry-run")


def test_sync_does_not_touch_other_segments(ten):
    ten.ok("segment", "create", "--type", "user", "--id", "other")
    ten.ok("segment", "add-targets", "other", "t1", "o1")
    want = str(ten.write("want.txt", "t1\n"))
    ten.ok("segment", "sync", "m", "--file", want)
    assert targets(ten, "other") == ["o1", "t1"]


def test_sync_dry_run_leaves_the_database_byte_for_byte(ten):
    want = str(ten.write("want.txt", "x\n"))
    before = snapshot(ten)
    ten.ok("segment", "sync", "m", "--file", want, "--dry-run")
    assert snapshot(ten) == before


def test_ids_keep_their_characters(manual):
    ids = ["élise", '"quoted"', "back\\slash", "日本", "comma,semi;colon"]
    manual.ok("segment", "add-targets", "m", *ids)
    assert targets(manual) == sorted(ids)
    assert manual("segment", "target-exists", "m", "日本").exit_code == 0
    assert manual.ok("segment", "remove-targets", "m", "élise", '"quoted"', "--json").json()["removed"] == 2
