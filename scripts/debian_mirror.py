#!/usr/bin/env python3
"""The Debian mirror this machine's apt already uses for its own release, read from its sources.

Used by ./scripts/setup (to add the release's backports suite on the same mirror, where the
release's own golang-go is too old) and by the fresh-machine test and bench (to debootstrap
from it), so no mirror is written down in the project. The release is the host's
VERSION_CODENAME in /etc/os-release (bookworm, trixie, ...), never a guess. Standard library
only: it runs before the project's virtualenv exists.

    debian_mirror.py              print the mirror's URI
    debian_mirror.py --backports  print a deb822 entry for <release>-backports on it
"""

from __future__ import annotations

import glob
import re
import sys


def host_release(os_release: str = "/etc/os-release") -> str | None:
    """The host's release code name (VERSION_CODENAME), e.g. bookworm or trixie."""
    try:
        text = open(os_release).read()
    except FileNotFoundError:
        return None
    m = re.search(r"^VERSION_CODENAME=\"?([a-z0-9-]+)\"?\s*$", text, re.M)
    return m.group(1) if m else None


def release_source(suite: str, sources_d: str = "/etc/apt/sources.list.d",
                   sources_list: str = "/etc/apt/sources.list") -> tuple[str, str | None] | None:
    """(URI, Signed-By or None) of the first `deb` source carrying `suite`."""
    for path in sorted(glob.glob(f"{sources_d}/*.sources")):
        with open(path) as f:
            paragraphs = re.split(r"\n\s*\n", f.read())
        for para in paragraphs:
            fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", para, re.M))
            if "deb" in fields.get("Types", "").split() and suite in fields.get("Suites", "").split():
                return fields["URIs"].split()[0], fields.get("Signed-By") or None
    for path in [sources_list, *sorted(glob.glob(f"{sources_d}/*.list"))]:
        try:
            lines = open(path).read().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()  # drop [options]
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1], None
    return None


def backports_entry(suite: str, uri: str, signed_by: str | None) -> str:
    """A deb822 source for `suite`-backports on the given mirror."""
    entry = f"Types: deb\nURIs: {uri}\nSuites: {suite}-backports\nComponents: main\n"
    return entry + (f"Signed-By: {signed_by}\n" if signed_by else "")


def main(argv: list[str]) -> int:
    suite = host_release()
    if suite is None:
        print("error: /etc/os-release names no VERSION_CODENAME (not a Debian-like release)", file=sys.stderr)
        return 1
    source = release_source(suite)
    if source is None:
        print(f"error: no {suite} source in /etc/apt/sources.list or /etc/apt/sources.list.d", file=sys.stderr)
        return 1
    if "--backports" in argv:
        print(backports_entry(suite, *source), end="")
    else:
        print(source[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
