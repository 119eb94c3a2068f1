"""Template rendering throughput: one compile per campaign, one render per target (the sender's hot path).

Run by hand:  python bench/bench_templates.py [renders]
Prints renders per second for a short text, a text with a loop and a filter, and a full
message (text + two custom fields + channel id + members), over distinct receivers.
"""

from __future__ import annotations

import sys
import time

from campaign_cli.templates import CampaignTemplates

SENDER = {"id": "acme", "name": "Acme Team", "role": "admin", "teams": []}
CAMPAIGN = {"id": "spring", "name": "Spring release"}


def receivers(count: int) -> list[dict]:
    return [{"id": f"user-{i:07}", "name": f"User {i}", "country": "NL" if i % 2 else "PT", "plan": "pro",
             "teams": ["red", "blue"], "language": "en"} for i in range(count)]


def measure(label: str, render, contexts: list[dict]) -> None:
    started = time.perf_counter()
    for ctx in contexts:
        render(ctx)
    seconds = time.perf_counter() - started
    print(f"{label:<48} {len(contexts) / seconds:>12,.0f} renders/s")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    contexts = [{"sender": SENDER, "receiver": r, "campaign": CAMPAIGN} for r in receivers(count)]
    short = CampaignTemplates.compile({"text": "Hi {{ receiver.name }}, {{ sender.name }} has news for you!"}, None)
    logic = CampaignTemplates.compile(
        {"text": "Hi {{ receiver.name | upper }}{% for t in receiver.teams %} #{{ t }}{% endfor %}"
                 "{% if receiver.plan == 'pro' %} (Pro){% endif %}"}, None)
    full = CampaignTemplates.compile(
        {"text": "Hi {{ receiver.name }} from {{ receiver.country }}!",
         "custom": {"greeting": "Hello {{ receiver.name }}", "campaign": "{{ campaign.id }}", "priority": 1}},
        {"type": "messaging", "id": "spring-{{ receiver.id }}", "members_template": ["{{ receiver.id }}", "{{ sender.id }}"]},
    )

    def full_message(ctx: dict) -> None:
        full.text(ctx)
        full.message_custom(ctx)
        full.channel_id(ctx)
        full.members(ctx)

    print(f"{count:,} receivers")
    measure("short text", short.text, contexts)
    measure("text with a filter, a loop and a condition", logic.text, contexts)
    measure("full message (text, custom, channel id, members)", full_message, contexts)


if __name__ == "__main__":
    main()
