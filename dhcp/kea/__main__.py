"""`python -m dhcp.kea write`: send config-write to every site's Kea.

The way out of a push whose config-write failed: the running config already has
the routes (so a new push says "no change"), only the file lacks them. Make the
file writable by Kea, then run this.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack

from dhcp.kea.connect import TransportFactory, tunnelled_factory
from dhcp.kea.transport import KeaError, redact_url
from dhcp.plan import PlanError, build_plan
from dhcp.push import group_by_server
from sites.cli import add_sites_argument, load_or_exit
from sites.model import SecretError, SiteModel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dhcp.kea", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="config-write on each site's Kea")
    add_sites_argument(write)
    args = parser.parse_args(argv)
    model = load_or_exit(args.sites)
    with ExitStack() as tunnels:  # the same connection path as the push: SSH forwards for kea.ssh
        return _write_all(model, tunnelled_factory(model.ssh, tunnels))


def _write_all(model: SiteModel, factory: TransportFactory) -> int:
    """config-write on every server (each of an HA pair too); servers are independent."""
    try:
        groups = group_by_server(build_plan(model))
        for endpoint, _ in groups:  # every secret is read before any server is contacted
            endpoint.password()
        transports = [(ep, factory(ep)) for ep, _ in groups]
    except (PlanError, SecretError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = 0
    for endpoint, transport in transports:
        try:
            answer = transport.command("config-write")
            via = f" via ssh {endpoint.ssh}" if endpoint.ssh else ""
            print(f"Kea at {redact_url(endpoint.url)}{via}: config written to {answer.get('filename', '?')}")
        except KeaError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
