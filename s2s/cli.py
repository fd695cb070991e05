"""`s2s [--sites FILE] VERB [ARGS...]`: the project's own tools, one command with verbs.

The deploy itself stays `pyinfra inventory.py deploy.py`; these verbs sit beside it:
validate the site file, plan and push the DHCP routes, the control plane, the live
check, the built-in lab and its Vagrant variant. `--sites` before the verb applies to
every verb (it sets $SITES, which each verb and the deploy read); a verb's own
`--sites` works too.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable, Sequence
from typing import NamedTuple


class Verb(NamedTuple):
    module: str  # where its main(argv) lives
    argv: tuple[str, ...]  # put before the user's arguments
    help: str


VERBS: dict[str, Verb] = {
    "validate": Verb("sites.__main__", (), "validate the site file and summarise it; nothing is contacted"),
    "plan": Verb("dhcp.__main__", ("plan",), "every LAN's routes and option 121/249 bytes (--json)"),
    "push": Verb("dhcp.__main__", ("push",), "push option 121/249 into each site's Kea (--dry-run)"),
    "kea": Verb("dhcp.kea.__main__", (), "Kea maintenance (write: config-write on each site's Kea)"),
    "controlplane": Verb("controlplane.cli", (), "tailnet policy and route approvals: plan | apply"),
    "check": Verb("check.__main__", (), "live check of the whole site-to-site setup, read-only"),
    "lab": Verb("lab.__main__", (), "the built-in lab: up | down | status | ssh | topology ..."),
    "vagrant": Verb("lab.vagrant", (), "the Vagrant lab: up | deploy | down ..."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2s", description=__doc__.splitlines()[0],
        epilog="verbs:\n" + "\n".join(f"  {name:<13} {verb.help}" for name, verb in VERBS.items())
        + "\n\n`s2s VERB --help` shows a verb's own options.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", metavar="FILE", help="site file for every verb (else $SITES, else ./sites.toml)")
    parser.add_argument("verb", choices=sorted(VERBS), metavar="VERB")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the verb's own arguments")
    return parser


def resolve(name: str) -> Callable[[list[str]], int]:
    """The verb's main(argv)."""
    return importlib.import_module(VERBS[name].module).main


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.sites:
        os.environ["SITES"] = args.sites
    verb = VERBS[args.verb]
    return resolve(args.verb)([*verb.argv, *args.args]) or 0
