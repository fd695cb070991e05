"""Shared by the end-to-end modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def fresh_ssh_connections():
    """Each module boots its own lab: the in-process control-plane reads (controlplane.reach) must not
    reuse an SSH connection into the previous module's lab, which is gone but can still look active."""
    from tunnel import close_shared

    close_shared()
    yield
    close_shared()
