"""`campaign validate` for CI: campaign and segment files, offline or against a database, --json; writes nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign_cli.cli.app import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CAMPAIGN = """\
id: spring
name: Spring
sender_id: acme
segment_ids: [friends]
create_channels: true
channel_template:
  type: messaging
message_template:
  text: "Hi {{ receiver.nme }"
"""
SEGMENT = """\
id: friends
type: user
name: Friends
filter:
  country: {$in: FR}
"""


def run_in(folder: Path, *args: str):
    """The CLI run in an empty subfolder of `folder` with no --db, CAMPAIGN_DB or config: the default
    database is that subfolder's campaign.db."""
    where = folder / "work"
    where.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(where)
        result = CliRunner().invoke(app, list(args), env={"CAMPAIGN_DB": None, "CAMPAIGN_CONFIG": None},
                                    catch_exceptions=False)
    return result, where


def example_files() -> list[str]:
    return sorted(str(p) for p in [*(EXAMPLES / "segments").glob("*.yaml"), *(EXAMPLES / "campaigns").glob("*.yaml")])


def test_without_a_database_it_checks_schema_and_templates_and_says_references_were_not_checked(tmp_path):
    result, folder = run_in(tmp_path, "validate", *example_files())

    assert result.exit_code == 0, result.stderr
    assert result.stderr == (
        "ok: 5 campaign definitions and 7 segment definitions in 9 files are valid\n"
        "references (segments, sender) were not checked (no database at campaign.db)\n")
    assert list(folder.iterdir()) == []


def test_offline_does_not_open_the_database(cli, tmp_path):
    missing = tmp_path / "missing.db"
    run = cli("--db", str(missing), "validate", "--offline", str(cli.write("c.yaml", CAMPAIGN.replace("nme }", "name }}"))))

    assert (run.exit_code, run.stderr) == (
        0, "ok: 1 campaign definition in 1 file is valid\nreferences (segments, sender) were not checked (--offline)\n")
    assert not missing.exists()


def test_a_database_named_explicitly_that_does_not_exist_is_exit_4(cli, tmp_path):
    missing = tmp_path / "missing.db"
    run = cli("--db", str(missing), "validate", str(cli.write("c.yaml", CAMPAIGN)))

    assert (run.exit_code, run.stderr) == (4, f"error: no database at {missing}\n")
    assert not missing.exists()


def test_with_a_database_references_are_checked_and_segments_of_the_files_count_as_known(cli):
    cli.ok("users", "import", str(EXAMPLES / "users.jsonl"))
    on_file = isinstance(cli.db, Path)  # on PostgreSQL the listings below show that nothing was written
    before = hashlib.sha256(cli.db.read_bytes()).hexdigest() if on_file else None

    ok = cli("validate", *example_files())
    alone = cli("validate", str(EXAMPLES / "campaigns" / "release-announcement.yaml"))

    assert (ok.exit_code, ok.stderr) == (0, "ok: 5 campaign definitions and 7 segment definitions in 9 files are valid\n")
    release = EXAMPLES / "campaigns" / "release-announcement.yaml"
    assert (alone.exit_code, alone.stderr) == (3, f"error: {release}: segment_ids: segment 'beta-testers' not found\n")
    assert (hashlib.sha256(cli.db.read_bytes()).hexdigest() if on_file else None) == before
    assert cli.ok("list", "--json").json()["campaigns"] == []
    assert cli.ok("segment", "list", "--json").json()["segments"] == []


def test_json_lists_every_problem_with_its_file_line_and_field(cli):
    campaign = cli.write("campaign.yaml", CAMPAIGN)
    segment = cli.write("segment.yaml", SEGMENT)
    neither = cli.write("neither.yaml", "id: x\nname: nothing else\n")
    listed = cli.write("list.yaml", "campaigns:\n  - id: a\n    sender_id: acme\n    user_ids: [bob]\n"
                                    "    message_template: {text: hi}\n    colour: red\n")

    run = cli("validate", "--offline", "--json", str(campaign), str(segment), str(neither), str(listed))

    assert (run.exit_code, run.stderr) == (3, "error: 4 problems in 4 files\n")
    assert run.json() == {"ok": False, "files": 4, "problems": [
        {"file": str(neither), "line": None, "field": None,
         "message": "neither a campaign definition (sender_id, message_template, …) nor a segment definition "
                    "(type, filter, …), nor a campaigns: or segments: list"},
        {"file": str(segment), "line": 4, "field": "filter",
         "message": "field 'country': $in takes a list, got \"FR\""},
        {"file": str(campaign), "line": 9, "field": "message_template.text",
         "message": "line 1: unexpected '}'"},
        {"file": str(listed), "line": 6, "field": "colour", "message": "unknown key 'colour'"},
    ]}


def test_json_of_valid_files(cli):
    run = cli("validate", "--offline", "--json", str(EXAMPLES / "segments" / "launch.yaml"))

    assert run.exit_code == 0
    assert run.json() == {"ok": True, "files": 1, "problems": []}


def test_a_segment_file_is_checked_like_segment_create_would(cli, tmp_path):
    targets = tmp_path / "ids.txt"
    targets.write_text("alice\nbad id\n")
    path = cli.write("manual.yaml", f"id: m\ntype: user\ntargets_file: {targets}\n")

    run = cli("validate", "--offline", str(path))

    assert (run.exit_code, run.stderr) == (3, f"error: {targets}:2: target id 'bad id' contains white space\n")


def test_every_example_campaign_is_told_apart_from_every_example_segment(tmp_path):
    for name in ("segments", "campaigns"):
        shutil.copytree(EXAMPLES / name, tmp_path / name)
    for path in sorted(tmp_path.glob("*/*.yaml")):
        result, _ = run_in(tmp_path, "validate", "--offline", "--json", str(path))
        assert json.loads(result.stdout) == {"ok": True, "files": 1, "problems": []}, path


@pytest.mark.parametrize("text", ["- a\n- list\n", "just text\n"])
def test_a_file_that_is_no_mapping_is_named(cli, text):
    path = cli.write("odd.yaml", text)
    run = cli("validate", "--offline", str(path))
    kind = "list" if text.startswith("-") else "str"
    assert (run.exit_code, run.stderr) == (3, f"error: {path}: a definition file must hold a mapping, got {kind}\n")
