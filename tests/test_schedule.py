"""`campaign start` honours a stored schedule: scheduled_for, --at, --now and stop_at."""

from __future__ import annotations

import time

import pytest
from send_helpers import create_campaign, events, get, import_users, messages, rfc3339_in, write_yaml

from campaign_cli.timeutil import parse_time, to_local

DM = {"type": "messaging"}
FUTURE = "2030-05-13T07:00:00Z"
FUTURE_STOP = "2030-05-13T19:00:00Z"


@pytest.fixture
def world(cli):
    import_users(cli)
    return cli


def scheduled_line(campaign_id: str, when: str) -> str:
    return (f"campaign {campaign_id} is scheduled for {to_local(parse_time(when, 'when'))}; nothing is sent now. "
            "'campaign run --watch' sends it when it is due ('campaign run' sends the campaigns due at that moment)\n")


def test_start_schedules_a_campaign_whose_stored_time_lies_in_the_future(world):
    create_campaign(world, "c1", user_ids=["alice"], create_channels=True, channel_template=DM,
                    scheduled_for=FUTURE, stop_at=FUTURE_STOP)

    run = world("start", "c1", "--json")

    assert (run.exit_code, run.stderr) == (0, scheduled_line("c1", FUTURE))
    data = run.json()["campaign"]
    assert (data["status"], data["scheduled_for"], data["stop_at"]) == ("scheduled", FUTURE, FUTURE_STOP)
    assert (data["stats"]["stats_started_at"], data["stats"]["stats_targets"]) == (None, 0)
    assert messages(world) == []
    assert events(world, "c1") == []
    assert world("run").stderr == "no campaign is due\n"
    assert messages(world) == []


def test_at_overrides_the_stored_time_and_keeps_the_stored_stop_at(world):
    create_campaign(world, "c1", user_ids=["alice"], create_channels=True, channel_template=DM,
                    scheduled_for=FUTURE, stop_at=FUTURE_STOP)

    run = world("start", "c1", "--at", "2030-05-13T08:00:00+02:00", "--json")

    assert (run.exit_code, run.stderr) == (0, scheduled_line("c1", "2030-05-13T06:00:00Z"))
    data = run.json()["campaign"]
    assert (data["status"], data["scheduled_for"], data["stop_at"]) == ("scheduled", "2030-05-13T06:00:00Z", FUTURE_STOP)


def test_now_sends_at_once_and_keeps_the_stored_times(world):
    create_campaign(world, "c1", user_ids=["alice"], create_channels=True, channel_template=DM,
                    scheduled_for=FUTURE, stop_at=FUTURE_STOP)

    data = world.ok("start", "c1", "--now", "--json").json()["campaign"]

    assert (data["status"], data["scheduled_for"], data["stop_at"]) == ("completed", FUTURE, FUTURE_STOP)
    assert data["stats"]["stats_started_at"] is not None
    assert [m["text"] for m in messages(world, "c1")] == ["Hi Alice"]


def test_an_immediate_start_does_not_write_the_start_time_into_scheduled_for(world):
    create_campaign(world, "c1", user_ids=["alice"], create_channels=True, channel_template=DM)

    data = world.ok("start", "c1", "--json").json()["campaign"]

    assert (data["status"], data.get("scheduled_for"), data.get("stop_at")) == ("completed", None, None)
    assert data["stats"]["stats_started_at"] is not None


def test_a_stored_time_already_passed_starts_at_once(world):
    create_campaign(world, "c1", user_ids=["alice"], create_channels=True, channel_template=DM,
                    scheduled_for="2020-01-01T00:00:00Z")

    data = world.ok("start", "c1", "--json").json()["campaign"]

    assert (data["status"], data["scheduled_for"]) == ("completed", "2020-01-01T00:00:00Z")


def test_a_scheduled_campaign_is_sent_by_run_once_its_time_has_come(world):
    create_campaign(world, "c1", user_ids=["alice"], create_channels=True, channel_template=DM)
    world.ok("start", "c1")  # nothing stored: sent now
    create_campaign(world, "c2", user_ids=["bob"], create_channels=True, channel_template=DM,
                    scheduled_for=rfc3339_in(0.5))
    assert world.ok("start", "c2", "--json").json()["campaign"]["status"] == "scheduled"
    time.sleep(0.6)

    assert world.ok("run", "--json").json()["campaign"]["status"] == "completed"
    assert [m["text"] for m in messages(world, "c2")] == ["Hi Bob"]


def test_send_file_schedules_a_definition_with_a_future_time_and_a_rerun_says_so_again(world):
    path = write_yaml(world, "send.yaml", {"id": "later", "sender_id": "acme", "user_ids": ["alice"],
                                           "create_channels": True, "channel_template": DM, "scheduled_for": FUTURE,
                                           "message_template": {"text": "Hi {{ receiver.name }}"}})

    for _ in range(2):
        run = world("send", "-f", str(path), "--json")
        assert (run.exit_code, run.stderr, run.json()["campaign"]["status"]) == (0, scheduled_line("later", FUTURE), "scheduled")
    assert messages(world) == []


@pytest.mark.parametrize(("fields", "args", "code", "message"), [
    ({}, ["--now", "--at", FUTURE], 2, "error: --now and --at exclude each other: give one of them\n"),
    ({}, ["--at", "2020-01-01T00:00:00Z"], 3, "error: --at: 2020-01-01T00:00:00+00:00 is in the past\n"),
    ({"stop_at": "2020-01-01T00:00:00Z"}, [], 3,
     "error: campaign 'c1': its stop_at 2020-01-01T00:00:00Z is not after the start (NOW); "
     "give --stop-at or update the campaign\n"),
    ({"scheduled_for": FUTURE, "stop_at": FUTURE_STOP}, ["--at", "2031-01-01T00:00:00Z"], 3,
     f"error: campaign 'c1': its stop_at {FUTURE_STOP} is not after the start (2031-01-01T00:00:00Z); "
     "give --stop-at or update the campaign\n"),
], ids=["now-and-at", "past-at", "stored-stop-at-passed", "at-after-stored-stop-at"])
def test_bad_start_times_change_nothing(world, fields, args, code, message):
    create_campaign(world, "c1", user_ids=["alice"], create_channels=True, channel_template=DM, **fields)
    before = get(world, "c1")

    run = world("start", "c1", *args)

    assert run.exit_code == code
    if "(NOW)" in message:
        prefix, suffix = message.split("(NOW)")
        assert run.stderr.startswith(prefix) and run.stderr.endswith(suffix), run.stderr
    else:
        assert run.stderr == message
    assert get(world, "c1") == before
