"""The topology picture: sites, routers, prefixes and tunnel links, coloured by the check's verdicts.

Written as Graphviz DOT and laid out by `dot -Tsvg` (Debian package graphviz).
"""

from __future__ import annotations

from collections.abc import Sequence

from check.gather import ControlState, RouterState
from check.judge import Row, Status
from dotwriter import DotError, attrs, render_svg
from dotwriter import quote as _q
from sites.model import SiteModel

__all__ = ["GraphError", "dot_source", "render_svg"]
GraphError = DotError  # the picture could not be drawn (one line)

COLOUR = {
    Status.OK: ("#2e7d32", "#e8f5e9"),
    Status.BROKEN: ("#c62828", "#ffebee"),
    Status.UNKNOWN: ("#757575", "#f5f5f5"),
}
ORDER = {Status.OK: 0, Status.UNKNOWN: 1, Status.BROKEN: 2}


def _worst(rows: Sequence[Row]) -> Status:
    return max((r.status for r in rows), key=ORDER.__getitem__, default=Status.UNKNOWN)


def _attrs(status: Status, **extra: str) -> str:
    line, fill = COLOUR[status]
    return attrs(color=line, fillcolor=fill, fontcolor="#212121", **extra)


def dot_source(model: SiteModel, rows: Sequence[Row], routers: dict[str, RouterState], control: ControlState) -> str:
    by = {(r.site, r.step): r for r in rows}
    out = [
        "digraph s2s {",
        '  graph [rankdir=LR, fontname="Helvetica", nodesep=0.4, ranksep=0.9, '
        f'label={_q(f"s2s check: {model.path.name}  (green ok, red broken, grey unknown)")}, labelloc=t];',
        '  node [fontname="Helvetica", fontsize=11, shape=box, style="rounded,filled"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    tailnet = model.tailnet
    cp_rows = [by[(s, "policy")] for s in model.sites]
    cp_label = f"control plane\n{tailnet.backend} {tailnet.control_url}" if tailnet else "control plane\n(none)"
    if control.error:
        cp_label += "\nnot readable"
    out.append(f"  control [label={_q(cp_label)}, shape=ellipse, {_attrs(_worst(cp_rows))}];")
    for name, site in model.sites.items():
        site_rows = [r for r in rows if r.site == name]
        worst = _worst(site_rows)
        bad = [r.step for r in site_rows if r.status == Status.BROKEN]
        status = routers[name].status
        ts_ip = next((a for a in (status.tailscale_ips if status else ()) if ":" not in a), "")
        router_label = "\n".join(
            x
            for x in (
                f"router {site.routers[0].ssh}",
                f"LAN {site.next_hop}",
                f"tailnet {ts_ip}" if ts_ip else "",
                f"broken: {', '.join(bad)}" if bad else "",
            )
            if x
        )
        line, _ = COLOUR[worst]
        out.append(f"  subgraph cluster_{len(out)} {{")
        out.append(f"    label={_q(f'site {name}')}; color={_q(line)}; penwidth=2; fontname=\"Helvetica\";")
        out.append(f"    {_q('r:' + name)} [label={_q(router_label)}, {_attrs(worst, penwidth='2')}];")
        prefixes = "\n".join(str(p) for p in site.advertised)
        out.append(
            f"    {_q('p:' + name)} [label={_q(prefixes)}, shape=folder, {_attrs(by[(name, 'routes')].status)}];"
        )
        dhcp = by[(name, "dhcp")]
        out.append(f"    {_q('d:' + name)} [label={_q(f'DHCP gateway {site.gateway}')}, {_attrs(dhcp.status)}];")
        out.append(f"    {_q('p:' + name)} -> {_q('r:' + name)} [dir=none, {_attrs(by[(name, 'forwarding')].status)}];")
        out.append(f"    {_q('d:' + name)} -> {_q('p:' + name)} [label=\"121/249\", {_attrs(dhcp.status)}];")
        out.append("  }")
        ts = by[(name, "tailscaled")]
        out.append(f"  {_q('r:' + name)} -> control [style=dashed, dir=none, {_attrs(ts.status)}];")
    names = list(model.sites)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            st = _worst([by[(a, "tunnel")], by[(b, "tunnel")]])
            out.append(f"  {_q('r:' + a)} -> {_q('r:' + b)} [dir=both, penwidth=2, label=\"tunnel\", {_attrs(st)}];")
    out.append("}")
    return "\n".join(out) + "\n"
