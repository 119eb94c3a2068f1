"""Campaign templates: checking definitions, compiling once, rendering from plain dicts."""

from __future__ import annotations

import pytest
from jinja2 import TemplateError

from campaign_cli.errors import InvalidInput
from campaign_cli.templates import CampaignTemplates, RenderError, check_templates, missing_fields

SENDER = {"id": "acme", "name": "Acme Team", "role": "admin"}
RECEIVER = {"id": "ana", "name": "Ana", "country": "PT", "teams": ["red"], "address": {"city": "Porto"}}
CHANNEL = {"cid": "messaging:ops", "type": "messaging", "id": "ops", "team": None, "topic": "Operations"}
CAMPAIGN = {"id": "spring", "name": "Spring"}


def ctx(receiver: dict | None = RECEIVER, channel: dict | None = CHANNEL) -> dict:
    data = {"sender": SENDER, "campaign": CAMPAIGN}
    if receiver is not None:
        data["receiver"] = receiver
    if channel is not None:
        data["channel"] = channel
    return data


def text(source: str, context: dict | None = None) -> str:
    return CampaignTemplates.compile({"text": source}, None).text(ctx() if context is None else context)


# ---------------------------------------------------------------- rendering


def test_renders_standard_and_custom_fields_of_every_variable():
    source = "{{ receiver.name }} ({{ receiver.country }}) from {{ sender.name }} in {{ channel.cid }}/{{ channel.topic }}: {{ campaign.name }}"
    assert text(source) == "Ana (PT) from Acme Team in messaging:ops/Operations: Spring"


def test_missing_and_null_fields_render_empty_at_any_depth():
    assert text("[{{ receiver.nickname }}|{{ receiver.nickname.first }}|{{ channel.team }}|{{ receiver.address.zip }}]") == "[|||]"
    assert text("[{{ receiver['country'] }}|{{ receiver.address.city }}|{{ receiver.teams[0] }}]") == "[PT|Porto|red]"


def test_receiver_absent_for_a_channel_target_renders_empty():
    assert text("Hi {{ receiver.name }}!", ctx(receiver=None)) == "Hi !"


def test_custom_fields_named_like_dict_methods_are_fields():
    receiver = {"id": "u", "items": "3 items", "keys": "k", "update": "u1"}
    assert text("{{ receiver.items }} {{ receiver.keys }} {{ receiver.update }} [{{ receiver.values }}]", ctx(receiver)) == "3 items k u1 []"


def test_values_from_the_database_are_data_not_templates():
    receiver = {"id": "u", "name": "{{ sender.id }}{% for x in range(3) %}x{% endfor %}"}
    assert text("Hi {{ receiver.name }}", ctx(receiver)) == "Hi {{ sender.id }}{% for x in range(3) %}x{% endfor %}"


def test_autoescape_is_off_for_chat_text():
    assert text("{{ receiver.name }}", ctx({"id": "u", "name": "<b>Tom & Jerry</b>"})) == "<b>Tom & Jerry</b>"


def test_sandbox_hides_python_internals():
    assert text("[{{ sender.__class__ }}|{{ sender.name.__class__.__mro__ }}]") == "[|]"
    with pytest.raises(RenderError, match=r"^message_template.text: cannot render: SecurityError: "):
        text("{{ sender.name.__class__.__subclasses__() }}")


def test_a_failing_template_names_its_field_and_is_a_template_error():
    templates = CampaignTemplates.compile({"text": "ok", "custom": {"score": "{{ 1 / receiver.zero }}"}}, None)
    with pytest.raises(TemplateError) as caught:
        templates.message_custom(ctx({"id": "u", "zero": 0}))
    assert str(caught.value) == "message_template.custom.score: cannot render: ZeroDivisionError: division by zero"


def test_message_and_channel_fields():
    templates = CampaignTemplates.compile(
        {"text": "Hi", "custom": {"greeting": "Hello {{ receiver.name }}", "priority": 2, "tags": ["a"]}},
        {"type": "messaging", "id": "dm-{{ receiver.id }}", "custom": {"topic": "{{ sender.name }} news", "pinned": True},
         "members_template": ["{{ receiver.id }}", "{{ sender.id }}", "{{ receiver.buddy }}", "{{ receiver.id }}"]},
    )
    c = ctx()
    assert templates.message_custom(c) == {"greeting": "Hello Ana", "priority": 2, "tags": ["a"]}
    assert templates.channel_id(c) == "dm-ana"
    assert templates.channel_custom(c) == {"topic": "Acme Team news", "pinned": True}
    assert templates.members(c) == [{"user_id": "ana"}, {"user_id": "acme"}]


def test_members_template_objects_keep_their_role_and_custom():
    templates = CampaignTemplates.compile({"text": "Hi"}, {"type": "messaging", "members_template": [
        {"user_id": "{{ receiver.id }}", "channel_role": "channel_moderator", "custom": {"vip": True}},
        "{{ sender.id }}", {"user_id": "{{ receiver.buddy }}"}, {"user_id": "{{ receiver.id }}", "channel_role": "x"}]})
    assert templates.members(ctx()) == [
        {"user_id": "ana", "channel_role": "channel_moderator", "custom": {"vip": True}}, {"user_id": "acme"}]


def test_plain_members_and_absent_channel_fields():
    templates = CampaignTemplates.compile({"text": "Hi"}, {"type": "messaging", "members": ["ops-lead", "acme"]})
    assert templates.members(ctx()) == [{"user_id": "ops-lead"}, {"user_id": "acme"}]
    assert templates.channel_id(ctx()) is None
    assert templates.channel_custom(ctx()) == {}
    assert templates.message_custom(ctx()) == {}
    bare = CampaignTemplates.compile({"text": "Hi"}, None)
    assert bare.members(ctx()) is None
    assert bare.channel_id(ctx()) is None


def test_channel_id_rendering_empty_is_empty():
    templates = CampaignTemplates.compile({"text": "Hi"}, {"type": "messaging", "id": "{{ receiver.handle }}"})
    assert templates.channel_id(ctx()) == ""


def test_compile_rejects_a_broken_template_naming_the_field():
    with pytest.raises(InvalidInput, match=r"^channel_template.id: line 1: Unexpected end of template\. Jinja was looking for"):
        CampaignTemplates.compile({"text": "Hi"}, {"type": "messaging", "id": "{% if receiver.id %}x"})


def test_missing_fields_lists_the_dotted_fields_missing_for_a_target():
    templates = CampaignTemplates.compile(
        {"text": "{{ receiver.name }} {{ receiver.country }} {{ receiver.address.city }} {{ receiver.name.upper() }}",
         "custom": {"plan": "{{ receiver['plan'] }}"}},
        {"type": "messaging", "id": "{{ sender.id }}-{{ receiver.id }}"},
    )
    assert missing_fields(templates, ctx()) == ["receiver.plan"]
    assert missing_fields(templates, ctx({"id": "bo", "name": None})) == [
        "receiver.address", "receiver.country", "receiver.name", "receiver.plan"]
    assert missing_fields(templates, ctx({"id": "bo", "name": "Bo", "address": {}})) == [
        "receiver.address.city", "receiver.country", "receiver.plan"]
    assert missing_fields(templates, ctx(receiver=None)) == ["receiver"]


def test_missing_fields_ignores_loop_variables_and_constants():
    templates = CampaignTemplates.compile(
        {"text": "{% for t in receiver.teams %}{{ t.name }}{% endfor %}{% set x = {'a': 1} %}{{ x.b }}"}, None)
    assert missing_fields(templates, ctx()) == []
    assert missing_fields(templates, ctx({"id": "u"})) == ["receiver.teams"]


# ---------------------------------------------------------------- checking definitions


def test_check_accepts_good_templates():
    assert check_templates(
        {"text": "Hi {{ receiver.name }} {% for i in range(2) %}{{ loop.index }}{% endfor %}", "custom": {"c": "{{ channel.cid }}"}},
        {"type": "messaging", "id": "{{ campaign.id }}-{{ receiver.id }}", "members_template": ["{{ sender.id }}"]},
        {"user"},
    ) == []


@pytest.mark.parametrize(("source", "problem"), [
    ("{{ receiver.name", "message_template.text: line 1: unexpected end of template, expected 'end of print statement'."),
    ("Hi\nthere {% for %}", "message_template.text: line 2: Expected an expression, got 'end of statement block'"),
    ("{% if sender.id %}open", "message_template.text: line 1: Unexpected end of template. Jinja was looking for the "
                              "following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'."),
    ("{{ sender.id | shout }}", "message_template.text: line 1: No filter named 'shout'."),
    ("Hi\n\n{{ user.name }}", "message_template.text: line 3: unknown variable 'user' (use sender, receiver, channel or campaign)"),
])
def test_check_reports_field_line_and_reason(source, problem):
    assert check_templates({"text": source}, None, {"user"}) == [problem]


def test_receiver_is_rejected_when_the_campaign_targets_only_channels():
    problems = check_templates(
        {"text": "Hello {{ channel.id }}\n{{ receiver.name }}", "custom": {"who": "{{ receiver.id }}"}}, None, {"channel"})
    assert problems == [
        "message_template.text: line 2: 'receiver' is not available: the campaign targets only channels",
        "message_template.custom.who: line 1: 'receiver' is not available: the campaign targets only channels",
    ]
    assert check_templates({"text": "{{ receiver.name }}"}, None, {"user", "channel"}) == []


def test_channel_is_rejected_in_channel_template_fields():
    problems = check_templates(
        {"text": "{{ channel.cid }}"},
        {"type": "messaging", "id": "{{ channel.id }}", "custom": {"t": "{{ channel.type }}"},
         "members_template": ["{{ sender.id }}", "{{ channel.created_by_id }}"]},
        {"user"},
    )
    reason = "line 1: 'channel' is not available in channel_template: the channel does not exist yet"
    assert problems == [f"channel_template.id: {reason}", f"channel_template.custom.t: {reason}",
                        f"channel_template.members_template[1]: {reason}"]


def test_every_problem_of_every_field_is_reported():
    problems = check_templates(
        {"text": "{{ foo }} {{ bar }}", "custom": {"a": "{{ x", "b": 3}},
        {"type": "messaging", "id": "{{ receiver.id }"},
        {"user"},
    )
    assert problems == [
        "message_template.text: line 1: unknown variable 'bar' (use sender, receiver, channel or campaign)",
        "message_template.text: line 1: unknown variable 'foo' (use sender, receiver, channel or campaign)",
        "message_template.custom.a: line 1: unexpected end of template, expected 'end of print statement'.",
        "channel_template.id: line 1: unexpected '}'",
    ]


# ---------------------------------------------------------------- the fast path renders exactly what Jinja renders

PLAIN = [
    "", "no variables at all\n", "Hi {{ receiver.name }}!\n", "{{ receiver['country'] }}/{{ receiver.address.city }}",
    "{{ receiver.address }} {{ receiver.teams }} {{ receiver.score }} {{ receiver.vip }} {{ receiver.nothing }}",
    "{{ receiver.name.first }} {{ receiver.teams.0 }} {{ sender.name.upper() }} {{ channel.team.x }}",
    "{{ receiver }}{{ campaign.id }}", "line 1\n{{ receiver.id }}\n\nline 4\n",
]
CONTEXTS = [
    ctx(),
    ctx({"id": "b", "name": {"first": "Bo"}, "score": 9.5, "vip": False, "address": None, "teams": []}),
    ctx(receiver=None, channel=None),
]


@pytest.mark.parametrize("source", PLAIN)
def test_compiled_rendering_equals_jinja(source):
    from campaign_cli.templates import ENV

    reference = ENV.from_string(source)
    templates = CampaignTemplates.compile({"text": source}, None)
    for context in CONTEXTS:
        assert templates.text(context) == reference.render(context)
