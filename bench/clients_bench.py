"""When does each kind of DHCP client pick up a changed route set: at renew, or only at a full bind?

    sudo S2S_LAB_PREFIX=... python bench/clients_bench.py [--keep]

On the lab of tests/e2e/clients_topology.toml (site a: Kea 3.0 gateway, one client
each of ISC dhclient, systemd-networkd and dhcpcd): deploy, bind every client, then
add a route to the site file (an extra prefix behind site b) and push it into Kea
(`python -m dhcp push`, the deploy's Kea step). For each client:

1. renew: dhclient's own RENEW at T1 (it has no renew-now command), `networkctl renew`,
   `dhcpcd --renew`. Kea's lease file proves the RENEW reached the server (one more
   line for the client's MAC). Then wait up to WAIT seconds for the new route.
2. full bind (`python -m lab renew`: release, then DISCOVER/REQUEST): time to the route.

The same again for a removed route. Prints one row per client kind and step; the lab
and the site file are put back at the end (the lab is taken down unless --keep).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from lab import api, dhcpclients, drive, roles  # noqa: E402
from lab.hosts import Host  # noqa: E402
from lab.topology import TOPOLOGY_ENV  # noqa: E402

TOPOLOGY = REPO / "tests/e2e/clients_topology.toml"
CLIENTS = {"a-client": "dhclient", "a-client2": "networkd", "a-client3": "dhcpcd"}
NEW_PREFIX = "198.18.0.0/24"
ROUTE = re.compile(rf"^{re.escape(NEW_PREFIX)} via 192\.0\.2\.2 ", re.M)
WAIT = roles.RENEW_TIMER * 2 + 10  # every client's T1 comes inside this window
GATEWAY = "192.0.2.1"


def has_route(client: str) -> bool:
    return bool(ROUTE.search(drive.in_host(client, "ip", "-4", "route").stdout))


def mac(client: str) -> str:
    out = drive.in_host(client, "cat", "/sys/class/net/eth0/address").stdout
    return out.strip().lower()


def renews_seen(hw: str, address: str) -> int:
    """DHCPREQUESTs Kea logged from this client's own address to the gateway: unicast, i.e.
    sent in RENEWING state (a bind's REQUEST comes from 0.0.0.0 to the broadcast address)."""
    log = drive.in_host(
        "a-gw", "journalctl", "-u", "kea-dhcp4-server", "--no-pager", "-o", "cat", check=False
    ).stdout.lower()
    return sum(
        1
        for line in log.splitlines()
        if hw in line and "dhcprequest" in line and f"from {address} to {GATEWAY}" in line
    )


def push(sites: Path) -> None:
    result = __import__("subprocess").run(
        [sys.executable, "-m", "dhcp", "push", "--sites", str(sites)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise SystemExit(f"dhcp push failed: {result.stdout[-800:]}{result.stderr[-800:]}")


def wait_for(client: str, want: bool, timeout: float) -> float | None:
    """Seconds until the route's presence equals `want`, or None after timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if has_route(client) == want:
            return time.monotonic() - t0
        time.sleep(0.5)
    return None


def at_renew(client: str, kind: str, want: bool) -> tuple[str, str]:
    """Trigger (or wait for) one RENEW; report whether the route set followed it."""
    hw, address = mac(client), drive.client_address(client)
    before = renews_seen(hw, address)
    t0 = time.monotonic()
    if kind != "dhclient":
        dhcpclients.renew_in_place(drive_host(client))
    got = None
    while time.monotonic() - t0 < WAIT:
        if has_route(client) == want:
            got = time.monotonic() - t0
            break
        time.sleep(0.5)
    renewed = renews_seen(hw, address) - before
    how = "T1 timer" if kind == "dhclient" else ("networkctl renew" if kind == "networkd" else "dhcpcd --renew")
    if got is not None:
        return how, f"yes, {got:5.1f} s after the trigger ({renewed} RENEW(s) logged by Kea)"
    return how, f"no  (waited {WAIT} s; {renewed} RENEW(s) logged by Kea)"


def at_bind(client: str, want: bool) -> str:
    t0 = time.monotonic()
    drive.lab("renew", client)
    got = wait_for(client, want, 30)
    total = time.monotonic() - t0
    return f"yes, {total:5.1f} s (release + bind)" if got is not None else "no (30 s after the bind)"


def drive_host(name: str) -> Host:
    from lab.hosts import lab_hosts
    from lab.topology import load_topology

    return next(h for h in lab_hosts(load_topology(TOPOLOGY)) if h.name == name)


def with_route(sites: Path) -> Path:
    text = sites.read_text()
    changed = re.sub(r"^(\[sites\.b\]\n)", rf'\1routes = ["{NEW_PREFIX}"]\n', text, count=1, flags=re.M)
    assert changed != text, "no [sites.b] table in the lab's site file"
    out = sites.with_name("sites-clients-bench.toml")
    out.write_text(changed)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="leave the lab running afterwards")
    args = ap.parse_args()
    os.environ[TOPOLOGY_ENV] = str(TOPOLOGY)
    info = api.ensure_up(TOPOLOGY)
    deployed = drive.pyinfra(info.sites_file)
    if deployed.returncode != 0:
        raise SystemExit(f"deploy failed: {deployed.stderr[-1500:]}")
    drive.lab("renew", *CLIENTS)
    changed = with_route(info.sites_file)
    rows: list[tuple[str, str, str, str]] = []
    try:
        for label, sites, want in (("route added", changed, True), ("route removed", info.sites_file, False)):
            push(sites)
            for client, kind in CLIENTS.items():
                how, renew_result = at_renew(client, kind, want)
                bind_result = at_bind(client, want) if not renew_result.startswith("yes") else "(not needed)"
                rows.append(
                    (f"{kind} ({client})", label, f"renew [{how}]: {renew_result}", f"full bind: {bind_result}")
                )
                print(" | ".join(rows[-1]), flush=True)
    finally:
        push(info.sites_file)
        changed.unlink(missing_ok=True)
        if not args.keep:
            api.down()
    print(f"\nKea renew-timer (T1) {roles.RENEW_TIMER} s; site a's gateway runs Kea 3.0 (Debian sid):")
    for row in rows:
        print(f"  {row[0]:<22} {row[1]:<14} {row[2]:<72} {row[3]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
