"""Which peers a site's tunnel pings go to: every other site on a small file, a ring sample past it.

A full mesh is N(N-1) ordered pairs, each a `tailscale ping` and six LAN-to-LAN pings: 14,700
ping processes at 50 sites, 300 on each router at once. Past FULL_MESH_SITES each site pings
the next RING_PEERS sites in site-file order (wrapping round), so every site sends to and
answers RING_PEERS others and the pairs grow with N, not N squared. What is sampled is said in
the row. The policy step still judges every pair (here and on the server): only the packets
are sampled.
"""

from __future__ import annotations

from collections.abc import Sequence

FULL_MESH_SITES = 8  # up to this many sites every router pings every other one
RING_PEERS = 3  # past it, each site pings this many next sites on the ring


def tunnel_peers(names: Sequence[str], name: str) -> list[str]:
    """The sites `name` pings, in order: all others, or its next RING_PEERS in `names` (a ring)."""
    if len(names) <= FULL_MESH_SITES:
        return [n for n in names if n != name]
    at = names.index(name)
    return [names[(at + step) % len(names)] for step in range(1, RING_PEERS + 1)]


def sample_note(names: Sequence[str]) -> str:
    """'' for a full mesh, else what the sample left out (for the row's reason)."""
    if len(names) <= FULL_MESH_SITES:
        return ""
    n = len(names)
    return (f"sampled: the next {RING_PEERS} of {n - 1} peers in site-file order "
            f"({n} sites, more than {FULL_MESH_SITES}: a full mesh would be {n * (n - 1)} pairs)")
