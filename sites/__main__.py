"""`python -m sites [--sites PATH]`: validate a site file and summarise it."""

from __future__ import annotations

import argparse

from sites.cli import add_sites_argument, load_or_exit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sites", description=__doc__)
    add_sites_argument(parser)
    model = load_or_exit(parser.parse_args(argv).sites)
    for site in model.sites.values():
        extra = f" + {', '.join(map(str, site.routes))}" if site.routes else ""
        via = (f"VRRP {site.vip} (vrid {site.vrid}) on routers {', '.join(str(r.address) for r in site.routers)}"
               if site.ha else f"router {site.next_hop}")
        print(f"{site.name}: {site.subnet}{extra} via {via}, gateway {site.gateway}")
    print(f"{model.path}: {len(model.sites)} sites, valid")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
