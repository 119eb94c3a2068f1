"""`campaign report`: JSON and a self-contained HTML page with a chart, from what was recorded while sending;
the page is opened in headless Chromium (rendered, chart drawn, no console message)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from campaign_cli.report import BATCH_COLOUR, TOTAL_COLOUR
from send_helpers import bulk_users, create_campaign, import_users, segment



def sent_campaign(cli) -> None:
    """c1: 30 users in batches of 7 (one skipped: the sender), one of them failing to render."""
    import_users(cli, [*bulk_users(29), {"id": "zed", "name": "Zed", "age": "old"}])
    segment(cli, "all", all_users=True)
    create_campaign(cli, "c1", name="Spring", segment_ids=["all"], create_channels=True,
                    channel_template={"type": "messaging"},
                    message_template={"text": "Hi {{ receiver.name }}", "custom": {"next_age": "{{ (receiver.age or 1) + 1 }}"}})
    cli.ok("start", "c1", "--batch-size", "7")


def test_report_json_counts_reasons_and_messages_over_time(cli):
    sent_campaign(cli)

    report = cli.ok("report", "c1", "--json").json()

    assert report["campaign"]["id"] == "c1" and report["campaign"]["name"] == "Spring"
    assert report["campaign"]["status"] == "completed"
    counts = report["counts"]
    assert (counts["targets"], counts["messages_sent"], counts["skipped"], counts["failed"]) == (31, 29, 1, 1)
    assert report["skipped"] == {"receiver_is_sender": 1}
    assert report["failed"] == {"template_error": 1}
    series = report["messages_over_time"]
    assert [set(point) for point in series] == [{"at", "messages"}] * len(series)
    assert len(series) == 5  # 31 targets in batches of 7, each batch written at one time
    assert sum(point["messages"] for point in series) == 29
    assert [point["at"] for point in series] == sorted(point["at"] for point in series)


def test_report_is_the_same_later(cli):
    sent_campaign(cli)
    first = cli.ok("report", "c1", "--json").stdout
    create_campaign(cli, "c2", user_ids=["u00001"], create_channels=True, channel_template={"type": "messaging"})
    cli.ok("start", "c2")

    assert cli.ok("report", "c1", "--json").stdout == first


def test_report_of_a_draft_has_no_points(cli):
    import_users(cli, bulk_users(2))
    create_campaign(cli, "c1", user_ids=["u00000"])

    report = cli.ok("report", "c1", "--json").json()

    assert report["messages_over_time"] == [] and report["failed"] == {} and report["skipped"] == {}
    assert report["counts"]["targets"] == 0


def test_report_bad_input(cli):
    sent_campaign(cli)

    unknown = cli("report", "nope", "--json")
    missing_folder = cli("report", "c1", "--html", str(cli.cwd / "no" / "such" / "r.html"))
    folder = cli("report", "c1", "--html", str(cli.cwd))

    assert (unknown.exit_code, unknown.error_line()) == (4, "error: campaign 'nope' not found")
    assert (missing_folder.exit_code, missing_folder.error_line()) == (
        3, f"error: --html: folder {cli.cwd / 'no' / 'such'} does not exist")
    assert (folder.exit_code, folder.error_line()) == (3, f"error: --html: {cli.cwd} is a folder; give a file name")
    assert not (cli.cwd / "no").exists()


def test_report_html_is_one_self_contained_file(cli):
    sent_campaign(cli)
    page = cli.cwd / "report.html"

    run = cli.ok("report", "c1", "--html", str(page))

    assert run.stderr == f"wrote the report of campaign c1 to {page}\n"
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # nothing to fetch: no script, stylesheet link, image, frame, and every url or href points inside the page
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|href=\"(?!#)|url\((?!#)|@import", text, re.I)
    assert "href=\"#" in text and "url(#" in text  # the SVG's own references, which the check above allows
    assert text.count("<svg") == 1 and 'id="chart"' in text
    for shown in ("Campaign c1 — Spring", "receiver_is_sender", "template_error", ">29<", ">31<"):
        assert shown in text


def test_report_html_without_the_extra_says_which_to_install(cli, tmp_path):
    sent_campaign(cli)
    # matplotlib hidden from the interpreter, as when the `report` extra is not installed
    probe = "import sys; sys.modules['matplotlib'] = None; from campaign_cli.cli.app import main; sys.exit(main())"
    run = subprocess.run([sys.executable, "-c", probe, "--db", str(cli.db), "report", "c1", "--html",
                          str(tmp_path / "r.html")], capture_output=True, text=True, timeout=60)

    assert (run.returncode, run.stderr) == (
        1, "error: report --html needs the `report` extra: pip install 'campaign_cli[report]'\n")
    assert not (tmp_path / "r.html").exists()


# ---------------------------------------------------------------- headless Chromium


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it before the tests")
        pytest.skip("chromium is not installed (Debian package `chromium`)")
    return found


def open_in_chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Open `page` in a fresh headless Chromium that logs the page's console messages on stderr."""
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def colour_pixels(png: Path, colour: str) -> int:
    from PIL import Image

    target = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    with Image.open(png) as image:
        data = image.convert("RGB").tobytes()
    return sum(1 for i in range(0, len(data), 3) if all(abs(data[i + k] - target[k]) <= 12 for k in range(3)))


def test_chromium_reports_console_messages(tmp_path):
    """The check below can fail: a page that logs to the console is caught."""
    page = tmp_path / "noisy.html"
    page.write_text("<!DOCTYPE html><html><body><script>console.error('noisy page')</script></body></html>")

    opened = open_in_chromium(page, tmp_path / "profile", "--dump-dom")

    assert any('"noisy page"' in line for line in console_messages(opened.stderr)), opened.stderr


def test_report_renders_in_chromium_with_its_chart_and_no_console_message(cli, tmp_path):
    sent_campaign(cli)
    page = cli.cwd / "report.html"
    cli.ok("report", "c1", "--html", str(page))
    shot = tmp_path / "report.png"

    dom = open_in_chromium(page, tmp_path / "profile-dom", "--dump-dom")
    picture = open_in_chromium(page, tmp_path / "profile-shot", "--window-size=1000,900", f"--screenshot={shot}")

    assert dom.returncode == 0 and picture.returncode == 0, dom.stderr + picture.stderr
    assert console_messages(dom.stderr + picture.stderr) == []
    assert re.search(r'<div id="chart"><svg[^>]*>.*<path', dom.stdout, re.S)
    assert "Campaign c1 — Spring" in dom.stdout
    # the chart is drawn: the batches' bars and the running total are on the screen
    assert colour_pixels(shot, BATCH_COLOUR) > 2_000
    assert colour_pixels(shot, TOTAL_COLOUR) > 200
