"""Fuzzing the import readers and the YAML definition loader: whatever the bytes, the CLI answers
exit 0 or exit 3 with one `error:` line (never exit 1 or a traceback), and a refused import or
definition leaves the database exactly as it was.
"""

from __future__ import annotations

import json
from itertools import count

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from send_helpers import import_users

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_names = count()

keys = st.sampled_from(["id", "name", "role", "teams", "banned", "devices", "created_at", "last_active", "cid", "type",
                        "members", "team", "x", "", "a\x00", "$in"])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(),
    st.text(max_size=6), st.sampled_from(["u1", "alice", "0001-01-01T00:00:00+01:00", "2024-01-01T00:00:00Z", "a:b"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
                      max_leaves=8)
records = st.lists(st.dictionaries(keys, values, max_size=5), max_size=4)
jsonish = st.text(st.sampled_from(list('{}[]",:0123456789.eE+-nulltruefalseNaIfiy\\u \n\t\x00\ud800é')), max_size=80)


def _jsonl(items: list) -> bytes:
    return "".join(json.dumps(item, ensure_ascii=False, allow_nan=True) + "\n" for item in items).encode("utf-8", "surrogatepass")


def _csv(items: list) -> bytes:
    header = sorted({key for item in items for key in item if "," not in key and "\n" not in key}) or ["id"]
    rows = [",".join(json.dumps(item.get(key, ""))[:20] for key in header) for item in items]
    return "\n".join([",".join(header), *rows]).encode("utf-8", "surrogatepass")


import_files = st.one_of(
    st.tuples(st.sampled_from(["jsonl", "json", "csv"]), st.binary(max_size=200)),
    st.tuples(st.sampled_from(["jsonl", "json", "csv"]), jsonish.map(lambda t: t.encode("utf-8", "surrogatepass"))),
    st.tuples(st.just("jsonl"), records.map(_jsonl)),
    st.tuples(st.just("json"), records.map(lambda r: json.dumps(r, allow_nan=True).encode("utf-8", "surrogatepass"))),
    st.tuples(st.just("csv"), records.map(_csv)),
)


def visible_state(cli) -> tuple[str, str, str]:
    return tuple(cli.ok(*command, "--json").stdout for command in (
        ("users", "list", "--limit", "1000"), ("channels", "list", "--limit", "1000"), ("segment", "list"), ("list",)))


def answered_with_one_line(run) -> None:
    event(f"exit {run.exit_code}")
    assert run.exit_code in (0, 3), (run.exit_code, run.stderr)
    if run.exit_code == 3:
        run.error_line()


@FUZZ
@given(kind=st.sampled_from(["users", "channels"]), file=import_files)
def test_imports_of_arbitrary_bytes_answer_0_or_3_and_a_refused_one_writes_nothing(cli, kind, file):
    if not cli.has_tables():
        import_users(cli)
    suffix, data = file
    path = cli.cwd / f"fuzz{next(_names)}.{suffix}"
    path.write_bytes(data)
    before = visible_state(cli)

    run = cli(kind, "import", str(path))

    answered_with_one_line(run)
    if run.exit_code == 3:
        assert visible_state(cli) == before


yaml_documents = st.one_of(
    st.text(st.sampled_from(list("ab:-[]{}&*!|>'\"#%@`,?\n\t 0123.~")), max_size=80),
    st.binary(max_size=120).map(lambda b: b.decode("latin-1")),
    st.dictionaries(st.sampled_from(["id", "type", "name", "filter", "all_users", "targets", "segments", "campaigns",
                                     "sender_id", "message_template", "user_ids", "segment_ids", "bogus"]),
                    values, max_size=5).map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
)


@FUZZ
@given(command=st.sampled_from([("segment", "create", "-f"), ("create", "-f"), ("validate",), ("send", "-f")]),
       text=yaml_documents)
def test_definitions_of_arbitrary_yaml_answer_0_or_3_and_a_refused_one_writes_nothing(cli, command, text):
    if not cli.has_tables():
        import_users(cli)
    path = cli.cwd / f"fuzz{next(_names)}.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    before = visible_state(cli)

    run = cli(*command, str(path))

    event(f"exit {run.exit_code}")
    assert run.exit_code in (0, 3), (run.exit_code, run.stderr)
    if run.exit_code == 3:  # validate lists every problem of a file, one `error:` line each
        assert run.stderr and all(line.startswith("error: ") for line in run.stderr.splitlines()), run.stderr
        assert visible_state(cli) == before


@FUZZ
@given(text=yaml_documents)
def test_config_files_of_arbitrary_yaml_answer_0_or_3(cli, text):
    if not cli.has_tables():
        import_users(cli)
    path = cli.cwd / f"fuzz{next(_names)}.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")

    answered_with_one_line(cli("--config", str(path), "users", "list", "--json"))
