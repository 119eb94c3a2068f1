"""The report of a campaign: its definition, counts, skipped and failed targets by reason, and the
messages it sent over time, all read from what was recorded while sending.

Nothing depends on when the report is made: the report of a campaign sent last week is the same
as right after it. `render_html` turns the report into one self-contained HTML page (its chart
an inline SVG drawn by matplotlib, from the optional `report` extra).
"""

from __future__ import annotations

import html
import importlib.util
import io
import itertools
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from campaign_cli.campaigns import campaign_json, live_campaign_row, users_read
from campaign_cli.errors import CampaignError
from campaign_cli.store.engine import reading
from campaign_cli.store.models import MESSAGES
from campaign_cli.timeutil import to_json

MAX_POINTS = 2_000  # a longer series is summed into wider time buckets
BATCH_COLOUR, TOTAL_COLOUR = "#3b6fd4", "#d4553b"


class MissingExtra(CampaignError):
    """An optional dependency is not installed."""

    exit_code = 1


def campaign_report(engine: Engine, campaign_id: str) -> dict[str, Any]:
    """The report as JSON: `campaign` (definition summary), `counts`, `skipped` and `failed` by reason (from the stats),
    and `messages_over_time` as `[{"at", "messages"}]` (one point per batch written, or per bucket)."""
    with reading(engine) as conn:
        row = live_campaign_row(conn, campaign_id)
        campaign = campaign_json(row, users_read(conn, row))
        batches = conn.execute(
            select(MESSAGES.c.created_at, func.count()).where(MESSAGES.c.campaign_id == campaign_id)
            .group_by(MESSAGES.c.created_at).order_by(MESSAGES.c.created_at)).all()
    stats = campaign["stats"]
    return {
        "campaign": {key: campaign.get(key) for key in (
            "id", "name", "description", "status", "sender_id", "segment_ids", "user_ids", "message_template",
            "create_channels", "channel_template", "scheduled_for", "stop_at", "created_at", "updated_at")},
        "counts": {
            "targets": stats["stats_targets"], "messages_sent": stats["stats_messages_sent"],
            "skipped": sum(stats["stats_skipped"].values()), "failed": stats["stats_failed"],
            "channels_created": stats["stats_channels_created"], "users_sent": stats["stats_users_sent"],
            "users_read": stats["stats_users_read"], "progress": stats["progress"],
            "started_at": stats["stats_started_at"], "completed_at": stats["stats_completed_at"],
        },
        "skipped": dict(sorted(stats["stats_skipped"].items())),
        "failed": dict(sorted(stats["stats_failed_reasons"].items())),
        "messages_over_time": [{"at": to_json(at), "messages": n} for at, n in _buckets(batches, MAX_POINTS)],
    }


def _buckets(points: list[Any], limit: int) -> Iterable[tuple[datetime, int]]:
    """At most `limit` points: consecutive ones summed into equal time buckets, each at its first point's time."""
    if len(points) <= limit:
        return [(at, n) for at, n in points]
    first, last = points[0][0], points[-1][0]
    width = (last - first) / limit
    merged: list[list[Any]] = []
    for at, n in points:
        index = min(int((at - first) / width), limit - 1)
        if merged and merged[-1][2] == index:
            merged[-1][1] += n
        else:
            merged.append([at, n, index])
    return [(at, n) for at, n, _ in merged]


def require_chart_library() -> None:
    """Fail with one line naming the extra to install when matplotlib is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        raise MissingExtra("report --html needs the `report` extra: pip install 'campaign_cli[report]'")


def render_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page (no script, no link, no font or image to fetch) with an inline SVG chart."""
    campaign, counts = report["campaign"], report["counts"]
    title = f"Campaign {campaign['id']}" + (f" — {campaign['name']}" if campaign["name"] else "")
    audience = (f"segments {', '.join(campaign['segment_ids'])}" if campaign["segment_ids"]
                else f"{len(campaign['user_ids'])} user ids")
    definition = [
        ("status", campaign["status"]), ("sender", campaign["sender_id"]), ("audience", audience),
        ("message", campaign["message_template"].get("text", "")),
        ("creates channels", "yes" if campaign["create_channels"] else "no"),
        ("created", _shown(campaign["created_at"])), ("started", _shown(counts["started_at"])),
        ("completed", _shown(counts["completed_at"])),
    ]
    figures = [("targets", counts["targets"]), ("messages sent", counts["messages_sent"]),
               ("skipped", counts["skipped"]), ("failed", counts["failed"]),
               ("channels created", counts["channels_created"]), ("users read", counts["users_read"])]
    return _PAGE.format(
        title=html.escape(title),
        description=html.escape(campaign["description"] or ""),
        definition=_rows(definition),
        figures="".join(f'<div class="figure"><b>{value:,}</b><span>{html.escape(label)}</span></div>'
                        for label, value in figures),
        skipped=_reasons(report["skipped"], "No target was skipped."),
        failed=_reasons(report["failed"], "No target failed."),
        chart=_chart(report["messages_over_time"], counts["started_at"]),
        points=len(report["messages_over_time"]),
    )


def _shown(time: str | None) -> str:
    return _time(time).strftime("%Y-%m-%d %H:%M:%S UTC") if time else "-"


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs)


def _reasons(by_reason: dict[str, int], empty: str) -> str:
    if not by_reason:
        return f'<p class="none">{html.escape(empty)}</p>'
    rows = "".join(f"<tr><td>{html.escape(reason)}</td><td class=n>{n:,}</td></tr>" for reason, n in by_reason.items())
    return f"<table class=reasons><tr><th>reason</th><th class=n>targets</th></tr>{rows}</table>"


def _chart(series: list[dict[str, Any]], started_at: str | None) -> str:
    """Messages over time as an inline SVG (matplotlib's SVG backend, text as glyph paths: no font to load)."""
    if not series:
        return '<p class="none">No message was sent.</p>'
    require_chart_library()
    import matplotlib

    matplotlib.use("svg")
    from matplotlib import pyplot
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    times = [_time(point["at"]) for point in series]
    messages = [point["messages"] for point in series]
    began = min(_time(started_at), times[0]) if started_at else times[0]
    cumulative = list(itertools.accumulate(messages, initial=0))
    figure, axes = pyplot.subplots(figsize=(9, 3.6), dpi=96)
    try:
        axes.bar(times, messages, width=_bar_width(times), color=BATCH_COLOUR, align="edge")
        axes.set_ylabel("messages per batch", color=BATCH_COLOUR)
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        total = axes.twinx()
        total.step([began, *times], cumulative, where="post", color=TOTAL_COLOUR, linewidth=1.8)
        total.set_ylabel("messages sent in all", color=TOTAL_COLOUR)
        total.set_ylim(bottom=0)
        axes.set_xlabel("time (UTC)")
        axes.spines[["top"]].set_visible(False)
        figure.tight_layout()
        out = io.StringIO()
        pyplot.rcParams["svg.fonttype"] = "path"
        figure.savefig(out, format="svg", metadata={"Date": None})
    finally:
        pyplot.close(figure)
    svg = out.getvalue()
    return svg[svg.index("<svg"):]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _bar_width(times: list[datetime]) -> float:
    """Bar width in days (matplotlib's date unit): most of the smallest gap between batches."""
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:]) if b > a]
    seconds = min(gaps) * 0.8 if gaps else 1.0
    return seconds / 86_400


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 60rem;
       padding: 0 1rem; color: #1d2330; }}
h1 {{ font-size: 1.6rem; margin-bottom: .2rem; }}
h2 {{ font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #dde2ea; padding-bottom: .3rem; }}
.figures {{ display: flex; flex-wrap: wrap; gap: .8rem; }}
.figure {{ background: #f3f5f9; border-radius: .5rem; padding: .7rem 1rem; min-width: 7rem; }}
.figure b {{ display: block; font-size: 1.5rem; }}
.figure span {{ color: #5a6478; font-size: .9rem; }}
table {{ border-collapse: collapse; }}
th, td {{ text-align: left; padding: .25rem 1rem .25rem 0; vertical-align: top; }}
td {{ overflow-wrap: anywhere; }}
.n {{ text-align: right; }}
.none {{ color: #5a6478; }}
#chart svg {{ width: 100%; height: auto; }}
footer {{ margin-top: 2rem; color: #5a6478; font-size: .85rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{description}</p>
<h2>Counts</h2>
<div class="figures">{figures}</div>
<h2>Messages over time</h2>
<div id="chart">{chart}</div>
<h2>Skipped targets by reason</h2>
{skipped}
<h2>Failed targets by reason</h2>
{failed}
<h2>Definition</h2>
<table class="definition">{definition}</table>
<footer>Made by campaign report from the messages and stats recorded while sending ({points} points in the chart).</footer>
</body>
</html>
"""
