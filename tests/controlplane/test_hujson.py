"""The HuJSON reader/editor: exact spans, comments and trailing commas kept."""

from __future__ import annotations

import json

import pytest

from controlplane import hujson

DOC = """// head
{
  "a": "x // not a comment, ] } ,", /* block
  over lines */ "b": [1, 2.5e3, true, null,], // trailing comma
  "c": {"d": [], "e": {},},
}
"""


def test_loads_matches_json_semantics():
    assert hujson.loads(DOC) == {
        "a": "x // not a comment, ] } ,",
        "b": [1, 2500.0, True, None],
        "c": {"d": [], "e": {}},
    }
    plain = json.dumps({"k": [1, {"z": "\\u00e9\""}]})
    assert hujson.loads(plain) == json.loads(plain)


def test_standardize_keeps_offsets():
    std = hujson.standardize(DOC)
    assert len(std) == len(DOC) and std.count("\n") == DOC.count("\n")
    json.loads(std)


@pytest.mark.parametrize(
    "bad, msg",
    [
        ('{"a": 1, "a": 2}', "duplicate key"),
        ('{"a": 1 /* open', "unterminated"),
        ('{"a": 1} x', "unexpected"),
        ('{"a" 1}', "expected ':'"),
        ('{"a": [1 2]}', "expected ','"),
        ('{"a": \'single\'}', "unexpected"),
    ],
)
def test_errors_are_one_line(bad, msg):
    with pytest.raises(hujson.HuJSONError, match=msg) as exc:
        hujson.loads(bad)
    assert "\n" not in str(exc.value)


def test_spans():
    root = hujson.parse(DOC)
    b = root.get("b")
    assert b is not None and DOC[b.start : b.end] == "[1, 2.5e3, true, null,]"
    assert [DOC[i.start : i.end] for i in b.items] == ["1", "2.5e3", "true", "null"]
    assert [t for t in hujson.comments_in(DOC, root)]  # the block comment sits directly in the object
    assert hujson.comments_in(DOC, b) == []


@pytest.mark.parametrize(
    "src",
    [
        '{\n  "x": [\n    1 // one\n  ],\n}\n',
        '{"x": [1]}',
        '{"x": []}',
        '{\n\t"x": [\n\t\t1,\n\t],\n}',
    ],
)
def test_append_in_keeps_everything_else(src):
    node = hujson.parse(src).get("x")
    out = hujson.append_in(src, node, ["// mine", "2,"])
    assert hujson.loads(out)["x"][-1] == 2
    assert hujson.loads(out)["x"][:-1] == hujson.loads(src)["x"]
    # every original character is still there, in order
    it = iter(out)
    assert all(ch in it for ch in src.replace(",", ""))
    if "// one" in src:
        assert "1, // one" in out


def test_insert_member_and_indent_unit():
    src = '{\n    "a": 1\n}'
    out = hujson.insert_member(src, hujson.parse(src), "b", "{}")
    assert hujson.loads(out) == {"a": 1, "b": {}}
    assert '\n    "b": {},\n' in out
    assert hujson.indent_unit('{\n\t"a": 1}') == "\t"


@pytest.mark.parametrize(
    "text, key, want",
    [
        ('{\n  "a": 1,\n  "b": [],\n}\n', "b", '{\n  "a": 1,\n}\n'),
        ('{\n  "b": [],\n  "a": 1\n}\n', "b", '{\n  "a": 1\n}\n'),
        ('{"a": 1, "b": []}', "b", '{"a": 1}'),
        ('{"b": [], "a": 1}', "b", '{"a": 1}'),
        ('{"b": []}', "b", '{}'),
    ],
)
def test_remove_member(text, key, want):
    out = hujson.remove_member(text, hujson.parse(text), key)
    assert out == want
    hujson.loads(out)
