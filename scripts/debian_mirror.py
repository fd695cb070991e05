#!/usr/bin/env python3
"""The Debian mirror this machine's apt already uses for bookworm, read from its sources.

Used by ./scripts/setup (to add bookworm-backports on the same mirror) and by the fresh-
machine test and bench (to debootstrap from it), so no mirror is written down in the
project. Standard library only: it runs before the project's virtualenv exists.

    debian_mirror.py              print the mirror's URI
    debian_mirror.py --backports  print a deb822 entry for bookworm-backports on it
"""

from __future__ import annotations

import glob
import re
import sys

SUITE = "bookworm"


def bookworm_source(sources_d: str = "/etc/apt/sources.list.d",
                    sources_list: str = "/etc/apt/sources.list") -> tuple[str, str | None] | None:
    """(URI, Signed-By or None) of the first `deb` source carrying the bookworm suite."""
    for path in sorted(glob.glob(f"{sources_d}/*.sources")):
        with open(path) as f:
            paragraphs = re.split(r"\n\s*\n", f.read())
        for para in paragraphs:
            fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", para, re.M))
            if "deb" in fields.get("Types", "").split() and SUITE in fields.get("Suites", "").split():
                return fields["URIs"].split()[0], fields.get("Signed-By") or None
    for path in [sources_list, *sorted(glob.glob(f"{sources_d}/*.list"))]:
        try:
            lines = open(path).read().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()  # drop [options]
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1], None
    return None


def backports_entry(uri: str, signed_by: str | None) -> str:
    """A deb822 source for bookworm-backports on the given mirror."""
    entry = f"Types: deb\nURIs: {uri}\nSuites: {SUITE}-backports\nComponents: main\n"
    return entry + (f"Signed-By: {signed_by}\n" if signed_by else "")


def main(argv: list[str]) -> int:
    source = bookworm_source()
    if source is None:
        print("error: no bookworm source in /etc/apt/sources.list or /etc/apt/sources.list.d", file=sys.stderr)
        return 1
    print(backports_entry(*source) if "--backports" in argv else source[0], end="" if "--backports" in argv else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
