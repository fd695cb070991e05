"""The tailnet policy merge, shared by every backend (pure text in, text out).

What the sites need is added inside marked blocks; everything else in the
document, comments included, is left byte for byte. The traffic rules are written
as `grants` or as `acls` ([tailnet] policy_syntax, `choose_syntax`): Tailscale's
site-to-site guide says to allow the subnets "with the appropriate ACLs or grants",
and its policy reference prefers grants. A block looks like

    "acls": [
        {... hand-written ...},
        // BEGIN s2s-controlplane acls (generated from the site file; edits here are overwritten)
        {"action": "accept", "src": [...], "dst": [...]},
        // END s2s-controlplane acls
    ],

Why comments and not a field: Headscale rejects unknown fields in a policy
(json.RejectUnknownMembers) and Tailscale's schema has no free-form field on an
ACL or an autoApprovers entry, but both keep HuJSON comments (Headscale stores
the text as given in database mode; Tailscale stores HuJSON). A marker line is
also what an administrator reading the file sees. Re-running replaces the
block's inside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sites.model import SiteModel

import json
from collections.abc import Iterable
from dataclasses import dataclass

from netaddr import IPNetwork

from controlplane import hujson

MARK = "s2s-controlplane"
TAILNET_RANGE = "100.64.0.0/10"  # Tailscale's site-to-site guide: the tailnet devices' range
TAILNET_RANGE6 = "fd7a:115c:a1e0::/48"  # its IPv6 counterpart, for sites with IPv6 prefixes

# What a control server does with no policy at all is allow everything. A first
# policy starts from a rule outside our blocks that keeps exactly that, so writing
# it opens nothing new and closes nothing that was open. Which rule that is depends
# on the server: since Headscale 0.29 (and on Tailscale) `*` as a source covers only
# the tailnet's ranges and approved subnet routes, while `autogroup:danger-all` is
# every address (the no-policy default); before 0.29 `*` was every address.
FIRST_RULES = {
    ("acls", False): '{"action": "accept", "src": ["*"], "dst": ["*:*"]},',
    ("acls", True): '{"action": "accept", "src": ["autogroup:danger-all"], "dst": ["*:*"]},',
    ("grants", True): '{"src": ["autogroup:danger-all"], "dst": ["*"], "ip": ["*"]},',
}
_FIRST_SAYS = {
    False: "every address may reach everything",
    True: "autogroup:danger-all, every address, may reach everything",
}
_EMPTY = """// Tailnet policy. s2s-controlplane created it because the control server had none.
// The first {kind} keeps the no-policy default ({says});
// narrow it by hand as you like: s2s-controlplane only rewrites its own marked blocks.
{{
  "{section}": [
    {rule}
  ],
}}
"""


def empty_policy(syntax: str = "acls", modern: bool = False) -> str:
    """The first policy on a server that has none, for `syntax` ("grants"/"acls") on a server
    whose `*` is the tailnet's own (`modern`: Tailscale, Headscale >= 0.29) or every address."""
    modern = modern or syntax == "grants"  # grants exist only where `*` is the tailnet's own
    return _EMPTY.format(kind="grant" if syntax == "grants" else "ACL", says=_FIRST_SAYS[modern],
                         section=syntax, rule=FIRST_RULES[(syntax, modern)])


EMPTY_POLICY = empty_policy()  # Headscale before 0.29, acls

# (path of the container, what the block holds) in the order blocks are written.
# Only one of acls/grants holds the traffic rules (choose_syntax); the other block is
# taken out on the same merge, so switching the syntax moves them in one write.
BLOCKS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("tagOwners",), "tagOwners"),
    (("autoApprovers", "routes"), "autoApprovers"),
    (("acls",), "acls"),
    (("grants",), "grants"),
)
RULE_BLOCKS = ("acls", "grants")


class PolicyError(ValueError):
    """The policy cannot be merged (bad HuJSON, wrong shape); one line."""


@dataclass(frozen=True)
class PolicySpec:
    """What the sites need from the policy: derived from the site model, no secrets."""

    sites: tuple[tuple[str, tuple[str, ...]], ...]  # (site name, its prefixes)
    tag: str = "tag:subnet-router"
    tag_owners: tuple[str, ...] = ()  # empty: only admins / admin-made auth keys may apply the tag
    syntax: str = "auto"  # [tailnet] policy_syntax: auto, grants or acls

    @classmethod
    def from_model(cls, model: SiteModel) -> PolicySpec:
        tag = model.tailnet.tag if model.tailnet else "tag:subnet-router"
        return cls(
            sites=tuple(
                (s.name, tuple(str(IPNetwork(p).cidr) for p in s.advertised)) for s in model.sites.values()
            ),
            tag=tag,
            syntax=getattr(model.tailnet, "policy_syntax", "auto") if model.tailnet else "auto",
        )

    @property
    def prefixes(self) -> list[str]:
        return [p for _, ps in self.sites for p in ps]

    @property
    def tailnet_ranges(self) -> list[str]:
        """The tailnet's own ranges the sites talk to: IPv6's too once a site has an IPv6 prefix."""
        return _tailnet_ranges(self.prefixes)

    def pairs(self) -> list[tuple[list[str], list[str]]]:
        """(sources, destinations) that allow every pair of sites and each site and the tailnet,
        both ways: one per site (its prefixes to everyone else's and to 100.64.0.0/10, plus
        fd7a:115c:a1e0::/48 where it has IPv6 prefixes) and one from the tailnet to all sites."""
        out = []
        for name, own in self.sites:
            others = [p for other, ps in self.sites if other != name for p in ps]
            out.append((list(own), [*others, *_tailnet_ranges(own)]))
        out.append((_tailnet_ranges(self.prefixes), list(self.prefixes)))
        return out

    def acls(self) -> list[dict]:
        """The pairs as ACL rules (every port and protocol)."""
        return [{"action": "accept", "src": src, "dst": [f"{p}:*" for p in dst]}
                for src, dst in self.pairs()]

    def grants(self) -> list[dict]:
        """The pairs as grants: `"ip": ["*"]` is every port and protocol, as `:*` in an ACL."""
        return [{"src": src, "dst": dst, "ip": ["*"]} for src, dst in self.pairs()]


def _tailnet_ranges(prefixes: Iterable[str]) -> list[str]:
    v6 = any(":" in p for p in prefixes)
    return [TAILNET_RANGE, TAILNET_RANGE6] if v6 else [TAILNET_RANGE]


def uses(text: str, section: str) -> bool:
    """Whether the operator's part of the policy (outside our blocks) has entries in `section`."""
    if not text.strip():
        return False
    doc = hujson.loads(remove(text))
    return isinstance(doc, dict) and bool(doc.get(section))


def choose_syntax(setting: str, text: str, grants_supported: bool | None) -> str:
    """"grants" or "acls" for the project's traffic rules.

    `auto`: grants where the operator's policy already has grants, or where there is no
    policy yet and the server supports grants; acls otherwise. `grants_supported` is None
    when the server could not be asked (then an empty policy gets acls, which every
    server takes). Asking for grants from a server without them is a one-line error.
    """
    if setting == "grants" and grants_supported is False:
        raise PolicyError("tailnet.policy_syntax: the control server does not support grants "
                          "(Headscale has them from 0.29.0): use \"acls\" or \"auto\"")
    if setting in ("grants", "acls"):
        return setting
    if uses(text, "grants"):
        return "grants"
    return "grants" if not text.strip() and grants_supported else "acls"


def _begin(name: str) -> str:
    return f"// BEGIN {MARK} {name} (generated from the site file; edits here are overwritten)"


def _end(name: str) -> str:
    return f"// END {MARK} {name}"


def _find_block(text: str, node: hujson.Node, name: str) -> tuple[int, int] | None:
    """Span (start of the BEGIN line, end of the END line incl. newline) of a block in a container."""
    begin = end = None
    for tok in hujson.comments_in(text, node):
        body = text[tok.start:tok.end]
        if body.startswith(f"// BEGIN {MARK} {name}") and begin is None:
            begin = tok
        elif body.startswith(f"// END {MARK} {name}") and begin is not None:
            end = tok
            break
    if begin is None:
        return None
    if end is None:
        raise PolicyError(f"policy: {MARK} {name} block has a BEGIN marker but no END marker")
    start = text.rfind("\n", 0, begin.start) + 1
    if text[start:begin.start].strip():  # something else on the BEGIN line: keep it
        start = begin.start
    stop = end.end + 1 if text[end.end:end.end + 1] == "\n" else end.end
    return start, stop


def _lookup(text: str, path: tuple[str, ...]) -> hujson.Node | None:
    node: hujson.Node | None = hujson.parse(text)
    for key in path:
        if node is None or node.kind != "object":
            return None
        node = node.get(key)
    return node


def _ensure_container(text: str, path: tuple[str, ...], kind: str) -> str:
    """Create missing objects/arrays along `path`."""
    for depth in range(1, len(path) + 1):
        parent = _lookup(text, path[:depth - 1])
        if parent is None or parent.kind != "object":
            raise PolicyError(f"policy: {'.'.join(path[:depth - 1]) or 'top level'} is not an object")
        if parent.get(path[depth - 1]) is None:
            empty = "[]" if depth == len(path) and kind == "array" else "{}"
            text = hujson.insert_member(text, parent, path[depth - 1], empty)
    node = _lookup(text, path)
    assert node is not None
    if node.kind != kind:
        raise PolicyError(f"policy: {'.'.join(path)} is not an {kind}")
    return text


def _without_block(text: str, path: tuple[str, ...], name: str) -> tuple[str, tuple[int, str] | None]:
    """Remove our block from a container; returns the new text and (where it was, its indent)."""
    node = _lookup(text, path)
    if node is None or node.kind not in ("object", "array"):
        return text, None
    span = _find_block(text, node, name)
    if span is None:
        return text, None
    indent = hujson.line_indent(text, span[0])
    return text[:span[0]] + text[span[1]:], (span[0], indent)


def _block_lines(name: str, items: list[str]) -> list[str]:
    return [_begin(name), *items, _end(name)]


def _items(spec: PolicySpec, name: str, current: dict, syntax: str) -> list[str]:
    """The block's lines; object keys someone wrote by hand are left to them."""
    if name in RULE_BLOCKS:
        if name != syntax:
            return []  # the other syntax's block goes (moved, not doubled)
        rules = spec.acls() if name == "acls" else spec.grants()
        return [json.dumps(rule) + "," for rule in rules]
    if name == "tagOwners":
        if spec.tag in (current.get("tagOwners") or {}):
            return []
        return [f"{json.dumps(spec.tag)}: {json.dumps(list(spec.tag_owners))},"]
    if name == "autoApprovers":
        hand = (current.get("autoApprovers") or {}).get("routes") or {}
        return [f"{json.dumps(p)}: {json.dumps([spec.tag])}," for p in spec.prefixes if p not in hand]
    raise KeyError(name)


def remove(text: str) -> str:
    """The policy without any of our blocks (containers we created stay, empty): the inverse of
    merge, used to take the project's entries out (the diagnosis tests break the policy step with it)."""
    try:
        for path, name in BLOCKS:
            text, _ = _without_block(text, path, name)
        hujson.loads(text)
    except hujson.HuJSONError as exc:
        raise PolicyError(f"policy: not valid HuJSON: {exc}") from None
    return text


def merge(text: str, spec: PolicySpec, grants_supported: bool | None = None) -> str:
    """The policy with our blocks brought up to date; unchanged text if nothing changes.

    `text` may be empty (no policy yet): then empty_policy() for the chosen syntax is the
    base. `grants_supported`: the server has grants and the 0.29 meaning of `*` (Tailscale,
    Headscale >= 0.29); None when unknown (see choose_syntax).
    """
    syntax = choose_syntax(spec.syntax, text, grants_supported)
    if not text.strip():
        text = empty_policy(syntax, modern=bool(grants_supported))
    try:
        for path, name in BLOCKS:
            text, at = _without_block(text, path, name)
            current = hujson.loads(text)
            if not isinstance(current, dict):
                raise PolicyError("policy: the top level is not an object")
            items = _items(spec, name, current, syntax)
            if not items:
                if at is not None and name in RULE_BLOCKS:
                    text = _drop_if_empty(text, path)  # moved out: leave no empty list behind
                continue
            lines = _block_lines(name, items)
            if at is not None:  # put it back where it was (an admin may have moved it)
                at, indent = at
                text = text[:at] + "".join(f"{indent}{line}\n" for line in lines) + text[at:]
                # the item before the block needs a comma now, as in append_in
                node = _lookup(text, path)
                assert node is not None
                text = _comma_before(text, node, at)
            else:
                text = _ensure_container(text, path, "array" if name in RULE_BLOCKS else "object")
                node = _lookup(text, path)
                assert node is not None
                text = hujson.append_in(text, node, lines)
        hujson.loads(text)
    except hujson.HuJSONError as exc:
        raise PolicyError(f"policy: not valid HuJSON: {exc}") from None
    return text


def _drop_if_empty(text: str, path: tuple[str, ...]) -> str:
    """Take out a top-level list our block was just moved out of, when nothing else is in it
    (no item, no comment): it held only our block, so it was ours."""
    node = _lookup(text, path)
    if node is None or node.kind != "array" or node.items or hujson.comments_in(text, node):
        return text
    return hujson.remove_member(text, hujson.parse(text), path[-1])


def _comma_before(text: str, node: hujson.Node, at: int) -> str:
    """Add the comma a re-inserted block needs after the item just before it."""
    before = [t for t in hujson.tokenize(text[node.start:at]) if t.kind not in ("ws", "comment")]
    last = before[-1]
    if last.kind in ("{", "[", ","):
        return text
    pos = node.start + last.end
    return text[:pos] + "," + text[pos:]


def managed(text: str) -> dict[str, list[str]]:
    """The item lines inside each of our blocks (for reports and tests)."""
    found: dict[str, list[str]] = {}
    for path, name in BLOCKS:
        node = _lookup(text, path)
        if node is None or node.kind not in ("object", "array"):
            continue
        span = _find_block(text, node, name)
        if span:
            lines = [ln.strip() for ln in text[span[0]:span[1]].splitlines()]
            found[name] = [ln for ln in lines if ln and not ln.startswith("//")]
    return found
