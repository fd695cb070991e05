"""Fixtures for the router operations tests: a scratch network namespace (tests.support.Namespaces)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from tests.support import Namespaces, need, netns_prerequisites  # noqa: E402


@pytest.fixture
def netns():
    """A fresh namespace with only loopback up (no route anywhere), deleted afterwards."""
    need(netns_prerequisites())
    spaces = Namespaces("op")
    try:
        yield spaces.add("router")
    finally:
        spaces.delete()
