"""`python -m sites [--sites PATH]`: validate a site file and summarise it."""

from __future__ import annotations

import argparse
from pathlib import Path

from sites import schema
from sites.cli import add_sites_argument, load_or_exit


def _schema(readme: str | None) -> int:
    if readme:
        path = Path(readme)
        path.write_text(schema.with_tables(path.read_text()))
        return 0
    for section in schema.SECTIONS:
        print(f"[{section or '(top level)'}]\n{schema.markdown_table(section)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sites", description=__doc__)
    add_sites_argument(parser)
    parser.add_argument("--schema", action="store_true",
                        help="print the README's key tables (from sites/schema.py) and exit")
    parser.add_argument("--readme", metavar="FILE", help="with --schema: regenerate the tables in FILE")
    args = parser.parse_args(argv)
    if args.schema:
        return _schema(args.readme)
    model = load_or_exit(args.sites)
    for site in model.sites.values():
        extra = f" + {', '.join(map(str, site.routes))}" if site.routes else ""
        via = (f"VRRP {site.vip} (vrid {site.vrid}) on routers {', '.join(str(r.address) for r in site.routers)}"
               if site.ha else f"router {site.next_hop}")
        print(f"{site.name}: {site.subnet}{extra} via {via}, gateway {site.gateway}")
    print(f"{model.path}: {len(model.sites)} sites, valid")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
