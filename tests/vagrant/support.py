"""Helpers shared by the Vagrant lab tests."""

from __future__ import annotations

from pathlib import Path

from tests.support import need

REPO = Path(__file__).resolve().parents[2]


def require(ok: object, why: str) -> None:
    """Skip (saying why) unless `ok`; tests/conftest.py makes that a failure under CI."""
    need(None if ok else why)
