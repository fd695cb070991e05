"""`python -m lab graph`: the topology drawn as segments and the hosts on them (text or Graphviz dot).

Pure: reads only the topology (like containerlab's `graph`), so it works without
root and without a running lab.
"""

from __future__ import annotations

from dotwriter import attrs, quote
from lab.hosts import Host, bridge, lab_hosts, segments
from lab.topology import Topology

_WHAT = {"control": "Headscale + apt repo", "gw": "Kea DHCPv4 + Control Agent",
         "router": "subnet router (the deploy's target)", "client": "DHCP client"}


def _segment_title(topo: Topology, seg: str) -> str:
    if seg == "wan":
        return f"wan {topo.wan_subnet} ({bridge(seg)})"
    site = topo.sites[seg]
    extra = f"; also advertises {', '.join(map(str, site.routes))}" if site.routes else ""
    return f"site {seg} {site.subnet} ({bridge(seg)}){extra}"


def _members(topo: Topology, seg: str) -> list[tuple[Host, str, str]]:
    """(host, interface, address) for every link on the segment."""
    out = []
    for h in lab_hosts(topo):
        for link in h.links:
            if link.segment == seg:
                addr = link.cidr or f"dhcp {topo.sites[seg].dhcp_pool}"
                out.append((h, link.ifname, addr))
    return out


def text(topo: Topology) -> str:
    """One block per segment, one line per attached interface."""
    lines = [f"lab: {len(topo.sites)} site(s), {len(lab_hosts(topo))} hosts, from {topo.path}"]
    for seg in segments(topo):
        lines.append(_segment_title(topo, seg))
        for h, ifname, addr in _members(topo, seg):
            what = _WHAT[h.role]
            if h.role == "control":
                what = f"Headscale :{topo.headscale_port}, apt repo :{topo.apt_port}"
            lines.append(f"  {h.name:<12} {ifname:<5} {addr:<34} {what}")
    return "\n".join(lines) + "\n"


def dot(topo: Topology) -> str:
    """Graphviz: a box per segment, an ellipse per host, an edge per interface labelled with its address."""
    out = ["graph lab {", "  layout=neato; overlap=false; node [fontsize=10]; edge [fontsize=8];"]
    for seg in segments(topo):
        box = attrs(shape="box", style="filled", fillcolor="lightgrey", label=_segment_title(topo, seg))
        out.append(f"  {quote('seg:' + seg)} [{box}];")
    for h in lab_hosts(topo):
        out.append(f"  {quote(h.name)} [{attrs(label=h.name + chr(10) + h.role)}];")
    for seg in segments(topo):
        for h, ifname, addr in _members(topo, seg):
            out.append(f"  {quote(h.name)} -- {quote('seg:' + seg)} [{attrs(label=ifname + ' ' + addr)}];")
    out.append("}")
    return "\n".join(out) + "\n"
