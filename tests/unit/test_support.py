"""tests.support's namespace helper: unique names, and each object removes only its own."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import Namespaces, need, netns_prerequisites

pytestmark = pytest.mark.integration


def listed() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_namespaces_are_unique_and_removed_only_by_their_owner():
    need(netns_prerequisites())
    mine, other = Namespaces("u"), Namespaces("u")
    try:
        a, b = mine.add("x"), other.add("x")
        assert a != b and {a, b} <= listed()
        assert subprocess.run(["ip", "-n", a, "route", "show"], capture_output=True, text=True,
                              check=True).stdout == ""  # no route anywhere
        other.delete()
        assert a in listed() and b not in listed()
    finally:
        mine.delete()
        other.delete()
    assert a not in listed()
