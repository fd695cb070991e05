"""Fixtures for the router operations tests: scratch network namespaces named s2s-op-*."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

PREFIX = "s2s-op"


from ops_harness import require  # noqa: E402


@pytest.fixture
def netns():
    """A fresh namespace with only loopback up (no route anywhere), deleted afterwards."""
    require(os.geteuid() == 0, "needs root for ip netns")
    require(shutil.which("ip") is not None, "needs iproute2")
    name = f"{PREFIX}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
