"""Where the lab keeps things: cache (shared, slow to rebuild) vs. run state (.lab/, per checkout).

The cache outlives `down` (image, apt repo, GPG key); .lab/ holds what a running
lab and the deploy need (keys, ssh_config, sites.toml, secrets, host overlays).
"""

from __future__ import annotations

import os
from pathlib import Path

from lab.gobuild import cache_dir

# Namespace names are <PREFIX>-<host>. S2S_LAB_PREFIX runs a second lab beside the default one
# (another checkout's); it must not start with "s2s-lab-", which the default lab's `down` removes.
PREFIX = os.environ.get("S2S_LAB_PREFIX") or "s2s-lab"
VETH_PREFIX = "sl-"         # veth names (<= 15 chars)

REPO_ROOT = Path(__file__).resolve().parent.parent


def lab_cache() -> Path:
    """Cached image, apt repo and signing key (rebuilding them is the slow part)."""
    return cache_dir() / "lab"


def lab_dir() -> Path:
    """Per-checkout outputs and run state; override with S2S_LAB_DIR."""
    return Path(os.environ.get("S2S_LAB_DIR") or REPO_ROOT / ".lab")


def hosts_dir() -> Path:
    """Overlay layers and logs of the running hosts."""
    return lab_dir() / "hosts"


def secrets_dir() -> Path:
    """Mode-0700 directory for every secret the lab generates."""
    return lab_dir() / "secrets"
