"""Which policy syntax a control server takes, from the version it reports.

Why it matters: Headscale supports `grants` from 0.29.0 (0.27-0.28 reject the key as
unknown), and 0.29 also changed `*` to mean the tailnet's own ranges plus approved
subnet routes, as on Tailscale. The deploy picks the syntax of a first policy from
this, refuses `policy_syntax = "grants"` where grants would be rejected, and the
check compiles `*` as the server does.
"""

from __future__ import annotations

import re

GRANTS_FROM = (0, 29)  # Headscale's first release with grants (CHANGELOG 0.29.0)

_RELEASE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def headscale_has_grants(version: str) -> bool | None:
    """True/False for a release version ("v0.29.0", "0.28.1", "v0.29.0-beta.2"); None for what
    names no release ("dev": a build without module version information)."""
    m = _RELEASE.match(version.strip())
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2))) >= GRANTS_FROM
