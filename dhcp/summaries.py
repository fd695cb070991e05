"""`[dhcp] summaries = "auto"`: covering prefixes chosen so every LAN's option 121/249 fits.

Why: without summaries a LAN's option 121 holds one route per other site, and past about
twenty sites it no longer fits a 576-byte DHCP reply (RFC 2131's minimum).

The rule, one for the whole site file so it is the same on every run and easy to read:
remote prefixes that fall in the same /L are pushed as the smallest prefix spanning them,
and L is the longest (most specific) cut that makes every pushing site's option fit, so
the summaries send as little unused space to the routers as they can. Per site, a summary
that would cover one of the site's own prefixes (subnet, routes), one of its client routes
or the tailnet's 100.64.0.0/10 is split around it: the LAN keeps reaching those the way it
did (connected, through its gateway, through the client route's hop, through the router).

Everything runs on integers (first address, prefix length), not netaddr objects: a
10,000-site plan evaluates every site at a few cuts.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from netaddr import IPNetwork, cidr_exclude, cidr_merge

from dhcp.rfc3442 import route_size
from sites.model import TAILSCALE_CGNAT, Site

Prefix = tuple[int, int]  # (first address, prefix length) of an IPv4 prefix
Span = tuple[int, int]    # (first, last) address
_ALL = (1 << 32) - 1


def _last(first: int, plen: int) -> int:
    return first + (1 << (32 - plen)) - 1


def _spanning(first: int, last: int) -> Prefix:
    """The smallest prefix holding first..last."""
    plen = 32 - (first ^ last).bit_length()
    return first & (_ALL ^ ((1 << (32 - plen)) - 1)), plen


def _span(net: IPNetwork) -> Span:
    return net.first, net.last


@dataclass(frozen=True)
class Route:
    """One route of a plan: a prefix, and whether it is a summary (covers space no site declares)."""

    first: int
    plen: int
    summary: bool

    @property
    def network(self) -> IPNetwork:
        return IPNetwork((self.first, self.plen))

    @property
    def size(self) -> int:
        return route_size(self.plen)


class _Splitter:
    """Routes for a node of the address tree, cut around forbidden prefixes.

    `own` prefixes are dropped (the site's own: the LAN reaches them itself); `keep_out`
    prefixes (client routes, the tailnet range) are left to their own route: blocks inside
    them stay as they are, summaries never reach into them.
    """

    def __init__(self, firsts: list[int], lasts: list[int], own: list[Span], keep_out: list[Span]):
        self.firsts, self.lasts = firsts, lasts
        self.own, self.keep_out = own, keep_out

    def _hits(self, spans: list[Span], first: int, last: int) -> list[Span]:
        return [s for s in spans if s[0] <= last and first <= s[1]]

    def node(self, first: int, plen: int, lo: int, hi: int, out: list[Route]) -> None:
        """Routes for blocks lo..hi-1, all inside the prefix (first, plen)."""
        if lo >= hi:
            return
        last = _last(first, plen)
        own = self._hits(self.own, first, last)
        keep = self._hits(self.keep_out, first, last)
        if not own and not keep:
            self._emit(lo, hi, out)
            return
        if any(s[0] <= first and last <= s[1] for s in own):
            return  # wholly the site's own
        if any(s[0] <= first and last <= s[1] for s in keep):
            out.extend(self._block(i) for i in range(lo, hi))  # more specific than the client route
            return
        if hi - lo == 1 and (self.firsts[lo], self.lasts[lo]) == (first, last):
            self._cut_block(lo, own, out)
            return
        if len(own) == 1 and not keep:
            self._walk(own[0], lo, hi, out)
            return
        half = first + (1 << (31 - plen))
        mid = bisect_left(self.firsts, half, lo, hi)
        for a, b in ((lo, mid), (mid, hi)):
            if a < b:  # each half shrunk to what it holds: fewer levels, and no unused space checked
                self.node(*_spanning(self.firsts[a], self.lasts[b - 1]), a, b, out)

    def _walk(self, own: Span, lo: int, hi: int, out: list[Route]) -> None:
        """The common case, one own prefix and nothing kept out: walk down to it, each level
        pushing the half it is not in (a site of a 10,000-site file takes a dozen steps)."""
        firsts, lasts = self.firsts, self.lasts
        while hi - lo > 1:
            first, plen = _spanning(firsts[lo], lasts[hi - 1])
            half = first + (1 << (31 - plen))
            mid = bisect_left(firsts, half, lo, hi)
            if own[0] < half:
                self._emit(mid, hi, out)
                hi = mid
            else:
                self._emit(lo, mid, out)
                lo = mid
        self._cut_block(lo, [own], out)

    def walk_size(self, own: Span, lo: int, hi: int) -> int | None:
        """Bytes `_walk` would push (None when the case is not the common one): the fit check
        runs at every cut tried, so it counts instead of building routes."""
        firsts, lasts = self.firsts, self.lasts
        if not lo < hi or not firsts[lo] <= own[0] <= lasts[hi - 1] or self.keep_out:
            return None
        size = 0
        while hi - lo > 1:
            first, last = firsts[lo], lasts[hi - 1]
            plen = 32 - (first ^ last).bit_length()
            half = (first & (_ALL ^ ((1 << (32 - plen)) - 1))) + (1 << (31 - plen))
            mid = bisect_left(firsts, half, lo, hi)
            a, b = (mid, hi) if own[0] < half else (lo, mid)
            span_plen = 32 - (firsts[a] ^ lasts[b - 1]).bit_length()
            size += 5 + (span_plen + 7) // 8
            if own[0] < half:
                hi = mid
            else:
                lo = mid
        if (firsts[lo], lasts[lo]) != own:
            return None  # the own prefix merged into a bigger block: the exact path cuts it
        return size

    def _block(self, i: int) -> Route:
        first, plen = _spanning(self.firsts[i], self.lasts[i])
        return Route(first, plen, False)

    def _emit(self, lo: int, hi: int, out: list[Route]) -> None:
        if hi - lo == 1:
            out.append(self._block(lo))
        else:
            first, plen = _spanning(self.firsts[lo], self.lasts[hi - 1])
            out.append(Route(first, plen, True))

    def _cut_block(self, i: int, own: list[Span], out: list[Route]) -> None:
        """A merged block holding some of the site's own prefixes: the rest of it, exactly."""
        if len(own) == 1 and own[0] == (self.firsts[i], self.lasts[i]):
            return  # the block is the site's own prefix
        if not own:
            out.append(self._block(i))  # a client route inside a remote block: it is more specific
            return
        pieces = [IPNetwork(_spanning(self.firsts[i], self.lasts[i]))]
        for s in own:
            hole = IPNetwork(_spanning(*s))
            pieces = [q for p in pieces for q in (cidr_exclude(p, hole) if hole in p or p in hole else [p])]
        out.extend(Route(p.first, p.prefixlen, False) for p in pieces)


class AutoSummaries:
    """The cut chosen for a site file and each site's routes under it."""

    def __init__(self, sites: list[Site], budgets: dict[str, int]):
        """`budgets`: per pushing site, the bytes its remote routes may take (others are not checked)."""
        blocks = cidr_merge([p for s in sites for p in s.advertised4])
        self.firsts = [b.first for b in blocks]
        self.lasts = [b.last for b in blocks]
        self.cgnat = [_span(TAILSCALE_CGNAT)]
        self.sites = sites
        self.budgets = budgets
        self.cut = self._choose()
        # no cut fits: the plain routes, so the plan's refusal names the real sizes
        self.routes, self.route_firsts, self.ranges = self._global(self.cut if self.cut >= 0 else 32)

    # -- the whole file at one cut ------------------------------------------------------------
    def _global(self, cut: int) -> tuple[list[Route], list[int], list[tuple[int, int]]]:
        """Every advertised prefix grouped by /cut; each route with the block range it covers."""
        splitter = _Splitter(self.firsts, self.lasts, [], self.cgnat)
        routes: list[Route] = []
        ranges: list[tuple[int, int]] = []
        firsts, lasts, n = self.firsts, self.lasts, len(self.firsts)
        shift = 32 - cut
        i = 0
        while i < n:
            j = i + 1
            if lasts[i] - firsts[i] < (1 << shift):  # a block smaller than /cut can share its group
                key = firsts[i] >> shift
                while j < n and firsts[j] >> shift == key:
                    j += 1
            group: list[Route] = []
            first, plen = _spanning(firsts[i], lasts[j - 1])
            splitter.node(first, plen, i, j, group)
            for route in group:
                lo = bisect_left(firsts, route.first, i, j)
                hi = bisect_right(firsts, _last(route.first, route.plen), i, j)
                routes.append(route)
                ranges.append((lo, hi))
            i = j
        return routes, [r.first for r in routes], ranges

    def for_site(self, site: Site, routes: list[Route] | None = None, firsts: list[int] | None = None,
                 ranges: list[tuple[int, int]] | None = None) -> list[Route]:
        """This site's remote routes: the global ones, with those that reach its own prefixes or
        its client routes cut around them."""
        routes = self.routes if routes is None else routes
        firsts = self.route_firsts if firsts is None else firsts
        ranges = self.ranges if ranges is None else ranges
        touched = self._touched(site, routes, firsts)
        if not touched:
            return list(routes)
        splitter = self._splitter(site)
        out: list[Route] = []
        last_done = 0
        for k in touched:
            out.extend(routes[last_done:k])
            lo, hi = ranges[k]
            splitter.node(routes[k].first, routes[k].plen, lo, hi, out)
            last_done = k + 1
        out.extend(routes[last_done:])
        out.sort(key=lambda r: r.first)  # address order, as without summaries
        return out

    def _splitter(self, site: Site) -> _Splitter:
        own = [_span(p) for p in site.advertised4]
        keep = [_span(net) for net, _ in site.client_routes] + self.cgnat
        return _Splitter(self.firsts, self.lasts, own, keep)

    def _touched(self, site: Site, routes: list[Route], firsts: list[int]) -> list[int]:
        return self._touched_spans(self._forbidden(site), routes, firsts)

    @staticmethod
    def _forbidden(site: Site) -> list[Span]:
        return [_span(p) for p in site.advertised4] + [_span(n) for n, _ in site.client_routes]

    @staticmethod
    def _touched_spans(spans: list[Span], routes: list[Route], firsts: list[int]) -> list[int]:
        """Indexes of the global routes that overlap one of these spans (own or client-route prefixes)."""
        hit: set[int] = set()
        for first, last in spans:
            k = bisect_right(firsts, first) - 1
            if k >= 0 and _last(routes[k].first, routes[k].plen) >= first:
                hit.add(k)
            hit.update(range(bisect_left(firsts, first), bisect_right(firsts, last)))
        return sorted(hit)

    # -- choosing the cut ---------------------------------------------------------------------
    def _checked(self) -> list[tuple[int, list[Span], Site]]:
        """Every site whose option must fit: its budget, its forbidden spans, the site."""
        return [(self.budgets[s.name], self._forbidden(s), s) for s in self.sites if s.name in self.budgets]

    def _fits(self, cut: int, checked: list[tuple[int, list[Span], Site]]) -> bool:
        routes, firsts, ranges = self._global(cut)
        total = sum(r.size for r in routes)
        quick = _Splitter(self.firsts, self.lasts, [], [])
        for budget, spans, site in checked:
            touched = self._touched_spans(spans, routes, firsts)
            size = total - sum(routes[k].size for k in touched)
            if len(spans) == 1 and len(touched) == 1 and routes[touched[0]].summary:
                walked = quick.walk_size(spans[0], *ranges[touched[0]])
                if walked is not None:
                    if size + walked > budget:
                        return False
                    continue
            splitter = self._splitter(site)
            for k in touched:
                pieces: list[Route] = []
                splitter.node(routes[k].first, routes[k].plen, *ranges[k], pieces)
                size += sum(r.size for r in pieces)
            if size > budget:
                return False
        return True

    def _longest_possible(self, checked: list[tuple[int, list[Span], Site]]) -> int:
        """A cheap upper bound on the cut: a site with one prefix and no client routes pushes at
        least every /cut group but its own, each route 5 bytes or more."""
        simple = [budget for budget, spans, _ in checked if len(spans) == 1]
        if not simple:
            return 32
        room = min(simple)
        for cut in range(32, -1, -1):
            if 5 * (len({f >> (32 - cut) for f in self.firsts}) - 1) <= room:
                return cut
        return 0

    def _choose(self) -> int:
        """The longest cut that fits every budget (32: nothing needs summarising; -1: none fits).

        Tried from the cheap upper bound down, each cut checked in full, so the answer does not
        rest on fit being monotone in the cut."""
        checked = self._checked()
        for cut in range(self._longest_possible(checked), -1, -1):
            if self._fits(cut, checked):
                return cut
        return -1

    @property
    def fits(self) -> bool:
        return self.cut >= 0

    def summaries(self) -> list[IPNetwork]:
        """The summaries of the whole file (before any site's cut): for the plan's header."""
        return [r.network for r in self.routes if r.summary]
