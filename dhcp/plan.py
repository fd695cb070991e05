"""The route plan: which routes every LAN's DHCP clients must get, and their bytes.

Per site: 100.64.0.0/10 and every other site's prefixes via this site's router
(adjacent prefixes merged, declared summaries used instead of what they cover, or with
`summaries = "auto"` the ones dhcp.summaries picks to fit), then 0.0.0.0/0 via the LAN's gateway,
because a client that receives option 121
ignores option 3. The reply must fit in one DHCP packet, so oversized plans fail
here, before any server is contacted.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from netaddr import IPNetwork, cidr_exclude, cidr_merge, spanning_cidr

from dhcp.rfc3442 import Route, encode, route_size
from dhcp.summaries import AutoSummaries
from sites.model import TAILSCALE_CGNAT, DhcpSettings, Site, SiteModel

DEFAULT_ROUTE = IPNetwork("0.0.0.0/0")
BOOTP_FIXED_BYTES = 240  # BOOTP header (236) + DHCP magic cookie (4): what options cannot use


class PlanError(Exception):
    """A plan that cannot be pushed (one line: file, site, sizes, what to do)."""


@dataclass(frozen=True)
class SitePlan:
    """What one site's DHCP server must hand out."""

    site: Site
    routes: tuple[Route, ...]
    option_data: bytes
    push_needed: bool
    reason: str
    summaries: tuple[IPNetwork, ...] = ()  # routes of this plan that summaries = "auto" chose

    @property
    def option_hex(self) -> str:
        return self.option_data.hex().upper()


def option_wire_size(data_len: int) -> int:
    """Bytes one option takes in a packet: RFC 3396 splits data over 255 bytes, 2 header bytes each."""
    chunks = max(1, -(-data_len // 255))
    return data_len + 2 * chunks


def option_budget(dhcp: DhcpSettings) -> int:
    """Bytes left for options 121 (+249) in the smallest reply a client accepts."""
    return dhcp.max_message_size - BOOTP_FIXED_BYTES - dhcp.reserved_option_bytes


def reply_size(data_len: int, dhcp: DhcpSettings) -> int:
    """Bytes options 121 (+249) take in a reply."""
    return option_wire_size(data_len) * (2 if dhcp.option_249 else 1)


class _RemoteRoutes:
    """All advertised prefixes merged once; per site, its own prefixes are cut back out.

    Merging once and excluding per site keeps a 1,000-site plan linear instead of
    merging 1,000 lists of 1,000 prefixes.
    """

    def __init__(self, model: SiteModel):
        self.summaries = model.dhcp.summaries
        prefixes = [TAILSCALE_CGNAT] + [p for s in model.sites.values() for p in s.advertised4]
        uncovered = [p for p in prefixes if not self._summary_of(p)]
        used = [s for s in self.summaries if any(p in s for p in prefixes)]
        self.blocks: list[IPNetwork] = cidr_merge(uncovered + used)
        self.firsts = [b.first for b in self.blocks]

    def _summary_of(self, prefix: IPNetwork) -> IPNetwork | None:
        return next((s for s in self.summaries if prefix in s), None)

    def for_site(self, site: Site) -> list[IPNetwork]:
        blocks, firsts = self.blocks, self.firsts
        for own in site.advertised4:
            if self._summary_of(own):
                continue  # the summary deliberately covers it; the LAN's connected route stays more specific
            i = bisect_right(firsts, own.first) - 1
            if i < 0 or own not in blocks[i]:
                continue
            pieces = cidr_exclude(blocks[i], own)
            blocks = blocks[:i] + pieces + blocks[i + 1 :]
            firsts = firsts[:i] + [p.first for p in pieces] + firsts[i + 1 :]
        return blocks


def _site_routes(model: SiteModel, site: Site, remote: list[IPNetwork]) -> tuple[Route, ...]:
    """Remote prefixes via the router, the site's declared client routes (a prefix already
    planned via another hop is a PlanError), then the default route via the gateway."""
    head = tuple((net, site.next_hop) for net in remote)
    if not site.client_routes:
        return head + ((DEFAULT_ROUTE, site.gateway),)
    planned = dict(head)
    extra = []
    for i, (net, hop) in enumerate(site.client_routes):
        if net in planned:
            if planned[net] != hop:
                raise PlanError(
                    f"{model.path}: sites.{site.name}.dhcp.client_routes[{i}]: {net} via {hop} "
                    f"conflicts with the plan's {net} via {planned[net]}"
                )
            continue
        extra.append((net, hop))
    return head + tuple(extra) + ((DEFAULT_ROUTE, site.gateway),)


def _site_plan(site: Site, routes: tuple[Route, ...]) -> SitePlan:
    if site.client_routes:
        return SitePlan(site, routes, encode(routes), True, "the site declares client routes: push option 121/249")
    if site.next_hop == site.gateway:
        return SitePlan(site, routes, encode(routes), False, "router is the LAN's default gateway: no push needed")
    return SitePlan(site, routes, encode(routes), True, "router differs from the gateway: push option 121/249")


def _fixed_bytes(site: Site) -> int:
    """Bytes of a site's routes that are not remote prefixes: the tailnet range, client routes, default."""
    return (
        route_size(TAILSCALE_CGNAT.prefixlen)
        + route_size(0)
        + sum(route_size(net.prefixlen) for net, _ in site.client_routes)
    )


def _largest_fitting(dhcp: DhcpSettings) -> int:
    """The longest option 121 data that fits the reply budget."""
    budget, size = option_budget(dhcp), option_budget(dhcp)
    while size > 0 and reply_size(size, dhcp) > budget:
        size -= 1
    return size


def _checked(site: Site) -> bool:
    """Sites whose option is pushed, so must fit."""
    return site.next_hop != site.gateway or bool(site.client_routes)


def _auto_plan(model: SiteModel) -> dict[str, tuple[list[IPNetwork], tuple[IPNetwork, ...]]]:
    """Per site: its remote prefixes and which of them are auto summaries (summaries = "auto")."""
    room = _largest_fitting(model.dhcp)
    sites = list(model.sites.values())
    auto = AutoSummaries(sites, {s.name: room - _fixed_bytes(s) for s in sites if _checked(s)})
    out = {}
    for site in sites:
        routes = auto.for_site(site)
        nets = [r.network for r in routes]
        summaries = tuple(n for n, r in zip(nets, routes, strict=True) if r.summary)
        out[site.name] = (sorted([TAILSCALE_CGNAT, *nets]), summaries)
    return out


def build_plan(model: SiteModel) -> dict[str, SitePlan]:
    """Plan every site, or raise PlanError naming the first site whose routes do not fit a reply."""
    remote = None if model.dhcp.auto_summaries else _RemoteRoutes(model)
    auto = _auto_plan(model) if model.dhcp.auto_summaries else {}
    budget = option_budget(model.dhcp)
    plans: dict[str, SitePlan] = {}
    for site in model.sites.values():
        blocks, summaries = auto[site.name] if remote is None else (remote.for_site(site), ())
        routes = _site_routes(model, site, blocks)
        data_len = sum(route_size(net.prefixlen) for net, _ in routes)
        if _checked(site) and reply_size(data_len, model.dhcp) > budget:
            raise PlanError(_too_big(model, site, blocks, data_len, budget, len(routes)))
        plan = _site_plan(site, routes)
        plans[site.name] = SitePlan(plan.site, plan.routes, plan.option_data, plan.push_needed, plan.reason, summaries)
    return plans


def _too_big(model: SiteModel, site: Site, blocks: list[IPNetwork], data_len: int, budget: int, count: int) -> str:
    others = [p for s in model.sites.values() if s is not site for p in s.advertised4]
    hint = spanning_cidr(others) if len(others) > 1 else (others[0] if others else None)
    both = " (x2 with option 249)" if model.dhcp.option_249 else ""
    fix = (
        f"declare [dhcp] summaries = \"auto\" to have them chosen, or summaries = [\"{hint}\"] "
        "(or smaller prefixes) to push instead"
    )
    if model.dhcp.auto_summaries:
        fix = (
            "no summary fits without covering its own prefixes or client routes: raise "
            "[dhcp] max_message_size, lower reserved_option_bytes or set option_249 = false"
        )
    return (
        f"{model.path}: sites.{site.name}: {count} routes make a {data_len}-byte option 121{both}, "
        f"{reply_size(data_len, model.dhcp)} bytes on the wire, but a {model.dhcp.max_message_size}-byte DHCP reply "
        f"leaves {budget}; {fix}"
    )


def describe(plan: SitePlan) -> str:
    """Human-readable plan for one site."""
    lines = [f"site {plan.site.name} ({plan.site.subnet}): {plan.reason}"]
    for net, hop in plan.routes:
        mark = "  (auto summary)" if net in plan.summaries else ""
        lines.append(f"  {str(net):<20} via {hop}{mark}")
    lines.append(f"  option data (121, and 249 unless disabled): {len(plan.option_data)} bytes")
    hexed = plan.option_hex
    lines.extend(f"    {hexed[i : i + 64]}" for i in range(0, len(hexed), 64))
    return "\n".join(lines)


def as_json(plan: SitePlan) -> dict[str, object]:
    return {
        "site": plan.site.name,
        "subnet": str(plan.site.subnet),
        "push_needed": plan.push_needed,
        "reason": plan.reason,
        "routes": [
            {"prefix": str(net), "via": str(hop), **({"auto_summary": True} if net in plan.summaries else {})}
            for net, hop in plan.routes
        ],
        "option_121_hex": plan.option_hex,
        "option_bytes": len(plan.option_data),
    }
