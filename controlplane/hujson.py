"""A small HuJSON (JSON + comments + trailing commas) reader and text editor.

Why hand-written: the policy file is HuJSON and administrators keep comments in
it, so the merge must edit the text, not re-serialise a parsed value. PyPI had
no fit (checked with `pip download`, see docs/controlplane.md): json-five
round-trips comments but installs as the import name `json5` (clashing with
the far more common `json5` package), needs `sly`, and inserting nodes into its
model loses formatting; jsonc-edit drives a Node.js daemon that npm-installs a
parser at run time; json-with-comments drops comments when writing.

So this module does only what the policy merge needs: find the span of every
value (`parse`), read the document as plain JSON (`loads`), and splice text at
positions inside an object or array (`append_in`, `insert_member`). Everything
outside the spliced range stays byte for byte as it was.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any


class HuJSONError(ValueError):
    """The text is not HuJSON; str() is one line with the offset."""


@dataclass(frozen=True)
class Token:
    kind: str  # one of "{}[]:," or "string", "literal", "comment", "ws"
    start: int
    end: int


_LITERAL = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')
_WS = re.compile(r"[ \t\r\n]+")


def tokenize(text: str) -> list[Token]:
    """Split HuJSON into tokens, comments and whitespace included (so spans are exact)."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "{}[]:,":
            tokens.append(Token(c, i, i + 1))
            i += 1
        elif c in " \t\r\n":
            m = _WS.match(text, i)
            assert m
            tokens.append(Token("ws", i, m.end()))
            i = m.end()
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            tokens.append(Token("comment", i, end))
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise HuJSONError(f"unterminated /* comment at offset {i}")
            tokens.append(Token("comment", i, end + 2))
            i = end + 2
        elif c == '"':
            m = _STRING.match(text, i)
            if not m:
                raise HuJSONError(f"bad string at offset {i}")
            tokens.append(Token("string", i, m.end()))
            i = m.end()
        else:
            m = _LITERAL.match(text, i)
            if not m or m.end() == i:
                raise HuJSONError(f"unexpected {c!r} at offset {i}")
            tokens.append(Token("literal", i, m.end()))
            i = m.end()
    return tokens


@dataclass
class Node:
    """A value's span in the text; containers keep their children's spans."""

    kind: str  # "object", "array" or "scalar"
    start: int  # offset of the first character ({, [ or the scalar)
    end: int  # offset just past the last character
    members: list[tuple[str, Node]] = field(default_factory=list)  # objects
    items: list[Node] = field(default_factory=list)  # arrays

    def get(self, key: str) -> Node | None:
        for name, value in self.members:
            if name == key:
                return value
        return None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = [t for t in tokenize(text) if t.kind not in ("ws", "comment")]
        self.i = 0

    def peek(self) -> Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None) -> Token:
        tok = self.peek()
        if tok is None:
            raise HuJSONError("unexpected end of document")
        if kind and tok.kind != kind:
            raise HuJSONError(f"expected {kind!r} at offset {tok.start}, found {self.text[tok.start:tok.end]!r}")
        self.i += 1
        return tok

    def value(self) -> Node:
        tok = self.take()
        if tok.kind in ("string", "literal"):
            return Node("scalar", tok.start, tok.end)
        if tok.kind == "{":
            node = Node("object", tok.start, tok.end)
            seen: set[str] = set()
            while (nxt := self.peek()) is not None and nxt.kind != "}":
                key_tok = self.take("string")
                key = json.loads(self.text[key_tok.start:key_tok.end])
                if key in seen:
                    raise HuJSONError(f"duplicate key {key!r} at offset {key_tok.start}")
                seen.add(key)
                self.take(":")
                node.members.append((key, self.value()))
                if (sep := self.peek()) is not None and sep.kind == ",":
                    self.take(",")
                elif sep is None or sep.kind != "}":
                    raise HuJSONError(f"expected ',' or '}}' at offset {sep.start if sep else len(self.text)}")
            node.end = self.take("}").end
            return node
        if tok.kind == "[":
            node = Node("array", tok.start, tok.end)
            while (nxt := self.peek()) is not None and nxt.kind != "]":
                node.items.append(self.value())
                if (sep := self.peek()) is not None and sep.kind == ",":
                    self.take(",")
                elif sep is None or sep.kind != "]":
                    raise HuJSONError(f"expected ',' or ']' at offset {sep.start if sep else len(self.text)}")
            node.end = self.take("]").end
            return node
        raise HuJSONError(f"unexpected {self.text[tok.start:tok.end]!r} at offset {tok.start}")


def parse(text: str) -> Node:
    """Parse HuJSON into spans; raises HuJSONError (duplicate keys are errors, as in Tailscale)."""
    p = _Parser(text)
    root = p.value()
    if p.peek() is not None:
        raise HuJSONError(f"trailing data at offset {p.peek().start}")  # type: ignore[union-attr]
    return root


def standardize(text: str) -> str:
    """Plain JSON of the same length: comments blanked, trailing commas removed."""
    out = list(text)
    toks = tokenize(text)
    last_comma: int | None = None
    for tok in toks:
        if tok.kind == "comment":
            for k in range(tok.start, tok.end):
                if out[k] != "\n":
                    out[k] = " "
        elif tok.kind == ",":
            last_comma = tok.start
            continue
        elif tok.kind in "}]" and last_comma is not None:
            out[last_comma] = " "
        if tok.kind not in ("ws", "comment"):
            last_comma = None
    return "".join(out)


def loads(text: str) -> Any:
    """The document's value, as json.loads would give for plain JSON."""
    parse(text)  # for the error messages and the duplicate-key check
    return json.loads(standardize(text))


def comments_in(text: str, node: Node) -> list[Token]:
    """Comments directly inside a container (not inside any of its children)."""
    children = [v for _, v in node.members] + node.items
    found = []
    for tok in tokenize(text[node.start:node.end]):
        if tok.kind != "comment":
            continue
        start = tok.start + node.start
        if not any(c.start <= start < c.end for c in children):
            found.append(Token("comment", start, tok.end + node.start))
    return found


def line_indent(text: str, pos: int) -> str:
    """The whitespace that starts the line holding `pos`."""
    line_start = text.rfind("\n", 0, pos) + 1
    m = _WS.match(text, line_start)
    indent = text[line_start:m.end()] if m else ""
    return indent.split("\n")[-1].replace("\r", "")


def indent_unit(text: str) -> str:
    """The document's indentation step (first indented line), two spaces by default."""
    m = re.search(r"\n([ \t]+)\S", text)
    if not m:
        return "  "
    return "\t" if m.group(1).startswith("\t") else " " * min(len(m.group(1)), 8)


def _last_significant_before(text: str, node: Node) -> Token:
    """The last non-comment, non-whitespace token before a container's closing bracket."""
    inner = [t for t in tokenize(text[node.start:node.end - 1]) if t.kind not in ("ws", "comment")]
    tok = inner[-1]
    return Token(tok.kind, tok.start + node.start, tok.end + node.start)


def append_in(text: str, node: Node, lines: list[str]) -> str:
    """Insert `lines` (already valid HuJSON items, each ending with ',') at the end of a container.

    A comma is added after the container's last item if it has none; the new
    lines are indented one step deeper than the container's own line.
    """
    if node.kind not in ("object", "array"):
        raise HuJSONError(f"not an object or array at offset {node.start}")
    close = node.end - 1
    last = _last_significant_before(text, node)
    own = line_indent(text, node.start)
    inner = own + indent_unit(text)
    block = "".join(f"{inner}{line}\n" if line else "\n" for line in lines)
    # Where the block goes: on its own lines just before the closing bracket.
    line_start = text.rfind("\n", 0, close) + 1
    if text[line_start:close].strip() == "" and line_start > last.end:
        new = text[:line_start] + block + text[line_start:]
    else:
        new = text[:close] + "\n" + block + own + text[close:]
    if last.kind not in ("{", "[", ","):
        new = new[:last.end] + "," + new[last.end:]
    return new


def insert_member(text: str, obj: Node, key: str, value_text: str) -> str:
    """Add `"key": value` at the end of an object (for a container the merge needs)."""
    if obj.kind != "object":
        raise HuJSONError(f"not an object at offset {obj.start}")
    return append_in(text, obj, [f"{json.dumps(key)}: {value_text},"])


def remove_member(text: str, obj: Node, key: str) -> str:
    """Take `"key": value` out of an object, with its comma, and its line when it had one alone.

    For a container the merge made and emptied again (the project's block moved elsewhere).
    """
    if obj.kind != "object":
        raise HuJSONError(f"not an object at offset {obj.start}")
    names = [name for name, _ in obj.members]
    if key not in names:
        return text
    i = names.index(key)
    value = obj.members[i][1]
    toks = [t for t in tokenize(text[obj.start:obj.end]) if t.kind not in ("ws", "comment")]
    toks = [Token(t.kind, t.start + obj.start, t.end + obj.start) for t in toks]
    key_tok = next(t for t in toks if t.kind == "string" and _prev_end(obj, i) <= t.start
                   and t.end <= value.start and text[t.end:value.start].strip().startswith(":"))
    start, stop = key_tok.start, value.end
    after = next((t for t in toks if t.start >= value.end), None)
    if after is not None and after.kind == ",":
        stop = after.end
    elif i > 0:  # the last member without a trailing comma: take the comma before it
        before = [t for t in toks if t.end <= start and t.kind == ","]
        if before:
            start = before[-1].start
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", stop)
    line_end = len(text) if line_end < 0 else line_end
    if not text[line_start:start].strip() and not text[stop:line_end].strip():
        return text[:line_start] + text[line_end + 1:]
    while stop < len(text) and text[stop] in " \t" and after is not None and after.kind == ",":
        stop += 1
    return text[:start] + text[stop:]


def _prev_end(obj: Node, i: int) -> int:
    return obj.members[i - 1][1].end if i > 0 else obj.start
