"""Derive tests/stream_schemas.json from Stream's OpenAPI document (run by hand, not by the tests).

Source: github.com/GetStream/protocol, openapi/chat-openapi.json, "Stream API" v236.0.4
(commit e51a64d3f2b83dcb5926da74fc0d4e133668eaea). Usage:

    git clone https://github.com/GetStream/protocol && git -C protocol checkout e51a64d3
    python tests/derive_stream_schemas.py protocol/openapi/chat-openapi.json

The campaign and segment response schemas (and every schema they reference) are copied into
one JSON Schema document under `$defs`, without the OpenAPI-only keywords. Then the
differences this tool keeps on purpose are applied; each is listed in DIFFERENCES and in the
README ("Differences from the API"). Nothing else is changed, so a key the tool prints with
the wrong type, or a required key it leaves out, fails the compatibility test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SOURCE = {"repository": "https://github.com/GetStream/protocol", "path": "openapi/chat-openapi.json",
          "version": "v236.0.4", "commit": "e51a64d3f2b83dcb5926da74fc0d4e133668eaea"}
ROOTS = ["GetCampaignResponse", "CreateCampaignResponse", "StartCampaignResponse", "QueryCampaignsResponse",
         "GetSegmentResponse", "CreateSegmentResponse", "UpdateSegmentResponse", "QuerySegmentsResponse",
         "QuerySegmentTargetsResponse", "CampaignStartedEvent", "CampaignCompletedEvent"]
DROPPED_KEYWORDS = {"description", "title", "nullable", "writeOnly", "readOnly", "example"}
OUT = Path(__file__).with_name("stream_schemas.json")

# (schema, property, change): what this tool prints differently, on purpose.
DIFFERENCES = [
    ("*Response", "duration", "not printed: there is no request to time (dropped from required)"),
    ("SegmentTargetResponse", "app_pk", "not printed: there are no apps (dropped from required)"),
    ("CampaignStatsResponse", "stats_started_at", "null until the campaign starts"),
    ("CampaignStatsResponse", "stats_completed_at", "null until the campaign completes"),
    ("SegmentResponse", "deleted_at", "null unless the segment was deleted"),
    ("SegmentResponse", "filter", "null for a segment without a filter"),
]


def _clean(node: Any) -> Any:
    """The node without OpenAPI-only keywords, its refs pointing into `$defs`."""
    if isinstance(node, list):
        return [_clean(item) for item in node]
    if not isinstance(node, dict):
        return node
    cleaned = {}
    for key, value in node.items():
        if key.startswith("x-") or key in DROPPED_KEYWORDS:
            continue
        if key == "$ref":
            value = value.replace("#/components/schemas/", "#/$defs/")
        cleaned[key] = _clean(value)
    return cleaned


def _referenced(schemas: dict[str, Any], roots: list[str]) -> list[str]:
    """The roots and every schema they reference, transitively, in name order."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(ref.rsplit("/", 1)[1] for ref in _refs(schemas[name]))
    return sorted(seen)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _apply_differences(defs: dict[str, Any]) -> None:
    for name, schema in defs.items():
        if name.endswith("Response") and "duration" in schema.get("required", []):
            schema["required"].remove("duration")
    defs["SegmentTargetResponse"]["required"].remove("app_pk")
    for name, prop in (("CampaignStatsResponse", "stats_started_at"), ("CampaignStatsResponse", "stats_completed_at"),
                       ("SegmentResponse", "deleted_at"), ("SegmentResponse", "filter")):
        field = defs[name]["properties"][prop]
        field["type"] = [field["type"], "null"]


def derive(openapi: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema document: `$defs` with the response schemas, differences applied."""
    schemas = openapi["components"]["schemas"]
    defs = {name: _clean(schemas[name]) for name in _referenced(schemas, ROOTS)}
    _apply_differences(defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Derived by tests/derive_stream_schemas.py; see DIFFERENCES there and the README.",
        "source": {**SOURCE, "api_version": openapi["info"]["version"]},
        "differences": [{"schema": s, "property": p, "change": c} for s, p, c in DIFFERENCES],
        "$defs": defs,
    }


def main() -> None:
    openapi = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    OUT.write_text(json.dumps(derive(openapi), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
