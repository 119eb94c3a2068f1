"""Every file in examples/segments/ loads, alone and all together, with the sizes its comments promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_segments import import_directory

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "segments"

# What each example creates over the directory of test_segments: (id, type, size).
EXPECTED = {
    "users-in-france.yaml": [("users-in-france", "user", 2)],
    "all-users.yaml": [("everyone", "user", 5)],
    "beta-testers.yaml": [("beta-testers", "user", 3)],
    "support-channels.yaml": [("eu-support-channels", "channel", 2)],
    "launch.yaml": [("launch-admins", "user", 2), ("launch-vips", "user", 2), ("launch-sender-channels", "channel", 0)],
}


def test_every_example_is_listed_here():
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_creates_its_segments(cli, name):
    import_directory(cli)
    data = cli.ok("segment", "create", "-f", str(EXAMPLES / name), "--json").json()
    created = data["segments"] if "segments" in data else [data["segment"]]
    assert [(s["id"], s["type"], s["size"]) for s in created] == EXPECTED[name]


def test_manual_example_takes_its_targets_from_the_file_beside_it(cli):
    cli.ok("segment", "create", "-f", str(EXAMPLES / "beta-testers.yaml"))
    assert cli.ok("segment", "targets", "beta-testers").stdout == "alice\nbob\ncarol\n"


def test_all_examples_load_together_into_an_empty_database(cli):
    for name in sorted(EXPECTED):
        cli.ok("segment", "create", "-f", str(EXAMPLES / name))
    ids = [s["id"] for s in cli.ok("segment", "list", "--json").json()["segments"]]
    assert sorted(ids) == sorted(seg_id for segments in EXPECTED.values() for seg_id, _, _ in segments)
