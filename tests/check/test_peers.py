"""The tunnel pings' peers: a full mesh on a small file, a ring sample (linear in N) past it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from check.gather import RouterState, parse_pings
from check.judge import Fixes, Status, tunnel_rows
from check.peers import FULL_MESH_SITES, RING_PEERS, sample_note, tunnel_peers
from sites import parse_sites


def names(n: int) -> list[str]:
    return [f"s{k}" for k in range(n)]


def test_small_files_ping_every_other_site():
    sites = names(FULL_MESH_SITES)
    assert all(tunnel_peers(sites, s) == [o for o in sites if o != s] for s in sites)
    assert sample_note(sites) == ""


def test_large_files_ping_a_ring_each_site_sending_and_answering_the_same_few():
    for n in (FULL_MESH_SITES + 1, 50, 200):
        sites = names(n)
        pairs = [(s, p) for s in sites for p in tunnel_peers(sites, s)]
        assert len(pairs) == len(set(pairs)) == n * RING_PEERS  # linear in N, no pair twice
        assert all(s != p for s, p in pairs)
        assert set(Counter(p for _, p in pairs).values()) == {RING_PEERS}  # every site answers as many
    assert tunnel_peers(names(50), "s48") == ["s49", "s0", "s1"]
    assert sample_note(names(50)) == (
        "sampled: the next 3 of 49 peers in site-file order (50 sites, more than 8: a full mesh would be 2450 pairs)")


def model(n: int):
    sites = {f"s{k}": {"subnet": f"10.{k + 1}.0.0/24", "router": f"10.{k + 1}.0.2",
                       "gateway": f"10.{k + 1}.0.1", "ssh": f"s{k}-router"} for k in range(n)}
    return parse_sites(Path("/srv/sites.toml"), {"sites": sites})


def pinged(site: str, peers: list[str], failing: str = "") -> RouterState:
    lines = [f"tsping {p} 0 pong via 198.51.100.3:41641 in 1ms\nmtu {p} {int(p == failing)}\n"
             f"small {p} {int(p == failing)}\n" for p in peers]
    return RouterState(site, f"{site}-router", pings=parse_pings("".join(lines)))


def test_tunnel_rows_judge_the_sampled_peers_and_say_so():
    m = model(12)
    sites = list(m.sites)
    routers = {s: pinged(s, tunnel_peers(sites, s)) for s in sites}  # no answers recorded for anyone else
    rows = tunnel_rows(m, routers, {}, Fixes(m))
    assert {r.status for r in rows} == {Status.OK}
    assert all(r.reason.endswith(sample_note(sites)) for r in rows)
    assert "s1: path MTU" in rows[0].reason and "s4:" not in rows[0].reason
    routers["s0"] = pinged("s0", tunnel_peers(sites, "s0"), failing="s2")
    broken = tunnel_rows(m, routers, {}, Fixes(m))[0]
    assert broken.status == Status.BROKEN and broken.reason == "no LAN-to-LAN ping 10.1.0.2 -> 10.3.0.2"
